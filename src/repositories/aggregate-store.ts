import type { KeyDelta, StatsView } from '../domain/stats';
import type { KeyStats } from '../models/aggregate-model';

/** Identifies one job's writes: lane `lane` of time slot `slot` applying its job number `seq` (see services/lane-pool.ts). */
export interface JobGuard {
  slot: number;
  lane: string;
  seq: number;
}

/** Guard slots older than these are dropped on each update (see lane-pool.ts for the window). */
export interface GuardRetention {
  /** Slots kept: the current one and `keepSlots - 1` before it. */
  keepSlots: number;
  /** How many slots before the kept ones each update also removes. */
  pruneSlots: number;
}

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
 * The update operators that add `delta` to the statistics at `path` (`''` for a document's top level, `k.<field>.`
 * inside a shard). Count and sum are guarded by the caller's filter; the rest are idempotent by nature.
 */
export function addDelta(
  ops: { inc: Record<string, number>; min: Record<string, unknown>; max: Record<string, unknown>; set: Record<string, unknown> },
  path: string,
  delta: KeyDelta,
  now: Date,
): void {
  ops.inc[`${path}count`] = delta.count;
  ops.inc[`${path}sum`] = delta.sum;
  ops.min[`${path}min`] = delta.min;
  ops.min[`${path}first`] = new Date(delta.firstTs);
  ops.max[`${path}max`] = delta.max;
  ops.max[`${path}lastTs`] = new Date(delta.lastTs);
  // Field order matters: BSON compares t first, then v.
  ops.max[`${path}last`] = { t: new Date(delta.lastTs), v: delta.lastValue };
  ops.set[`${path}updatedAt`] = now;
}

/**
 * The guard conditions and operators of `guards` on a document whose guard lives at `g`: the filter matches only
 * while none of these jobs was applied, the update raises them all and drops slots past the retention.
 */
export function addGuards(
  filter: Record<string, unknown>,
  ops: { max: Record<string, unknown>; unset: Record<string, ''> },
  guards: readonly JobGuard[],
  retention: GuardRetention,
): void {
  const written = new Set(guards.map((guard) => guard.slot));
  for (const guard of guards) {
    const guardPath = `g.${guard.slot}.${guard.lane}`;
    filter[guardPath] = { $not: { $gte: guard.seq } };
    ops.max[guardPath] = guard.seq;
    for (let age = retention.keepSlots; age < retention.keepSlots + retention.pruneSlots; age += 1) {
      // Jobs of neighbouring slots in one update: never drop a slot that one of them writes.
      if (!written.has(guard.slot - age)) ops.unset[`g.${guard.slot - age}`] = '';
    }
  }
}
