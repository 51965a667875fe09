import { Checks, keyNames, waitMs, type ScenarioResult } from '../support/kit';
import type { Scenario } from '../support/lab';
import { Ledger, keyedUploadInFlight, startLoad } from '../support/load';
import { settle, verify } from '../support/verify';

const SETTLE_TIMEOUT_MS = 150_000;
/** A dead API's hold on an Idempotency-Key in flight lasts its lease (15 s, no longer renewed). */
const LEASE_MS = 15_000;
/** The resend is accepted within the lease plus the new API's start and a client's retry pace. */
const RESEND_BOUND_MS = LEASE_MS + 5000;

/**
 * 7. The API is killed with SIGKILL while a slow NDJSON upload streams and JSON requests are in flight, and a new
 * API starts on the same port. The clients resend under their Idempotency-Keys: `409` while the dead API's hold on
 * a key lasts (its lease, which nobody renews any more), then `202`. Nothing is counted twice, not even a JSON
 * batch the dead API stored before it could answer (its resend maps to the same batch).
 */
export async function killApi(scenario: Scenario): Promise<ScenarioResult> {
  const checks = new Checks();
  const ledger = new Ledger();
  const api = await scenario.startApi('api-1');
  await scenario.startWorker('worker-1');
  const load = startLoad(
    {
      baseUrl: scenario.baseUrl,
      keys: keyNames('s7', 12),
      points: 12_000,
      firstValue: 1,
      perRequest: 250,
      concurrency: 4,
      pointsPerSecond: 1000,
      requestPrefix: 's7',
    },
    ledger,
  );
  await waitMs(3000);
  const { points: uploadPoints, upload } = await keyedUploadInFlight(scenario.port, 's7', 's7-stream', ledger, {
    durationMs: 4000,
    deadlineMs: 90_000,
    inFlightMs: 1000,
  });
  scenario.note('SIGKILL api-1');
  const killedAt = Date.now();
  api.signal('SIGKILL');
  await api.exited;
  await scenario.startApi('api-2');
  const uploaded = await upload;
  const acceptedAfterMs = (uploaded.attempts.at(-1)?.startedAt ?? killedAt) - killedAt;
  if (uploaded.accepted) ledger.accept(uploadPoints);
  await load.done;
  await settle(scenario, ledger, SETTLE_TIMEOUT_MS);

  const answers = uploaded.attempts.map((attempt) => attempt.status || 'connection cut');
  const cut = load.requests.filter((request) => request.status === 0).length;
  const inFlight = load.requests.filter((request) => request.status === 409).length;
  checks.expect(
    uploaded.attempts.some((attempt) => attempt.status === 409),
    `the resent upload never found its key still held by the dead API (answers: ${answers.join(', ')})`,
  );
  checks.expect(
    uploaded.accepted && acceptedAfterMs <= RESEND_BOUND_MS,
    `the upload cut by the kill was ${uploaded.accepted ? `accepted only ${acceptedAfterMs} ms` : 'not accepted within 90 s'} after the kill ` +
      `(bound ${RESEND_BOUND_MS} ms): ${answers.join(', ')}`,
  );
  checks.expect(load.unexpected.length === 0, `unexpected answers: ${load.unexpected.join('; ')}`);
  const verdict = await verify(
    scenario,
    ledger,
    '7. API SIGKILLed mid-request, a new one started on its port',
    `a streamed upload cut by the kill was resent under its Idempotency-Key and accepted ${acceptedAfterMs} ms after the ` +
      `kill (answers: ${summarize(answers)}; the dead API's hold on the key is a 15 s lease); ${cut} JSON requests cut ` +
      `and resent under their keys, ${inFlight} answers 409 meanwhile`,
  );
  return { verdict, failedChecks: checks.failed };
}

/** "409 ×12" instead of twelve 409s in a row. */
function summarize(answers: readonly (number | string)[]): string {
  const runs: { answer: number | string; count: number }[] = [];
  for (const answer of answers) {
    const last = runs.at(-1);
    if (last?.answer === answer) last.count += 1;
    else runs.push({ answer, count: 1 });
  }
  return runs.map((run) => (run.count > 1 ? `${run.answer} ×${run.count}` : String(run.answer))).join(', ');
}
