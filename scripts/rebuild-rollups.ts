// `npm run rollups:rebuild`: recomputes the FerretDB profile's rollups (kept in Redis) from history after Redis lost
// them; `-- --mark-complete` only records that they are complete (a Redis that kept its data). docs/storage.md, "Rollups".
import 'dotenv/config';
import { parseArgs } from 'node:util';
import { queueSettings } from '../src/composition';
import { connectMongo } from '../src/storage/connect';
import { loadConfig } from '../src/config/config';
import { createLogger } from '../src/logger';
import { createIngestQueue, type IngestQueue } from '../src/queue/ingest-queue';
import { createRedis } from '../src/queue/redis';
import { createRepositories } from '../src/storage';
import { rebuildRollups } from '../src/storage/rollup-rebuild';

// Active jobs finish within this once the queue is paused (a dead worker's job waits for its lock and the stall check).
const DRAIN_TIMEOUT_MS = 5 * 60_000;

const write = (text: string): boolean => process.stdout.write(text);

/** Waits until no job is active: the queue is paused, so none starts. */
async function drain(queue: IngestQueue): Promise<void> {
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  for (;;) {
    const { active } = await queue.getJobCounts();
    if (active === 0) return;
    if (Date.now() > deadline) throw new Error(`${active} job(s) still active after ${DRAIN_TIMEOUT_MS / 1000} s; nothing was changed`);
    write(`\rwaiting for ${active} active job(s) to finish`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { 'mark-complete': { type: 'boolean', default: false } } });
  const config = loadConfig();
  const logger = createLogger('error', 'rollups');
  const connection = await connectMongo(config.MONGODB_URI, logger, false);
  const redis = createRedis(config.REDIS_URL, 'worker', logger);
  const { queue, close } = createIngestQueue(queueSettings(config), 'api', logger);
  try {
    const repos = await createRepositories({ connection, config, redis, logger });
    const rollups = repos.series.rebuildable();
    if (!rollups) {
      write('This database keeps its rollups in the database (MongoDB profile): nothing to rebuild.\n');
      return 0;
    }
    if (values['mark-complete']) {
      await rollups.markComplete();
      write('Rollups marked complete: processes no longer warn about them.\n');
      return 0;
    }
    // Workers take no job while the queue is paused (ingest still queues): no job is in both the history read and
    // its own rollup write, or in neither.
    const pausedBefore = await queue.isPaused();
    if (!pausedBefore) await queue.pause();
    try {
      await drain(queue);
      const started = Date.now();
      const report = await rebuildRollups(repos.series, repos.models, {
        historyRetentionMs: config.HISTORY_RETENTION,
        progress: (records) => write(`\r${records.toLocaleString('en-US')} history records rolled up`),
      });
      write(
        `\nRollups rebuilt from ${report.records.toLocaleString('en-US')} history records in ${((Date.now() - started) / 1000).toFixed(1)} s` +
          ` (${report.cleared.toLocaleString('en-US')} old buckets replaced).\n`,
      );
      if (config.HISTORY_RETENTION !== null) {
        write(
          `Buckets starting before ${new Date(report.from['1d']).toISOString()} (history no longer holds their points) were kept as they were.\n`,
        );
      }
    } finally {
      if (!pausedBefore) await queue.resume();
    }
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
    process.stderr.write(`\n${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
