import 'dotenv/config';
import { loadConfig } from './config/config';
import { createWorkerComponents } from './composition';
import { stopOnSignals } from './lifecycle/signals';
import { createLogger } from './logger';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.LOG_LEVEL, 'worker');
  const worker = await createWorkerComponents(config, logger);
  worker.start();
  logger.info({ queue: config.QUEUE_NAME, concurrency: config.WORKER_CONCURRENCY }, 'worker started');

  stopOnSignals(logger, 'finishing active jobs, then stopping', worker.close);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
