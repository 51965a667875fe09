import { setTimeout as sleep } from 'node:timers/promises';
import { storedPoints, storedRecords } from '../../support/stored-history';
import type { Scenario } from './lab';
import type { Ledger } from './load';

/** One line of the table in docs/RELIABILITY.md. */
export interface Row {
  scenario: string;
  sent: number;
  accepted: number;
  counted: number;
  inHistory: number;
  duplicates: number;
  lost: number;
  /** What the fault did, measured (kills, jobs taken over, 503s...). */
  notes: string;
}

export interface Verdict {
  row: Row;
  /** Every difference between what was accepted and what is stored, one sentence each; empty when exact. */
  problems: string[];
}

interface KeyStats {
  count: number;
  sum: number;
}

/**
 * Waits until the queue is empty (nothing waiting, active, delayed) and every accepted point is counted and in
 * history, or until `timeoutMs`; then the caller compares. Returning on timeout (instead of throwing) lets the
 * comparison say what is missing.
 */
export async function settle(scenario: Scenario, ledger: Ledger, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const counts = await scenario.queueCounts();
    if (counts.waiting + counts.active + counts.delayed === 0) {
      const [counted, stored] = await Promise.all([countedPoints(scenario, ledger), storedPoints(scenario.db)]);
      if (counted >= ledger.accepted && stored >= ledger.accepted) {
        // A quiet second: a late re-run would show up as more than accepted.
        await sleep(1000);
        const again = await scenario.queueCounts();
        if (again.waiting + again.active + again.delayed === 0) return;
      }
    }
    await sleep(500);
  }
  scenario.note(`not settled after ${timeoutMs} ms: ${JSON.stringify(await scenario.queueCounts())}`);
}

/** Points counted over the ledger's keys (or `keys`), as the API reports them. */
export async function countedPoints(scenario: Scenario, ledger: Ledger, keys: readonly string[] = ledger.keys): Promise<number> {
  const stats = await Promise.all(keys.map((key) => statsOf(scenario.baseUrl, key)));
  return stats.reduce((total, { count }) => total + count, 0);
}

/** A key's aggregate as the API serves it (GET /api/data/stats/:key); a key never counted is 0. */
async function statsOf(baseUrl: string, key: string): Promise<KeyStats> {
  const response = await fetch(`${baseUrl}/api/data/stats/${encodeURIComponent(key)}`);
  if (response.status === 404) return { count: 0, sum: 0 };
  const body = (await response.json()) as { count?: unknown; sum?: unknown };
  if (response.status !== 200 || typeof body.count !== 'number' || typeof body.sum !== 'number') {
    throw new Error(`GET stats of ${key}: ${response.status} ${JSON.stringify(body)}`);
  }
  return { count: body.count, sum: body.sum };
}

/** Each key's points and their sum over its rollup buckets of `step` (GET /api/data/series), from `from` to a day ahead. */
export async function rolledUp(baseUrl: string, keys: readonly string[], step: '1m' | '1d', from: number): Promise<Map<string, KeyStats>> {
  const totals = new Map<string, KeyStats>();
  for (let start = 0; start < keys.length; start += 10) {
    const batch = keys.slice(start, start + 10);
    const query = batch.map((key) => `key=${encodeURIComponent(key)}`).join('&');
    const response = await fetch(`${baseUrl}/api/data/series?${query}&step=${step}&from=${from}&to=${Date.now() + 86_400_000}`);
    const body = (await response.json()) as { series?: { key: string; buckets: { count: number; sum: number }[] }[] };
    if (response.status !== 200 || !body.series) throw new Error(`GET series: ${response.status} ${JSON.stringify(body)}`);
    for (const { key, buckets } of body.series) {
      totals.set(key, { count: buckets.reduce((n, b) => n + b.count, 0), sum: buckets.reduce((n, b) => n + b.sum, 0) });
    }
  }
  return totals;
}

/**
 * Compares every key's count and sum (from the API) and the history (every record, from the database) with what
 * the 202 answers accepted. Duplicates: points counted or stored more often than accepted (or never accepted);
 * lost: accepted points not counted or not stored. Both take the worse of the aggregates, the rollups and the history.
 */
export async function verify(
  scenario: Scenario,
  ledger: Ledger,
  label: string,
  notes: string,
  options: {
    keys?: readonly string[];
    /** Jobs the scenario fails on purpose. */ failedJobs?: number;
    /** The oldest timestamp of points stamped in the past: only their day buckets are kept that long. */ stampedSince?: number;
  } = {},
): Promise<Verdict> {
  const keys = options.keys ?? ledger.keys;
  const problems: string[] = [];
  let counted = 0;
  let countedTooMany = 0;
  let countedTooFew = 0;
  for (const key of keys) {
    const stats = await statsOf(scenario.baseUrl, key);
    const expected = ledger.expected(key);
    counted += stats.count;
    countedTooMany += Math.max(0, stats.count - expected.count);
    countedTooFew += Math.max(0, expected.count - stats.count);
    if (stats.count !== expected.count || stats.sum !== expected.sum) {
      problems.push(`${key}: counted ${stats.count} points summing to ${stats.sum}; accepted ${expected.count} summing to ${expected.sum}`);
    }
  }

  // The rollups count like the statistics: every key's minute and day buckets add up to what was accepted.
  let rolledTooMany = 0;
  let rolledTooFew = 0;
  const windows: ['1m' | '1d', number][] =
    options.stampedSince === undefined
      ? [
          ['1m', Date.now() - 47 * 3_600_000],
          ['1d', Date.now() - 7 * 86_400_000],
        ]
      : [['1d', options.stampedSince - 86_400_000]];
  for (const [step, from] of windows) {
    const totals = await rolledUp(scenario.baseUrl, keys, step, from);
    let tooMany = 0;
    let tooFew = 0;
    for (const key of keys) {
      const rolled = totals.get(key) ?? { count: 0, sum: 0 };
      const expected = ledger.expected(key);
      tooMany += Math.max(0, rolled.count - expected.count);
      tooFew += Math.max(0, expected.count - rolled.count);
      if (rolled.count !== expected.count || rolled.sum !== expected.sum) {
        problems.push(
          `${key}: its ${step} buckets hold ${rolled.count} points summing to ${rolled.sum}; accepted ${expected.count} summing to ${expected.sum}`,
        );
      }
    }
    rolledTooMany = Math.max(rolledTooMany, tooMany);
    rolledTooFew = Math.max(rolledTooFew, tooFew);
  }

  const wanted = new Set(keys);
  // History is stored in buckets: expanded, each point is one record, named by its batch and its index there.
  const records = await storedRecords(scenario.db);
  const seen = new Map<number, number>();
  const ids = new Map<string, number>();
  let inHistory = 0;
  let storedUnaccepted = 0;
  for (const record of records) {
    if (!wanted.has(record.key)) continue;
    inHistory += 1;
    ids.set(record._id, (ids.get(record._id) ?? 0) + 1);
    if (ledger.acceptedValues.get(record.value) !== record.key) {
      storedUnaccepted += 1;
      continue;
    }
    seen.set(record.value, (seen.get(record.value) ?? 0) + 1);
  }
  let storedTwice = 0;
  let notStored = 0;
  for (const [value, key] of ledger.acceptedValues) {
    if (!wanted.has(key)) continue;
    const times = seen.get(value) ?? 0;
    if (times === 0) notStored += 1;
    storedTwice += Math.max(0, times - 1);
  }
  // A point of one job in two buckets (or in two runs' buckets) is stored twice under one record id.
  let idsTwice = 0;
  for (const times of ids.values()) idsTwice += times - 1;
  if (storedUnaccepted > 0) problems.push(`${storedUnaccepted} history records hold a value that was never accepted for their key`);
  if (storedTwice > 0) problems.push(`${storedTwice} accepted points are stored more than once in history`);
  if (notStored > 0) problems.push(`${notStored} accepted points are missing from history`);
  if (idsTwice > 0) problems.push(`${idsTwice} history records share their record id with another one`);

  const failedJobs = (await scenario.queueCounts()).failed;
  const expectedFailures = options.failedJobs ?? 0;
  if (failedJobs !== expectedFailures) problems.push(`${failedJobs} jobs failed for good (expected ${expectedFailures})`);

  const accepted = keys.reduce((total, key) => total + ledger.expected(key).count, 0);
  return {
    row: {
      scenario: label,
      sent: ledger.sent,
      accepted,
      counted,
      inHistory,
      duplicates: Math.max(countedTooMany, storedTwice + storedUnaccepted, idsTwice, rolledTooMany),
      lost: Math.max(countedTooFew, notStored, rolledTooFew),
      notes,
    },
    problems,
  };
}
