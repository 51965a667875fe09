import type { KeyDelta } from '../../../src/domain/stats';
import { Checks, eventually, keyNames, retriedJobs, waitMs, type ScenarioResult } from '../support/kit';
import type { Scenario } from '../support/lab';
import { Ledger, startLoad } from '../support/load';
import { ProcessorFactory } from '../support/processor';
import { applyJob } from '../../support/store-writes';
import { storedPoints } from '../../support/stored-history';
import { settle, verify } from '../support/verify';

const SETTLE_TIMEOUT_MS = 150_000;
const POISONED_KEY = 's8/poisoned';
const POISON_BATCHES = 6;
/** A poison batch fails on its first attempt: well within this, never after the retries' backoff. */
const FAILED_WITHIN_MS = 5000;

/** The largest double as the key's stored sum, as data written before values were bounded could hold. */
async function poisonAggregate(scenario: Scenario): Promise<void> {
  const factory = await ProcessorFactory.open(scenario);
  try {
    const max = Number.MAX_VALUE;
    const delta: KeyDelta = { key: POISONED_KEY, count: 1, sum: max, min: max, max, firstTs: 1, lastTs: 1, lastValue: max };
    await applyJob(factory.aggregates(), [delta], { slot: 1, lane: 'seed', seq: 1 });
  } finally {
    await factory.close();
  }
}

/**
 * 8. Poison jobs amid load. A key's stored sum is the largest double, so each batch of that key makes the store
 * refuse its update (an infinite sum). Six such batches are posted while healthy load runs: each fails alone on its
 * first attempt, with its point kept in history; the healthy jobs grouped with it are written again without it and
 * complete on their first attempt.
 */
export async function poisonAmidLoad(scenario: Scenario): Promise<ScenarioResult> {
  const checks = new Checks();
  const ledger = new Ledger();
  await poisonAggregate(scenario);
  await scenario.startApi();
  await scenario.startWorker('worker-1');
  const load = startLoad(
    {
      baseUrl: scenario.baseUrl,
      keys: keyNames('s8', 12),
      points: 12_000,
      firstValue: 1,
      perRequest: 250,
      concurrency: 4,
      pointsPerSecond: 2000,
      requestPrefix: 's8',
    },
    ledger,
  );
  const poisonIds: string[] = [];
  const failedAfterMs: number[] = [];
  for (let index = 0; index < POISON_BATCHES; index += 1) {
    await waitMs(700);
    const posted = Date.now();
    const response = await fetch(`${scenario.baseUrl}/api/data/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([{ key: POISONED_KEY, value: 1e292 }]),
    });
    const body = (await response.json()) as { batchId?: string };
    checks.expect(response.status === 202 && typeof body.batchId === 'string', `a poison batch got ${response.status}, not 202`);
    if (!body.batchId) continue;
    poisonIds.push(body.batchId);
    const batchId = body.batchId;
    void eventually(async () => (await scenario.batchStatus(batchId)) === 'failed', 60_000).then((failed) => {
      if (failed) failedAfterMs.push(Date.now() - posted);
    });
  }
  await load.done;
  await settle(scenario, ledger, SETTLE_TIMEOUT_MS);
  await eventually(() => failedAfterMs.length === poisonIds.length, 10_000);

  const retried = await retriedJobs(scenario);
  const slowestFailure = Math.max(0, ...failedAfterMs);
  const kept = await storedPoints(scenario.db, { key: POISONED_KEY });
  checks.expect(failedAfterMs.length === POISON_BATCHES, `${failedAfterMs.length} of ${POISON_BATCHES} poison batches ended failed`);
  checks.expect(
    slowestFailure <= FAILED_WITHIN_MS,
    `a poison batch failed only ${slowestFailure} ms after its 202 (bound ${FAILED_WITHIN_MS} ms)`,
  );
  checks.expect(retried === 0, `${retried} healthy jobs needed a second attempt`);
  checks.expect(kept === POISON_BATCHES, `${kept} of ${POISON_BATCHES} poison points are in history`);
  checks.expect(load.unexpected.length === 0, `unexpected answers: ${load.unexpected.join('; ')}`);
  const verdict = await verify(
    scenario,
    ledger,
    '8. Poison batches (the store refuses their update) amid load',
    `${POISON_BATCHES} poison batches failed alone on their first attempt, each within ${slowestFailure} ms of its 202, ` +
      `their points kept in history; ${retried} healthy jobs needed a retry`,
    { failedJobs: POISON_BATCHES },
  );
  return { verdict, failedChecks: checks.failed };
}
