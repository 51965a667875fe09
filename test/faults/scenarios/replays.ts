import Queue from 'bull';
import type { JobPayload } from '../../../src/domain/job-payload';
import { jobIdOf } from '../../../src/domain/job-payload';
import { Checks, keyNames, waitMs, type ScenarioResult } from '../support/kit';
import type { Scenario } from '../support/lab';
import { Ledger, startLoad, type Point } from '../support/load';
import { dyingHalfWay, ProcessorFactory } from '../support/processor';
import { settle, verify, type Verdict } from '../support/verify';

const SETTLE_TIMEOUT_MS = 150_000;
const HOUR = 3600 * 1000;
/** 00:30 UTC: 23 h later is in the 4th guard slot after it (kept), 31 h later in the 6th (dropped). */
const T0 = Date.UTC(2026, 0, 1, 0, 30);
/** Options of a job the API enqueues (composition.ts), so a redelivered job is retried the same way. */
const JOB_OPTIONS = { attempts: 10, backoff: { type: 'exponential', delay: 1000 } } as const;

/**
 * 5a. Every job is delivered again and again: copies of waiting jobs run while the original runs (another Bull id,
 * the same payload), and once all are done every job is removed and added again under its own id, three times.
 */
export async function redeliverEveryJob(scenario: Scenario): Promise<ScenarioResult> {
  const checks = new Checks();
  const ledger = new Ledger();
  await scenario.startApi();
  await scenario.startWorker('worker-1');
  await scenario.startWorker('worker-2');
  const queue = new Queue<JobPayload>(scenario.queue, scenario.lab.redis.url);
  try {
    const load = startLoad(
      {
        baseUrl: scenario.baseUrl,
        keys: keyNames('s5', 12),
        points: 10_000,
        firstValue: 1,
        perRequest: 500,
        concurrency: 2,
        pointsPerSecond: 1500,
        requestPrefix: 's5',
      },
      ledger,
    );
    const payloads = new Map<string, JobPayload>();
    let liveCopies = 0;
    while (!load.finished) {
      // A copy of each job that waits or runs now: two runs of one job at the same time, on two workers.
      const ids = [...(await scenario.redis.lrange(`bull:${scenario.queue}:wait`, 0, 1)), ...(await scenario.activeJobIds())];
      for (const id of ids) {
        if (payloads.has(id) || id.includes(':copy')) continue;
        const job = await queue.getJob(id);
        if (!job) continue;
        payloads.set(id, job.data);
        await queue.add(job.data, { ...JOB_OPTIONS, jobId: `${id}:copy` });
        liveCopies += 1;
      }
      await waitMs(200);
    }
    await load.done;
    await settle(scenario, ledger, SETTLE_TIMEOUT_MS);

    const jobIds = await originalJobIds(scenario);
    for (const id of jobIds) {
      if (payloads.has(id)) continue;
      const job = await queue.getJob(id);
      if (job) payloads.set(id, job.data);
    }
    checks.expect(payloads.size === jobIds.length, `only ${payloads.size} of ${jobIds.length} job payloads could be read back`);
    let redeliveries = 0;
    for (let round = 1; round <= 3; round += 1) {
      for (const [id, data] of payloads) {
        await (await queue.getJob(id))?.remove();
        await queue.add(data, { ...JOB_OPTIONS, jobId: id });
        redeliveries += 1;
      }
      await settle(scenario, ledger, SETTLE_TIMEOUT_MS);
    }
    checks.expect(liveCopies >= 5, `only ${liveCopies} copies ran beside their original`);
    checks.expect(load.unexpected.length === 0, `unexpected answers: ${load.unexpected.join('; ')}`);
    const verdict = await verify(
      scenario,
      ledger,
      '5a. every job delivered again: concurrent copies, then 3 more times each',
      `${liveCopies} copies ran beside their original, ${redeliveries} redeliveries of ${payloads.size} finished jobs`,
    );
    return { verdict, failedChecks: checks.failed };
  } finally {
    await queue.close();
  }
}

/** Ids of the jobs the API enqueued that finished (copies and redeliveries record under the same id). */
async function originalJobIds(scenario: Scenario): Promise<string[]> {
  const records = await scenario.db
    .collection<{ _id: string }>('processedrecords')
    .find({}, { projection: { _id: 1 } })
    .toArray();
  return records.map((record) => record._id);
}

interface WindowRun {
  ledger: Ledger;
  keys: string[];
  /** Per key, the points the interrupted jobs wrote before they died (the keys of the shards they reached). */
  pointsWrittenBeforeDying: Map<string, number>;
  interruptedJobs: number;
  newerJobs: number;
}

const INTERRUPTED_JOBS = 5;
const NEWER_JOBS = 60;
const NEWER_LANES = 6;

/**
 * Jobs interrupted half-way through their aggregate writes at T0, then many newer jobs of other workers (lanes) on
 * the same keys at T0 + delay, then the interrupted jobs re-run at T0 + delay.
 */
async function interruptThenRerun(scenario: Scenario, prefix: string, firstValue: number, delayMs: number): Promise<WindowRun> {
  const factory = await ProcessorFactory.open(scenario);
  try {
    const ledger = new Ledger();
    const keys = keyNames(prefix, 10);
    let value = firstValue;
    const jobOf = (batchId: string, pointsPerKey: number, ts: number): { id: string; data: JobPayload; points: Point[] } => {
      const points: Point[] = [];
      for (let round = 0; round < pointsPerKey; round += 1) for (const key of keys) points.push({ key, value: value++ });
      ledger.sent += points.length;
      return {
        id: jobIdOf(batchId, 0),
        data: { batchId, chunk: 0, receivedAt: ts, points: points.map((point, i) => ({ ...point, i, ts })) },
        points,
      };
    };

    const interrupted = Array.from({ length: INTERRUPTED_JOBS }, (_, n) => jobOf(`${prefix}-interrupted-${n}`, 10, T0));
    const documentOf = await factory.documentOf();
    const shards = [...new Set(keys.map(documentOf))];
    const dyingAfter = new Set(shards.slice(0, Math.ceil(shards.length / 2)));
    const writtenKeys = keys.filter((key) => dyingAfter.has(documentOf(key)));
    const pointsWrittenBeforeDying = new Map<string, number>();
    for (const job of interrupted) {
      const dying = factory.build(
        () => T0,
        (deps) => ({ aggregates: dyingHalfWay(deps.aggregates, documentOf, dyingAfter) }),
      );
      await dying.process({ id: job.id, data: job.data, attempt: 1 }).then(
        () => {
          throw new Error('the dying processor finished its job');
        },
        () => undefined,
      );
      for (const key of writtenKeys) pointsWrittenBeforeDying.set(key, (pointsWrittenBeforeDying.get(key) ?? 0) + 10);
      ledger.accept(job.points);
    }

    const later = (): number => T0 + delayMs;
    const lanes = Array.from({ length: NEWER_LANES }, () => factory.build(later));
    for (let n = 0; n < NEWER_JOBS; n += 1) {
      const job = jobOf(`${prefix}-newer-${n}`, 2, later());
      await lanes[n % NEWER_LANES]?.process({ id: job.id, data: job.data, attempt: 1 });
      ledger.accept(job.points);
    }
    const rerun = factory.build(later);
    for (const job of interrupted) await rerun.process({ id: job.id, data: job.data, attempt: 2 });
    return { ledger, keys, pointsWrittenBeforeDying, interruptedJobs: INTERRUPTED_JOBS, newerJobs: NEWER_JOBS };
  } finally {
    await factory.close();
  }
}

export interface WindowResult extends ScenarioResult {
  /** Outside the window: how many points were counted twice (expected: all the interrupted jobs wrote before dying). */
  outside: { countedTwice: number; writtenBeforeDying: number; verdict: Verdict };
}

/**
 * 5b. The edge of the guard window. Inside it (re-run 23 h after the interrupted run, 60 newer jobs of 6 other
 * lanes in between) the count is exact; outside it (31 h) the half the job wrote before dying is counted again,
 * which is where the promise ends (docs/guarantees.md, "The window"). Needs the API of scenario 5a (for GET stats).
 */
export async function rerunAtTheWindowEdge(scenario: Scenario): Promise<WindowResult> {
  const checks = new Checks();
  const inside = await interruptThenRerun(scenario, 's5-window-23h', 1_000_000, 23 * HOUR);
  const verdict = await verify(
    scenario,
    inside.ledger,
    '5b. job killed mid-write, re-run 23 h later after newer jobs (guard window 24 h)',
    `${inside.interruptedJobs} jobs killed half-way through their aggregate writes, ${inside.newerJobs} newer jobs ` +
      `of ${NEWER_LANES} other lanes on the same keys, then the re-runs: exact`,
    { keys: inside.keys, stampedSince: T0 },
  );

  const outside = await interruptThenRerun(scenario, 's5-window-31h', 2_000_000, 31 * HOUR);
  const beyond = await verify(scenario, outside.ledger, 'outside the window', '', { keys: outside.keys, stampedSince: T0 });
  const writtenBeforeDying = [...outside.pointsWrittenBeforeDying.values()].reduce((total, points) => total + points, 0);
  checks.expect(
    beyond.row.lost === 0 && beyond.row.duplicates === writtenBeforeDying,
    `31 h later: ${beyond.row.duplicates} points counted twice and ${beyond.row.lost} lost; the documented ` +
      `boundary is exactly the ${writtenBeforeDying} points written before the kill counted twice, none lost`,
  );
  return { verdict, failedChecks: checks.failed, outside: { countedTwice: beyond.row.duplicates, writtenBeforeDying, verdict: beyond } };
}
