import type { Child } from '../support/child';
import { seconds, timeToComplete, VIEWS, watchAheadOfHistory, type AheadOfHistory, type View } from '../support/consistency';
import { Checks, keyNames, outageWaits, retriedJobs, waitMs, type ScenarioResult } from '../support/kit';
import type { Scenario } from '../support/lab';
import { Ledger, startLoad } from '../support/load';
import { verify } from '../support/verify';

/** The target: every view of the data is complete this long after the last fault, with the shipped settings. */
export const CONSISTENT_WITHIN_MS = 90_000;
const WORKER_KILLS = 8;
const KILL_EVERY_MS = 2000;
const OUTAGE_MS = 5000;

/** Every setting the suite shortens, back to its shipped default (an empty value means "the default"). */
const SHIPPED_DEFAULTS = {
  JOB_CHUNK_SIZE: '',
  JOB_LOCK_MS: '',
  JOB_STALLED_INTERVAL_MS: '',
  SHUTDOWN_TIMEOUT_MS: '',
  KEEP_COMPLETED_JOBS: '',
};

/**
 * 9. The shipped settings (30 s locks, 30 s stalled checks, the default backoff and chunk size): 60,000 points over
 * 10 keys while one of two workers is SIGKILLed every 2 s eight times, Redis is SIGKILLed after the 4th kill and
 * FerretDB after the 6th, each started again 5 s later. Statistics, history, rollups and batch statuses must each be
 * complete within 90 s of the last fault; the measured times go into docs/RELIABILITY.md.
 */
export interface ShippedDefaultsResult extends ScenarioResult {
  /** When each view was complete, in ms after the last fault (null: not within the watch). */
  times: Record<View, number | null>;
  ahead: AheadOfHistory;
}

export async function recoverWithShippedDefaults(scenario: Scenario): Promise<ShippedDefaultsResult> {
  const checks = new Checks();
  const ledger = new Ledger();
  const since = Date.now() - 60_000;
  await scenario.startApi('api', SHIPPED_DEFAULTS);
  await scenario.startWorker('worker-steady', SHIPPED_DEFAULTS);
  let victim: Child = await scenario.startWorker('worker-victim-1', SHIPPED_DEFAULTS);
  const keys = keyNames('s9', 10);
  const ahead = watchAheadOfHistory(scenario, ledger, keys);
  const load = startLoad(
    {
      baseUrl: scenario.baseUrl,
      keys,
      points: 60_000,
      firstValue: 1,
      perRequest: 500,
      concurrency: 4,
      pointsPerSecond: 3000,
      requestPrefix: 's9',
    },
    ledger,
  );
  let lastFault = Date.now();
  const restart = async (name: string, server: { kill(signal: NodeJS.Signals): Promise<void>; start(): Promise<void> }): Promise<void> => {
    scenario.note(`SIGKILL ${name}`);
    await server.kill('SIGKILL');
    await waitMs(OUTAGE_MS);
    scenario.note(`starting ${name} again on the same data`);
    await server.start();
    lastFault = Date.now();
  };
  for (let kill = 1; kill <= WORKER_KILLS; kill += 1) {
    await waitMs(Math.max(0, lastFault + KILL_EVERY_MS - Date.now()));
    scenario.note(`SIGKILL ${victim.name}`);
    victim.signal('SIGKILL');
    await victim.exited;
    lastFault = Date.now();
    if (kill === 4) await restart('redis', scenario.lab.redis);
    if (kill === 6) await restart('ferretdb', scenario.lab.ferret);
    victim = await scenario.startWorker(`worker-victim-${kill + 1}`, SHIPPED_DEFAULTS);
  }
  await load.done;
  scenario.note(`load done ${Date.now() - lastFault} ms after the last fault`);
  const times = await timeToComplete(scenario, ledger, lastFault, since);
  const aheadOfHistory = await ahead.stop();
  for (const view of VIEWS) {
    const time = times[view];
    checks.expect(
      time !== null && time <= CONSISTENT_WITHIN_MS,
      `${view} complete ${seconds(time)} after the last fault (target ${CONSISTENT_WITHIN_MS / 1000} s)`,
    );
  }
  checks.expect(load.unexpected.length === 0, `unexpected answers: ${load.unexpected.join('; ')}`);
  const retried = await retriedJobs(scenario);
  const waited = outageWaits(scenario);
  const verdict = await verify(
    scenario,
    ledger,
    '9. shipped settings: worker SIGKILLed ×8, Redis and FerretDB SIGKILLed once each',
    `complete after the last fault: ${VIEWS.map((view) => `${view} ${seconds(times[view])}`).join(', ')}; ` +
      `statistics ahead of history for at most ${seconds(aheadOfHistory.longestMs)} in a row, by at most ` +
      `${aheadOfHistory.mostPoints.toLocaleString('en-US')} points; ` +
      `${waited} job runs waited out an outage without using an attempt, ${retried} jobs needed a second attempt`,
  );
  return { verdict, failedChecks: checks.failed, times, ahead: aheadOfHistory };
}
