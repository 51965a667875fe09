import { storedPoints } from '../../support/stored-history';
import { waitMs } from './kit';
import type { Scenario } from './lab';
import type { Ledger } from './load';
import { countedPoints, rolledUp } from './verify';

// Past a scenario's target, the watch goes on this long so a report shows how late a view was, not only that it was.
const WATCH_LIMIT_MS = 6 * 60_000;
const WATCH_EVERY_MS = 1000;

export type View = 'statistics' | 'history' | 'rollups' | 'batch statuses';
export const VIEWS: readonly View[] = ['statistics', 'history', 'rollups', 'batch statuses'];

/** Whether each view holds every accepted point (or, for batch statuses, every accepted batch is `completed`). */
async function completeViews(scenario: Scenario, ledger: Ledger, since: number): Promise<Record<View, boolean>> {
  const keys = ledger.keys;
  const [counted, stored, minutes, statuses] = await Promise.all([
    countedPoints(scenario, ledger),
    storedPoints(scenario.db, { key: { $in: [...keys] } }),
    rolledUp(scenario.baseUrl, keys, '1m', since),
    Promise.all([...ledger.batchIds].map((batchId) => scenario.batchStatus(batchId))),
  ]);
  const rolled = [...minutes.values()].reduce((total, bucket) => total + bucket.count, 0);
  return {
    statistics: counted === ledger.accepted,
    history: stored === ledger.accepted,
    rollups: rolled === ledger.accepted,
    'batch statuses': statuses.length > 0 && statuses.every((status) => status === 'completed'),
  };
}

/**
 * Watches the views until all are complete (or the watch limit): when each became complete, in ms after `lastFault`
 * (0 when it already was at the first look); null for a view that never did.
 */
export async function timeToComplete(
  scenario: Scenario,
  ledger: Ledger,
  lastFault: number,
  since: number,
): Promise<Record<View, number | null>> {
  const times: Record<View, number | null> = { statistics: null, history: null, rollups: null, 'batch statuses': null };
  const deadline = lastFault + WATCH_LIMIT_MS;
  while (Date.now() < deadline && VIEWS.some((view) => times[view] === null)) {
    const looked = Date.now();
    // A read that fails (the API busy, a view not readable yet) is a look that saw nothing complete.
    const complete = await completeViews(scenario, ledger, since).catch(() => undefined);
    for (const view of VIEWS) {
      if (complete?.[view] && times[view] === null) times[view] = Math.max(0, looked - lastFault);
    }
    await waitMs(WATCH_EVERY_MS);
  }
  return times;
}

export const seconds = (ms: number | null): string =>
  ms === null ? `not within ${WATCH_LIMIT_MS / 1000} s` : `${(ms / 1000).toFixed(1)} s`;

const AHEAD_EVERY_MS = 500;

/** How far the statistics ran ahead of history: points counted whose record was not yet stored. */
export interface AheadOfHistory {
  /** The longest stretch of looks, each one AHEAD_EVERY_MS apart, that all saw statistics count more than history held. */
  longestMs: number;
  /** The most points counted and not yet in history at one look. */
  mostPoints: number;
}

/**
 * Looks every 0.5 s, until `stop()`, at the points the statistics of `keys` count and the history records of `keys`
 * stored. A job writes statistics before history, so under load every look may see a few in flight; a job killed
 * between the two keeps its points counted and not stored until another run takes it over.
 */
export function watchAheadOfHistory(scenario: Scenario, ledger: Ledger, keys: readonly string[]): { stop: () => Promise<AheadOfHistory> } {
  const result: AheadOfHistory = { longestMs: 0, mostPoints: 0 };
  let stretchFrom: number | undefined;
  const stopped = new AbortController();
  const watching = (async () => {
    while (!stopped.signal.aborted) {
      const looked = Date.now();
      const seen = await Promise.all([countedPoints(scenario, ledger, keys), storedPoints(scenario.db, { key: { $in: [...keys] } })]).catch(
        () => undefined,
      );
      // A look that failed (Redis or FerretDB restarting) leaves the stretch as it was.
      if (seen) {
        const [counted, stored] = seen;
        if (counted > stored) {
          stretchFrom ??= looked;
          result.mostPoints = Math.max(result.mostPoints, counted - stored);
          result.longestMs = Math.max(result.longestMs, looked - stretchFrom);
        } else {
          stretchFrom = undefined;
        }
      }
      await waitMs(AHEAD_EVERY_MS);
    }
  })();
  return {
    stop: async () => {
      stopped.abort();
      await watching;
      return result;
    },
  };
}
