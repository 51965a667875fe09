import type { Child } from '../support/child';
import { Checks, eventually, keyNames, takenOverJobs, waitMs, type Random, type ScenarioResult } from '../support/kit';
import type { Scenario } from '../support/lab';
import { Ledger, startLoad, type LoadRun } from '../support/load';
import { settle, verify } from '../support/verify';

const SETTLE_TIMEOUT_MS = 150_000;

/**
 * As fast as the API takes it while fewer than 40 jobs (10,000 points) wait, so a backlog waits at every kill on any
 * machine; the load stops once the kills are done, so how many points a run sends depends on the machine (`points`
 * is only a cap).
 */
function killLoad(scenario: Scenario, name: string, ledger: Ledger): LoadRun {
  const backlog = { jobs: 40, waiting: async () => (await scenario.queueCounts()).waiting };
  const options = { baseUrl: scenario.baseUrl, keys: keyNames(name, 12), requestPrefix: name, backlog };
  return startLoad({ ...options, points: 2_000_000, firstValue: 1, perRequest: 500, concurrency: 4, pointsPerSecond: 100_000 }, ledger);
}

/**
 * Kills `worker` with SIGKILL while jobs wait in the queue (so every worker has its WORKER_CONCURRENCY slots full:
 * the kill lands mid-batch). Returns the jobs active at that moment, or undefined when no job waited within 5 s.
 */
async function killMidBatch(scenario: Scenario, worker: Child): Promise<string[] | undefined> {
  const busy = await eventually(async () => (await scenario.queueCounts()).waiting > 0, 5000);
  if (!busy) return undefined;
  const active = await scenario.activeJobIds();
  scenario.note(`SIGKILL ${worker.name}; ${active.length} jobs active, ${JSON.stringify(await scenario.queueCounts())}`);
  worker.signal('SIGKILL');
  await worker.exited;
  return active;
}

/** Kills after which at least one job that was active went to another run (Bull's stalled check): kills mid-batch. */
async function killsThatLeftJobsBehind(scenario: Scenario, activeAtKills: readonly string[][]): Promise<number> {
  let kills = 0;
  for (const active of activeAtKills) {
    const counters = await Promise.all(active.map((id) => scenario.jobField(id, 'stalledCounter')));
    if (counters.some((counter) => Number(counter ?? 0) > 0)) kills += 1;
  }
  return kills;
}

/**
 * Once the load is done: waits until every accepted point is counted, checks that all `kills` came while jobs
 * waited and each left jobs that another run took over, and that the load got no unexpected answer. Returns how
 * many jobs were taken over.
 */
async function settleAfterKills(
  scenario: Scenario,
  ledger: Ledger,
  load: LoadRun,
  checks: Checks,
  activeAtKills: readonly string[][],
  kills: number,
): Promise<number> {
  await settle(scenario, ledger, SETTLE_TIMEOUT_MS);
  const takenOver = await takenOverJobs(scenario);
  const midBatch = await killsThatLeftJobsBehind(scenario, activeAtKills);
  checks.expect(activeAtKills.length === kills, `only ${activeAtKills.length} of ${kills} kills came while jobs were waiting`);
  checks.expect(midBatch === activeAtKills.length, `only ${midBatch} of ${activeAtKills.length} kills left jobs that were taken over`);
  checks.expect(load.unexpected.length === 0, `unexpected answers: ${load.unexpected.join('; ')}`);
  return takenOver;
}

/**
 * 1. One worker is killed with SIGKILL mid-batch four times (and started again each time) while a second worker
 * keeps going. The jobs the killed worker held are taken over once their 4 s lock expires.
 */
export async function killOneWorkerRepeatedly(scenario: Scenario, random: Random): Promise<ScenarioResult> {
  const checks = new Checks();
  const ledger = new Ledger();
  await scenario.startApi();
  await scenario.startWorker('worker-steady');
  let victim = await scenario.startWorker('worker-victim-1');
  const load = killLoad(scenario, 's1', ledger);
  const kills = 4;
  const activeAtKills: string[][] = [];
  for (let kill = 1; kill <= kills; kill += 1) {
    await waitMs(random.between(500, 1500));
    const active = await killMidBatch(scenario, victim);
    if (!active) break;
    activeAtKills.push(active);
    victim = await scenario.startWorker(`worker-victim-${kill + 1}`);
  }
  load.stop();
  await load.done;
  const takenOver = await settleAfterKills(scenario, ledger, load, checks, activeAtKills, kills);
  const verdict = await verify(
    scenario,
    ledger,
    '1. worker SIGKILLed mid-batch ×4, another keeps going',
    `${activeAtKills.length} kills, each mid-batch; ${takenOver} jobs taken over after their lock expired`,
  );
  return { verdict, failedChecks: checks.failed };
}

/**
 * 2. Three workers on the same queue; every 0.3-1 s one of them is killed with SIGKILL (never the last one
 * alive) or a dead one is started again, so two or three process the queue at any time; six kills in all.
 */
export async function killAndRestartAtRandom(scenario: Scenario, random: Random): Promise<ScenarioResult> {
  const checks = new Checks();
  const ledger = new Ledger();
  await scenario.startApi();
  let started = 0;
  const startWorker = async (): Promise<Child> => {
    started += 1;
    return scenario.startWorker(`worker-${started}`);
  };
  const workers: (Child | undefined)[] = [await startWorker(), await startWorker(), await startWorker()];
  const load = killLoad(scenario, 's2', ledger);
  const activeAtKills: string[][] = [];
  const kills = 6;
  while (activeAtKills.length < kills) {
    await waitMs(random.between(300, 1000));
    const slot = random.between(0, workers.length - 1);
    const worker = workers[slot];
    const alive = workers.filter((candidate) => candidate?.running).length;
    if (worker?.running && alive > 1) {
      const active = await killMidBatch(scenario, worker);
      if (!active) break;
      activeAtKills.push(active);
      workers[slot] = undefined;
    } else if (!worker?.running) {
      workers[slot] = await startWorker();
    }
  }
  load.stop();
  // Back to three, so the rest of the queue drains at full speed.
  for (let slot = 0; slot < workers.length; slot += 1) {
    if (!workers[slot]?.running) workers[slot] = await startWorker();
  }
  await load.done;
  const takenOver = await settleAfterKills(scenario, ledger, load, checks, activeAtKills, kills);
  const verdict = await verify(
    scenario,
    ledger,
    '2. 2-3 workers on one queue, SIGKILLed and restarted at random',
    `${activeAtKills.length} kills, each mid-batch; ${started} worker starts; ${takenOver} jobs taken over`,
  );
  return { verdict, failedChecks: checks.failed };
}
