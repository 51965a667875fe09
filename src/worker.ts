// First: it traps stop signals before the other modules load.
import { trapStopSignals } from './lifecycle/signals';
import 'dotenv/config';
import { loadConfig } from './config/config';
import { createWorkerComponents } from './composition';
import { createLogger } from './logger';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.LOG_LEVEL, 'worker');
  const signals = trapStopSignals(logger, 'finishing active jobs, then stopping');
  const worker = await createWorkerComponents(config, logger);
  signals.onStop(worker.close);
  worker.start();
  logger.info({ queue: config.QUEUE_NAME, concurrency: config.WORKER_CONCURRENCY }, 'worker started');
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
