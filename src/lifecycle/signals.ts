import type { Logger } from 'pino';

/*
 * Imported first by each process, so that SIGTERM and SIGINT are trapped before the second or so its other modules
 * take to load: a signal during start-up (loading, connecting, creating indexes) waits for start-up to end and then
 * stops the process cleanly, instead of killing it half started.
 */
let signalled: string | undefined;
let onSignal: ((signal: string) => void) | undefined;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (signalled) return;
    signalled = signal;
    onSignal?.(signal);
  });
}

export interface StopSignals {
  /** Whether SIGTERM or SIGINT has arrived. */
  readonly requested: boolean;
  /** Runs the process's idempotent shutdown on the first signal (now, if one came during start-up), then exits 0. */
  onStop(close: () => Promise<void>): void;
}

export function trapStopSignals(logger: Logger, message: string): StopSignals {
  let shutdown: (() => Promise<void>) | undefined;
  const stop = (): void => {
    if (shutdown) void shutdown().then(() => process.exit(0));
  };
  const log = (signal: string): void => logger.info({ signal }, message);
  if (signalled) log(signalled);
  onSignal = (signal) => {
    log(signal);
    stop();
  };
  return {
    get requested() {
      return signalled !== undefined;
    },
    onStop(close) {
      shutdown = close;
      if (signalled) stop();
    },
  };
}
