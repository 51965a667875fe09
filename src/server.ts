import 'dotenv/config';
import { loadConfig } from './config/config';
import { createApiComponents } from './composition';
import { stopOnSignals } from './lifecycle/signals';
import { createLogger } from './logger';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.LOG_LEVEL, 'api');
  const api = await createApiComponents(config, logger);
  const port = await api.listen(config.PORT);
  logger.info({ port }, `API listening on http://127.0.0.1:${port} (live page: /test-socket.html)`);

  stopOnSignals(logger, 'shutting down', api.close);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
