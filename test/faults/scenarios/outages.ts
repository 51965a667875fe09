import type { Child } from '../support/child';
import { Checks, keyNames, outageWaits, retriedJobs, takenOverJobs, waitMs, type ScenarioResult } from '../support/kit';
import type { Scenario } from '../support/lab';
import { Ledger, keyedUploadInFlight, startLoad, type LoadRun } from '../support/load';
import { settle, verify } from '../support/verify';

const SETTLE_TIMEOUT_MS = 150_000;
/** "At once": a request during a Redis outage is answered (503) within this, never left hanging. */
export const OUTAGE_ANSWER_BOUND_MS = 2500;
const REDIS_OUTAGE_MS = 8000;
/** A request cut by the outage and resent under its Idempotency-Key is accepted within this once Redis is back. */
const UPLOAD_RESEND_BOUND_MS = 15_000;
const FERRETDB_OUTAGE_MS = 10_000;

function checkProcessesSurvived(checks: Checks, processes: readonly Child[]): void {
  for (const child of processes) {
    checks.expect(child.running, `${child.name} exited during the outage (${JSON.stringify(child.exitStatus)})`);
  }
}

function slowest(load: LoadRun, from: number, to: number): number {
  return Math.max(0, ...load.startedBetween(from, to).map((request) => request.ms));
}

/**
 * 3. Redis (AOF, appendfsync always) is killed with SIGKILL under load and started again on the same data 8 s
 * later. Ingest must answer 503 with Retry-After at once while it is down, the client retries, the worker waits
 * and resumes, and every point that got a 202 is counted.
 */
export async function restartRedis(scenario: Scenario): Promise<ScenarioResult> {
  const checks = new Checks();
  const ledger = new Ledger();
  const api = await scenario.startApi();
  const workers = [await scenario.startWorker('worker-1'), await scenario.startWorker('worker-2')];
  const load = startLoad(
    {
      baseUrl: scenario.baseUrl,
      keys: keyNames('s3', 12),
      points: 15_000,
      firstValue: 1,
      perRequest: 250,
      concurrency: 4,
      pointsPerSecond: 800,
      requestPrefix: 's3',
    },
    ledger,
  );
  await waitMs(4000);
  // A streamed upload with an Idempotency-Key is in flight when Redis dies; the client resends it afterwards.
  const { points: uploadPoints, upload } = await keyedUploadInFlight(scenario.port, 's3', 's3-stream', ledger, {
    durationMs: 3000,
    deadlineMs: 120_000,
    inFlightMs: 1000,
  });
  const down = Date.now();
  scenario.note('SIGKILL redis');
  await scenario.lab.redis.kill('SIGKILL');
  await waitMs(REDIS_OUTAGE_MS);
  scenario.note('starting redis again on the same data');
  await scenario.lab.redis.start();
  const up = Date.now();
  const uploaded = await upload;
  const uploadAcceptedAfterMs = (uploaded.attempts.at(-1)?.startedAt ?? up) - up;
  if (uploaded.accepted) ledger.accept(uploadPoints);
  await load.done;
  await settle(scenario, ledger, SETTLE_TIMEOUT_MS);

  const duringOutage = load.startedBetween(down, up - 1000);
  const refused = duringOutage.filter((request) => request.status === 503);
  const slowestDuring = slowest(load, down, up - 1000);
  checks.expect(refused.length > 0, 'no request was answered 503 while Redis was down');
  checks.expect(
    refused.every((request) => request.retryAfter !== null),
    'a 503 during the outage had no Retry-After',
  );
  checks.expect(
    duringOutage.every((request) => request.status === 503),
    `requests during the outage got ${[...new Set(duringOutage.map((request) => request.status))].join(', ')}, not only 503`,
  );
  checks.expect(
    slowestDuring < OUTAGE_ANSWER_BOUND_MS,
    `a request during the outage took ${slowestDuring} ms (bound ${OUTAGE_ANSWER_BOUND_MS} ms)`,
  );
  checks.expect(load.unexpected.length === 0, `unexpected answers: ${load.unexpected.join('; ')}`);
  checks.expect(
    uploaded.accepted && uploadAcceptedAfterMs < UPLOAD_RESEND_BOUND_MS,
    `the upload cut by the outage was ${uploaded.accepted ? `accepted only ${uploadAcceptedAfterMs} ms` : 'not accepted within 120 s'} ` +
      `after Redis was back: ${uploaded.attempts.map((attempt) => attempt.status || attempt.error).join(', ')}`,
  );
  checkProcessesSurvived(checks, [api, ...workers]);
  // The chunks the cut stream had stored could not be removed while Redis was down: they must belong to a batch
  // that was never committed, which the worker drops when they come due (24 h later).
  const held = await scenario.heldJobIds();
  const heldStatuses = await Promise.all(held.map(async (id) => scenario.batchStatus(id.split(':')[0] ?? '')));
  checks.expect(
    heldStatuses.every((status) => status === 'receiving'),
    `held jobs ${held.join(', ')} belong to batches in state ${heldStatuses.join(', ')}, not an uncommitted stream`,
  );
  const takenOver = await takenOverJobs(scenario);
  const verdict = await verify(
    scenario,
    ledger,
    '3. Redis SIGKILLed, restarted 8 s later (AOF)',
    `${duringOutage.length} requests during the outage, all 503 + Retry-After, slowest ${slowestDuring} ms; ` +
      `a streamed upload cut by the kill was resent under its Idempotency-Key and accepted ${uploadAcceptedAfterMs} ms after ` +
      `Redis was back (answers: ${uploaded.attempts.map((attempt) => attempt.status || 'connection cut').join(', ')}), ` +
      `${held.length} chunk of it held until dropped as uncommitted; ${takenOver} jobs taken over`,
  );
  return { verdict, failedChecks: checks.failed };
}

/**
 * 4. FerretDB is killed with SIGKILL under load and started again on the same SQLite files 10 s later. Jobs that
 * run into the outage wait it out and run again once it answers; none may fail for good, nothing may be lost.
 */
export async function restartFerretdb(scenario: Scenario): Promise<ScenarioResult> {
  const checks = new Checks();
  const ledger = new Ledger();
  const api = await scenario.startApi();
  const workers = [await scenario.startWorker('worker-1'), await scenario.startWorker('worker-2')];
  const load = startLoad(
    {
      baseUrl: scenario.baseUrl,
      keys: keyNames('s4', 12),
      points: 15_000,
      firstValue: 1,
      perRequest: 500,
      concurrency: 2,
      pointsPerSecond: 1000,
      requestPrefix: 's4',
    },
    ledger,
  );
  await waitMs(4000);
  scenario.note('SIGKILL ferretdb');
  const down = Date.now();
  await scenario.lab.ferret.kill('SIGKILL');
  await waitMs(FERRETDB_OUTAGE_MS);
  scenario.note('starting ferretdb again on the same data');
  await scenario.lab.ferret.start();
  const up = Date.now();
  await load.done;
  await settle(scenario, ledger, SETTLE_TIMEOUT_MS);

  const duringOutage = load.startedBetween(down, up);
  checks.expect(
    duringOutage.every((request) => request.status === 202),
    'ingest did not answer 202 while only the database was down',
  );
  checks.expect(load.unexpected.length === 0, `unexpected answers: ${load.unexpected.join('; ')}`);
  checkProcessesSurvived(checks, [api, ...workers]);
  const waited = outageWaits(scenario);
  checks.expect(waited >= 1, 'no job ran into the outage: it did not hit a job');
  // Waiting the outage out uses no attempt; a job whose first look after the restart still failed may use one.
  const retried = await retriedJobs(scenario);
  const verdict = await verify(
    scenario,
    ledger,
    '4. FerretDB SIGKILLed, restarted 10 s later',
    `${duringOutage.length} requests accepted during the outage; ${waited} job runs waited it out without using an attempt, ` +
      `${retried} jobs needed a second attempt, 0 failed`,
  );
  return { verdict, failedChecks: checks.failed };
}
