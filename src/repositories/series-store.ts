import type { BucketDelta, BucketView, SeriesRetention, Step } from '../domain/series';
import type { JobGuard } from '../exactly-once/guard';

/** One job's bucket deltas, and the guard it writes under (see exactly-once/lane-pool.ts). */
export interface GuardedBuckets {
  buckets: readonly BucketDelta[];
  guard: JobGuard;
}

/**
 * Per-key rollups in buckets of a minute, an hour and a day, each job counted once in each bucket, like the
 * statistics. Each storage profile has its own layout (storage/profile.ts); the worker, the routes and the sockets
 * see only this.
 */
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
}
