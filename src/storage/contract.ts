/*
 * The storage contract: what the worker, the routes, the sockets and the scripts see of the storage, whichever
 * profile runs (src/storage/index.ts picks one). Each store applies the exactly-once rule (src/exactly-once/guard.ts)
 * in its own dialect; errors reach the callers only through the storage-neutral predicates at the end.
 */
import type { Point } from '../domain/point-schema';
import type { BucketDelta, BucketView, SeriesRetention, Step } from '../domain/series';
import type { KeyDelta, StatsView } from '../domain/stats';
import type { JobGuard } from '../exactly-once/guard';

/** One job's statistics writes: what it adds per key, and the guard it writes under. */
export interface GuardedDeltas {
  deltas: readonly KeyDelta[];
  guard: JobGuard;
}

export interface AggregatePage {
  items: StatsView[];
  nextCursor: string | null;
}

/** Per-key statistics, applied exactly once per job. */
export interface AggregateStore {
  /** Idempotent set-up every process runs at start (documents that must exist before any guarded update). */
  prepare(now: Date): Promise<void>;
  /**
   * Applies several jobs' deltas, each job once: a job already applied to a document (a re-run) changes nothing
   * there, the others are added. Each document is written by one atomic update per group, so a job is applied to a
   * document entirely or not at all.
   */
  applyGroup(jobs: readonly GuardedDeltas[], now: Date): Promise<void>;
  findByKey(key: string): Promise<StatsView | null>;
  findByKeys(keys: readonly string[]): Promise<Map<string, StatsView | null>>;
  /** Keys in order, `prefix` narrowing, after the cursor `after` (a key). */
  list(options: { prefix?: string; limit: number; after?: string }): Promise<AggregatePage>;
}

/** One job's bucket deltas, and the guard it writes under (see exactly-once/lane-pool.ts). */
export interface GuardedBuckets {
  buckets: readonly BucketDelta[];
  guard: JobGuard;
}

/** Per-key rollups in buckets of a minute, an hour and a day, each job counted once in each bucket, like the statistics. */
export interface SeriesStore {
  /** How long each step's buckets are kept (SERIES_RETENTION_*). */
  readonly retention: SeriesRetention;
  /** Idempotent set-up every process runs at start (indexes). */
  prepare(): Promise<void>;
  /** Adds each job's buckets once: a job already applied to a bucket (a re-run) changes nothing there. */
  applyGroup(jobs: readonly GuardedBuckets[], now: Date): Promise<void>;
  /** The non-empty buckets of `step` of each key whose start is in [from, to], oldest first. */
  read(keys: readonly string[], step: Step, from: number, to: number): Promise<Map<string, BucketView[]>>;
  /** One bucket of `step` per key (its start in `starts`); a key whose bucket is empty is left out. */
  bucketsAt(starts: ReadonlyMap<string, number>, step: Step): Promise<Map<string, BucketView>>;
  /**
   * The rollups' rebuild from history, where they live apart from the database and can be lost without it (the
   * FerretDB profile's, in Redis); null where they live in the database itself.
   */
  rebuildable(): RebuildableSeries | null;
}

/** Rollups that can be lost apart from history, and rebuilt from it (storage/rollup-rebuild.ts). */
export interface RebuildableSeries {
  /** Whether the rollups hold every stored point: complete from the database's start, or rebuilt. */
  isComplete(): Promise<boolean>;
  markComplete(): Promise<void>;
  unmarkComplete(): Promise<void>;
  /** Runs `work` as the only rebuild of these rollups; throws RebuildRunningError at once when another holds it. */
  withRebuildLock<T>(work: () => Promise<T>): Promise<T>;
  /** Deletes the buckets of each step that start at or after its cutoff (not the guards); returns how many went. */
  clearBuckets(cutoffs: Record<Step, number>): Promise<number>;
}

export class RebuildRunningError extends Error {
  override name = 'RebuildRunningError';
}

export interface HistoryRecord {
  key: string;
  value: number;
  timestamp: string;
  type: string | null;
  meta: Record<string, unknown> | null;
  batchId: string;
  receivedAt: string;
  processedAt: string;
}

export interface HistoryQuery {
  key?: string;
  batchId?: string;
  from?: number;
  to?: number;
  limit: number;
  /** The last record of the previous page: newest-first order is (timestamp desc, _id desc). */
  after?: { t: number; id: string };
}

export interface HistoryPage {
  items: HistoryRecord[];
  next: { t: number; id: string } | null;
}

/** One job's points as history receives them. */
export interface HistoryJob {
  batchId: string;
  points: readonly Point[];
  receivedAt: Date;
}

/** Every accepted point, as history records; stored in buckets of one job, key and minute (shared/history-buckets.ts). */
export interface HistoryStore {
  /**
   * Writes each job's buckets; buckets already there (a job run again) stay as they are. Returns how many points
   * were new. `counted: false` for points whose statistics the store refused.
   */
  insertJobs(jobs: readonly HistoryJob[], processedAt: Date, options?: { counted?: boolean }): Promise<number>;
  /** Per-point records, newest first, merged from the buckets that can hold them. */
  page(query: HistoryQuery): Promise<HistoryPage>;
  /** Deletes the buckets whose newest point is before `cutoff`; returns how many points they held (read just before). */
  deleteOlderThan(cutoff: Date): Promise<number>;
  /** Makes the server expire a bucket `seconds` after its newest point (a TTL index), or keep them (`null`). */
  setExpiry(seconds: number | null): Promise<void>;
  /** How many points of the batch history holds. */
  countByBatch(batchId: string): Promise<number>;
}

/**
 * One record per job whose writes are all durable: the audit trail of the worker, and the fast "already done" check
 * when Bull runs a job again.
 */
export interface ProcessedRecord {
  _id: string;
  batchId: string;
  chunk: number;
  points: number;
  keys: number;
  guard: string;
  attempt: number;
  durationMs: number;
  processedAt: Date;
}

export interface ProcessedRecordStore {
  exists(jobId: string): Promise<boolean>;
  /** Records finished jobs; records already there are no-ops. */
  recordAll(records: readonly ProcessedRecord[]): Promise<void>;
}

// Both profiles speak MongoDB's protocol, so one module tells its answers apart for either.
export { isRefusal, isRefusedData, isUnanswered, RefusedDataError } from './shared/mongo-errors';
