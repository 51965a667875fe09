import type { Logger } from 'pino';

/** On SIGTERM or SIGINT, runs the process's idempotent shutdown once and exits 0 when it is done. */
export function stopOnSignals(logger: Logger, message: string, close: () => Promise<void>): void {
  const stop = (signal: string): void => {
    logger.info({ signal }, message);
    void close().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => {
    stop('SIGTERM');
  });
  process.once('SIGINT', () => {
    stop('SIGINT');
  });
}
