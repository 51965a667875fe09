import type { Logger } from 'pino';
import type { HistoryStore } from './contract';
import type { StorageProfile } from './profile';

// A sweep runs this often at most (a tenth of the retention), and at least every minute.
const MAX_SWEEP_INTERVAL_MS = 10 * 60_000;
const MIN_SWEEP_INTERVAL_MS = 60_000;

/** Keeps history within HISTORY_RETENTION; a worker starts it, and stops it at shutdown. */
export interface HistoryRetention {
  start(): Promise<void>;
  /** Deletes the records past retention now; returns how many (0 when history is kept). */
  sweep(now?: number): Promise<number>;
  stop(): Promise<void>;
}

/**
 * MongoDB expires records past `retentionMs` (by their timestamp) with a TTL index, in the background about once a
 * minute. FerretDB v1 has no TTL indexes: the worker deletes them itself on a timer. With `null`, history is kept.
 */
export function createHistoryRetention(
  profile: StorageProfile,
  history: HistoryStore,
  retentionMs: number | null,
  logger: Logger,
  clock: () => number = Date.now,
): HistoryRetention {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();

  const sweep = async (now = clock()): Promise<number> => {
    if (retentionMs === null) return 0;
    return history.deleteOlderThan(new Date(now - retentionMs));
  };

  return {
    async start() {
      if (profile.historyExpiry === 'ttl-index') {
        await history.setExpiry(retentionMs === null ? null : Math.ceil(retentionMs / 1000));
        return;
      }
      if (retentionMs === null) return;
      const interval = Math.min(MAX_SWEEP_INTERVAL_MS, Math.max(MIN_SWEEP_INTERVAL_MS, retentionMs / 10));
      const tick = (): void => {
        running = sweep().then(
          (deleted) => {
            if (deleted > 0) logger.info({ deleted }, 'history past HISTORY_RETENTION deleted');
          },
          (error: unknown) => logger.warn({ err: (error as Error).message }, 'history retention sweep failed; it runs again later'),
        );
      };
      tick();
      timer = setInterval(tick, interval);
      timer.unref();
    },
    sweep,
    async stop() {
      if (timer) clearInterval(timer);
      await running;
    },
  };
}
