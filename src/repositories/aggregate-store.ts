import type { KeyDelta, StatsView } from '../domain/stats';
import type { KeyStats } from '../models/aggregate-model';
import { guardClauses, type GuardRetention, type JobGuard } from '../exactly-once/guard';

/** One job's statistics writes: what it adds per key, and the guard it writes under. */
export interface GuardedDeltas {
  deltas: readonly KeyDelta[];
  guard: JobGuard;
}

export interface AggregatePage {
  items: StatsView[];
  nextCursor: string | null;
}

/**
 * Per-key statistics, applied exactly once per job. Each storage profile has its own layout (storage/profile.ts);
 * the worker, the routes and the sockets see only this.
 */
export interface AggregateStore {
  /** Idempotent set-up every process runs at start (documents that must exist before any guarded update). */
  prepare(now: Date): Promise<void>;
  /**
   * Applies several jobs' deltas, each job once: a job already applied to a document (a re-run) changes nothing
   * there, the others are added.
   */
  applyGroup(jobs: readonly GuardedDeltas[], now: Date): Promise<void>;
  /** Applies one job's deltas once. */
  applyDeltas(deltas: readonly KeyDelta[], guard: JobGuard, now: Date): Promise<void>;
  /**
   * The documents that hold these keys. Each is written by one atomic update per job, so a job is applied to a
   * document entirely or not at all.
   */
  documentsOf(keys: readonly string[]): string[];
  findByKey(key: string): Promise<StatsView | null>;
  findByKeys(keys: readonly string[]): Promise<Map<string, StatsView | null>>;
  /** Keys in order, `prefix` narrowing, after the cursor `after` (a key). */
  list(options: { prefix?: string; limit: number; after?: string }): Promise<AggregatePage>;
}

/** The view of one key's statistics, or null when the key has none (yet). */
export function toStatsView(key: string, stats: Partial<KeyStats> | undefined | null): StatsView | null {
  if (!stats) return null;
  const { count, sum, min, max, first, lastTs, last, updatedAt } = stats;
  // All are set together by the first applied job's update.
  if (count === undefined || sum === undefined || min === undefined || max === undefined) return null;
  if (first === undefined || lastTs === undefined || last === undefined || updatedAt === undefined) return null;
  return {
    key,
    count,
    sum,
    avg: count > 0 ? sum / count : 0,
    min,
    max,
    firstTimestamp: first.toISOString(),
    lastTimestamp: lastTs.toISOString(),
    lastValue: last.v,
    updatedAt: updatedAt.toISOString(),
  };
}

/** An anchored, case-sensitive regex: MongoDB's indexed prefix match. */
export function prefixPattern(prefix: string): RegExp {
  return new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`);
}

/**
 * The guarded update of one statistics document: `deltas` pairs each delta with the path of its key's statistics
 * (`''` for a document's top level, `k.<field>.` inside a shard). The filter matches only while none of `guards`
 * was applied to the document; the update adds the deltas (count and sum guarded by that filter, the rest
 * idempotent by nature), raises every guard and drops guard slots past the retention, all in one statement.
 */
export function guardedUpdate(
  id: string,
  deltas: readonly (readonly [path: string, delta: KeyDelta])[],
  guards: readonly JobGuard[],
  retention: GuardRetention,
  now: Date,
): { filter: Record<string, unknown>; update: Record<string, Record<string, unknown>> } {
  const filter: Record<string, unknown> = { _id: id };
  const inc: Record<string, number> = {};
  const min: Record<string, unknown> = {};
  const max: Record<string, unknown> = {};
  const set: Record<string, unknown> = {};
  const unset: Record<string, ''> = {};
  for (const [path, delta] of deltas) {
    inc[`${path}count`] = delta.count;
    inc[`${path}sum`] = delta.sum;
    min[`${path}min`] = delta.min;
    min[`${path}first`] = new Date(delta.firstTs);
    max[`${path}max`] = delta.max;
    max[`${path}lastTs`] = new Date(delta.lastTs);
    // Field order matters: BSON compares t first, then v.
    max[`${path}last`] = { t: new Date(delta.lastTs), v: delta.lastValue };
    set[`${path}updatedAt`] = now;
  }
  const guard = guardClauses(guards, retention);
  Object.assign(filter, guard.filter);
  Object.assign(max, guard.max);
  Object.assign(unset, guard.unset);
  return { filter, update: { $inc: inc, $min: min, $max: max, $set: set, $unset: unset } };
}
