// `npm run rollups:rebuild`: recomputes the FerretDB profile's rollups (kept in Redis) from history, after Redis lost
// them. Stop the workers first; see docs/storage.md, "Rollups".
import 'dotenv/config';
import { connectMongo, queueSettings } from '../src/composition';
import { loadConfig } from '../src/config/config';
import { createLogger } from '../src/logger';
import { createIngestQueue } from '../src/queue/ingest-queue';
import { createRedis } from '../src/queue/redis';
import { createRepositories } from '../src/storage';
import { rebuildRollups } from '../src/storage/rollup-rebuild';

async function main(): Promise<number> {
  const config = loadConfig();
  const logger = createLogger(config.LOG_LEVEL, 'rollups');
  const connection = await connectMongo(config.MONGODB_URI, logger, false);
  const redis = createRedis(config.REDIS_URL, 'worker', logger);
  const { queue, close } = createIngestQueue(queueSettings(config), 'api', logger);
  try {
    const repos = await createRepositories({ connection, config, redis, logger });
    if (repos.profile.series !== 'redis') {
      process.stdout.write('This database keeps its rollups in the database (MongoDB profile): nothing to rebuild.\n');
      return 0;
    }
    // A job running or waiting during the rebuild could be counted twice or not at all (see rollup-rebuild.ts).
    const [workers, counts] = await Promise.all([queue.getWorkers(), queue.getJobCounts()]);
    const pending = counts.active + counts.waiting + counts.delayed;
    if (workers.length > 0 || pending > 0) {
      process.stderr.write(
        `Refused: ${workers.length} worker(s) are connected to queue "${config.QUEUE_NAME}" and ${pending} job(s) are active, waiting or delayed. ` +
          'Stop the API (nothing new arrives), let the workers empty the queue, stop them, then run this again.\n',
      );
      return 1;
    }
    const started = Date.now();
    const report = await rebuildRollups(repos.series, repos.models.dataPoint, {
      groupPoints: config.WORKER_GROUP_POINTS,
      progress: (records) => process.stdout.write(`\r${records.toLocaleString('en-US')} history records rolled up`),
    });
    process.stdout.write(
      `\nRollups rebuilt from ${report.records.toLocaleString('en-US')} history records in ${((Date.now() - started) / 1000).toFixed(1)} s ` +
        `(${report.cleared} old bucket sets deleted). Start the workers and the API again.\n`,
    );
    return 0;
  } finally {
    await close();
    await redis.quit();
    await connection.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
