// First: it traps stop signals before the other modules load.
import { trapStopSignals } from './lifecycle/signals';
import 'dotenv/config';
import { loadConfig } from './config/config';
import { createApiComponents } from './composition';
import { createLogger } from './logger';

let port: number | undefined;

async function main(): Promise<void> {
  const config = loadConfig();
  port = config.PORT;
  const logger = createLogger(config.LOG_LEVEL, 'api');
  const signals = trapStopSignals(logger, 'shutting down');
  const api = await createApiComponents(config, logger);
  signals.onStop(api.close);
  const listening = await api.listen(config.PORT);
  logger.info({ port: listening }, `API listening on http://127.0.0.1:${listening} (live page: /test-socket.html)`);
}

main().catch((error: unknown) => {
  if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
    console.error(`Port ${port} is already in use by another process: stop it, or set PORT to a free port (PORT=3001 npm start).`);
  } else {
    console.error(error instanceof Error ? error.message : error);
  }
  process.exit(1);
});
