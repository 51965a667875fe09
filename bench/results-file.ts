import type { Mismatch } from '../load-test';
import type { CeilingResult } from './ceiling';
import type { NaiveResult } from './naive-run';
import type { ServiceResult } from './service-run';

/**
 * What one run ended as: every point counted exactly, cut short by its time limit, or wrong (or failed).
 * INEXACT is the naive baseline's own: every point processed, but concurrent updates lost some counts (its
 * design on FerretDB); its rate still counts, and it does not make the bench invalid.
 */
export type RunStatus = 'EXACT' | 'TIMEOUT' | 'INVALID' | 'INEXACT';

export interface CeilingRun extends CeilingResult {
  contender: 'ceiling';
  size: number;
  /** Set on the keys dimension's runs: the data's distinct keys (the sizes' runs use `settings.keys`). */
  keys?: number;
  status: RunStatus;
}

export interface NaiveRun extends NaiveResult {
  contender: 'naive';
  /** The data set's size; the naive run used only its first `points` points (the sample). */
  size: number;
  status: RunStatus;
}

export interface ServiceRun extends ServiceResult {
  contender: 'service';
  size: number;
  /** As on CeilingRun. */
  keys?: number;
  status: RunStatus;
}

export type BenchRun = CeilingRun | NaiveRun | ServiceRun;

/** The keys dimension's distinct keys, or undefined for the sizes' runs. */
export function keysOf(run: BenchRun): number | undefined {
  return run.contender === 'naive' ? undefined : run.keys;
}

/** A run of the sizes dimension (as opposed to the keys dimension). */
export const isSizeRun = (run: BenchRun): boolean => keysOf(run) === undefined;

/** The service runs of the sizes dimension. */
export const sizeServiceRuns = (results: BenchResults): ServiceRun[] =>
  results.runs.filter((run): run is ServiceRun => run.contender === 'service' && isSizeRun(run));

/** The keys dimension's service run at `keys` keys. */
export const keysServiceRun = (results: BenchResults, keys: number): ServiceRun | undefined =>
  results.runs.find((run): run is ServiceRun => run.contender === 'service' && run.keys === keys);

export interface PhaseTiming {
  name: string;
  seconds: number;
}

/** bench/results/<date>.json: everything the docs are generated from. */
export interface BenchResults {
  schema: 1;
  mode: 'full' | 'smoke';
  startedAt: string;
  finishedAt: string;
  command: string;
  machine: { cpu: string; cores: number; memoryBytes: number; os: string; node: string };
  /** e.g. "FerretDB v1.24.2 (SQLite backend)" or "MongoDB 7.0.14": said next to every figure. */
  store: { name: string; version: string; backend: string; label: string };
  redis: { version: string };
  settings: {
    sizes: number[];
    keys: number;
    /** The keys dimension (absent in older results): key counts, each run on `keyPoints` points. */
    keyCounts?: number[];
    keyPoints?: number;
    workers: number[];
    naiveSample: number;
    /** Jobs per write of each storage ceiling run. */
    ceilingJobs: number[];
    batch: number;
    concurrency: number;
    latencySeconds: number;
    reads: number;
    phaseTimeoutSeconds: number;
    budgetSeconds: number;
    /** The service's settings that shape its writes, as its processes read them. */
    service: Record<string, number>;
  };
  runs: BenchRun[];
  phases: PhaseTiming[];
  totalSeconds: number;
  status: RunStatus;
}

export function statusOf(result: { exact: boolean; timedOut: boolean; error?: string | null }): RunStatus {
  if (result.exact) return 'EXACT';
  if (result.timedOut && !result.error) return 'TIMEOUT';
  return 'INVALID';
}

/** The naive baseline's status: INEXACT instead of INVALID when it processed every point but lost counts. */
export function naiveStatusOf(result: { exact: boolean; settled: boolean; timedOut: boolean; error: string | null }): RunStatus {
  if (!result.exact && result.settled && !result.error) return 'INEXACT';
  return statusOf(result);
}

/** The worst of the runs: one INVALID run makes the whole bench invalid. */
export function overallStatus(runs: readonly BenchRun[]): RunStatus {
  const statuses = new Set(runs.map((run) => run.status));
  if (statuses.has('INVALID')) return 'INVALID';
  if (statuses.has('TIMEOUT')) return 'TIMEOUT';
  return 'EXACT';
}

export function firstMismatches(mismatches: readonly Mismatch[], count = 3): string {
  return mismatches
    .slice(0, count)
    .map((mismatch) => `${mismatch.key}: ${mismatch.problems.join('; ')}`)
    .join(' | ');
}
