import fs from 'node:fs';
import type { Scenario } from './lab';
import type { Verdict } from './verify';

/** What a scenario hands back: the comparison, and the fault's own checks (e.g. "answered within 2.5 s"). */
export interface ScenarioResult {
  verdict: Verdict;
  /** One sentence per fault-specific check that did not hold; empty when all did. */
  failedChecks: string[];
}

/** Collects the fault-specific checks of a scenario, with the measured value in each message. */
export class Checks {
  readonly failed: string[] = [];

  expect(holds: boolean, message: string): void {
    if (!holds) this.failed.push(message);
  }
}

/** A small seeded generator (mulberry32), so a run's kill times can be replayed with FAULTS_SEED. */
export class Random {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  between(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
}

export function keyNames(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, index) => `${prefix}/sensor-${index}`);
}

/** Ids of the jobs that finished (one processed record each). */
async function processedJobIds(scenario: Scenario): Promise<string[]> {
  const records = await scenario.db
    .collection<{ _id: string }>('processedrecords')
    .find({}, { projection: { _id: 1 } })
    .toArray();
  return records.map((record) => record._id);
}

/** Jobs Bull handed to another run after their worker stopped renewing the lock (killed, or cut off from Redis). */
export async function takenOverJobs(scenario: Scenario): Promise<number> {
  const ids = await processedJobIds(scenario);
  const counters = await Promise.all(ids.map((id) => scenario.jobField(id, 'stalledCounter')));
  return counters.filter((counter) => Number(counter ?? 0) > 0).length;
}

/** Jobs that needed more than one attempt (a failed attempt, then a retry after the backoff). */
export async function retriedJobs(scenario: Scenario): Promise<number> {
  return scenario.db.collection('processedrecords').countDocuments({ attempt: { $gt: 1 } });
}

/** How many times a worker logged that a job run waited out an outage (services/outage-wait.ts). */
export function outageWaits(scenario: Scenario): number {
  return fs
    .readFileSync(scenario.logFile, 'utf8')
    .split('\n')
    .filter((line) => line.includes('job ran into an outage')).length;
}

export function waitMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every 100 ms until it is true; false after `timeoutMs`. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await waitMs(100);
  }
  return false;
}
