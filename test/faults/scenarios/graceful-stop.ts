import net from 'node:net';
import { FAULT_SETTINGS, type Scenario } from '../support/lab';
import { Checks, eventually, keyNames, takenOverJobs, waitMs, type ScenarioResult } from '../support/kit';
import { Ledger, slowNdjsonUpload, startLoad, type Point } from '../support/load';
import { settle, verify } from '../support/verify';

const SETTLE_TIMEOUT_MS = 150_000;
const SHUTDOWN_TIMEOUT_MS = Number(FAULT_SETTINGS.SHUTDOWN_TIMEOUT_MS);
/** A process given SIGTERM exits 0 within its SHUTDOWN_TIMEOUT_MS, plus this for the process itself to end. */
const EXIT_MARGIN_MS = 1000;
const REFUSED_WITHIN_MS = 1000;

/** Resolves true when a new TCP connection to the port is refused, false when it is accepted. */
function connectionRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

/**
 * 6. SIGTERM mid-batch. The worker (twice, with a backlog and all its slots busy) finishes the jobs it has running,
 * hands none over, and exits 0 within
 * SHUTDOWN_TIMEOUT_MS. The API, while a slow NDJSON upload streams: refuses new connections at once, answers the
 * upload 202, and exits 0; a new API on the same port takes the load over (the client resends with the same
 * Idempotency-Key).
 */
export async function stopGracefully(scenario: Scenario): Promise<ScenarioResult> {
  const checks = new Checks();
  const ledger = new Ledger();
  const api = await scenario.startApi('api-1');
  let worker = await scenario.startWorker('worker-1');
  const load = startLoad(
    {
      baseUrl: scenario.baseUrl,
      keys: keyNames('s6', 12),
      points: 12_000,
      firstValue: 1,
      perRequest: 250,
      concurrency: 4,
      pointsPerSecond: 1000,
      requestPrefix: 's6',
    },
    ledger,
  );

  const workerStops: string[] = [];
  for (let stop = 1; stop <= 2; stop += 1) {
    await waitMs(2000);
    // A burst, so the worker has a full set of jobs running (WORKER_CONCURRENCY) and more waiting when it is told to stop.
    const burst = startLoad(
      {
        baseUrl: scenario.baseUrl,
        keys: keyNames('s6', 12),
        points: 16_000,
        firstValue: stop * 100_000,
        perRequest: 500,
        concurrency: 4,
        pointsPerSecond: 100_000,
        requestPrefix: `s6-burst-${stop}`,
      },
      ledger,
    );
    await burst.done;
    const busy = await eventually(async () => (await scenario.queueCounts()).waiting > 0, 5000);
    const active = await scenario.activeJobIds();
    checks.expect(busy && active.length > 0, `worker-${stop} had no backlog and ${active.length} active jobs when told to stop`);
    checks.expect(burst.unexpected.length === 0, `unexpected answers: ${burst.unexpected.join('; ')}`);
    const sent = Date.now();
    worker.signal('SIGTERM');
    const exit = await worker.exited;
    const tookMs = Date.now() - sent;
    checks.expect(exit.code === 0 && exit.signal === null, `${worker.name} ended with ${JSON.stringify(exit)} after SIGTERM, not code 0`);
    checks.expect(tookMs <= SHUTDOWN_TIMEOUT_MS + EXIT_MARGIN_MS, `${worker.name} took ${tookMs} ms to exit after SIGTERM`);
    // No other worker runs now: a job that is done was finished by the one that was stopped.
    const finished = await Promise.all(active.map(async (id) => (await scenario.jobField(id, 'finishedOn')) !== null));
    const unfinished = active.filter((_, index) => !finished[index]);
    checks.expect(unfinished.length === 0, `${worker.name} left ${unfinished.join(', ')} unfinished after SIGTERM`);
    workerStops.push(`${active.length} active jobs finished, exit 0 in ${tookMs} ms`);
    worker = await scenario.startWorker(`worker-${stop + 1}`);
  }

  // A slow client: 1000 points streamed over 4 s; SIGTERM arrives 1 s into it.
  const uploadPoints: Point[] = keyNames('s6', 12).flatMap((key, k) =>
    Array.from({ length: 84 }, (_, i) => ({ key, value: 1_000_000 + k * 1000 + i })),
  );
  const upload = slowNdjsonUpload(scenario.port, uploadPoints, 4000);
  ledger.sent += uploadPoints.length;
  await upload.started;
  await waitMs(1000);
  const sent = Date.now();
  api.signal('SIGTERM');
  const refused = await eventually(() => connectionRefused(scenario.port), REFUSED_WITHIN_MS);
  const refusedAfterMs = Date.now() - sent;
  const answer = await upload.answer;
  const exit = await api.exited;
  const apiTookMs = Date.now() - sent;
  checks.expect(refused, `the stopping API still accepted new connections ${REFUSED_WITHIN_MS} ms after SIGTERM`);
  checks.expect(answer.status === 202, `the upload in flight got ${answer.status} ${JSON.stringify(answer.body)}, not 202`);
  if (answer.status === 202) ledger.accept(uploadPoints);
  checks.expect(exit.code === 0 && exit.signal === null, `the API ended with ${JSON.stringify(exit)} after SIGTERM, not code 0`);
  checks.expect(apiTookMs <= SHUTDOWN_TIMEOUT_MS + EXIT_MARGIN_MS, `the API took ${apiTookMs} ms to exit after SIGTERM`);
  await scenario.startApi('api-2');

  await load.done;
  await settle(scenario, ledger, SETTLE_TIMEOUT_MS);
  const takenOver = await takenOverJobs(scenario);
  checks.expect(takenOver === 0, `${takenOver} jobs had to be taken over: a stopped worker left them behind`);
  checks.expect(load.unexpected.length === 0, `unexpected answers: ${load.unexpected.join('; ')}`);
  const verdict = await verify(
    scenario,
    ledger,
    '6. SIGTERM: worker ×2 mid-batch, API during a slow upload',
    `worker: ${workerStops.join('; ')}. API: new connections refused after ${refusedAfterMs} ms, upload in flight ` +
      `answered ${answer.status} after ${answer.ms} ms, exit ${exit.code ?? exit.signal} in ${apiTookMs} ms`,
  );
  return { verdict, failedChecks: checks.failed };
}
