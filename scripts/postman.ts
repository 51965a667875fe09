// `npm run test:postman`: the Postman collection run by newman against the built API and a worker, started here on
// a free port with a database and a queue of their own (Redis and MongoDB as `npm run stack` starts or reuses them).
import path from 'node:path';
import newman, { type NewmanRunSummary } from 'newman';
import { startOwnService } from './own-service';

const COLLECTION = path.resolve(__dirname, '..', 'postman', 'realtime-data-service.postman_collection.json');

async function main(): Promise<number> {
  const service = await startOwnService('postman');
  try {
    const summary = await new Promise<NewmanRunSummary>((resolve, reject) => {
      newman.run({ collection: COLLECTION, envVar: [{ key: 'baseUrl', value: service.baseUrl }], reporters: ['cli'] }, (error, result) =>
        error ? reject(error) : resolve(result),
      );
    });
    const { total = 0, failed = 0 } = summary.run.stats.assertions;
    process.stdout.write(`newman: ${total - failed} of ${total} assertions passed\n`);
    return summary.run.failures.length === 0 ? 0 : 1;
  } finally {
    await service.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
