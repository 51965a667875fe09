import type { Logger } from 'pino';

/*
 * Imported first by each process, so that SIGTERM and SIGINT are trapped from the start: a process stopped while it
 * loads or connects (nothing taken, nothing to finish) exits 0 at once instead of dying of the signal or of its
 * half-opened connections; once started, it runs its shutdown first.
 */
let onSignal: ((signal: string) => void) | undefined;
let signalled = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (signalled) return;
    signalled = true;
    if (onSignal) onSignal(signal);
    else process.exit(0);
  });
}

// Once stopping, a library's fire-and-forget promise cut short by the closing connections (Bull's worker naming, at a
// stop right after start) must not turn a clean stop into a crash; before that, an unhandled rejection still is one.
process.on('unhandledRejection', (reason) => {
  if (!signalled) throw reason;
});

export interface StopSignals {
  /** Runs the process's idempotent shutdown on the first signal, then exits 0. Before it is given, a signal exits 0. */
  onStop(close: () => Promise<void>): void;
}

export function trapStopSignals(logger: Logger, message: string): StopSignals {
  let shutdown: (() => Promise<void>) | undefined;
  onSignal = (signal) => {
    logger.info({ signal }, shutdown ? message : 'stopped while starting');
    if (shutdown) void shutdown().then(() => process.exit(0));
    else process.exit(0);
  };
  return {
    onStop(close) {
      shutdown = close;
    },
  };
}
