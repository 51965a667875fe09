import type Redis from 'ioredis';
import { STEPS, toBucketView, type BucketView, type SeriesRetention, type Step } from '../../domain/series';
import { REDIS_GUARD_TTL_SECONDS } from '../../exactly-once/window';
import { withScripts, type ScriptCommands } from '../../queue/lua-scripts';
import { execOrThrow } from '../../queue/redis';
import { RebuildRunningError, type GuardedBuckets, type RebuildableSeries, type SeriesStore } from '../contract';
import { KeyLocks, KeyLockTimeoutError } from './key-locks';

/*
 * The FerretDB profile's rollups, in Redis (see docs/storage.md). On FerretDB v1 an update whose filter is more than
 * `{_id}` reads every document of its collection, so a guarded bucket document per key and minute would cost
 * O(all buckets) per bucket written; and reads of a window would scan them all too. Here a job's buckets are added
 * by one script for the whole group, atomically with its guard, so the guarantee is the statistics' own.
 *
 *   <prefix>:series:<step>:{<key>}  sorted set: score = bucket start (ms), member "start count sum min max"
 *   <prefix>:series:guard:<slot>    hash: lane → the highest job sequence of that lane applied (lane-pool.ts)
 *   <prefix>:series:complete        set once the sets hold every stored point: a Redis that lost them lacks it
 *
 * Buckets past their step's retention are trimmed when a bucket is added to their set, and a set no longer added to
 * expires as a whole a retention (and a day, for points stamped ahead) after its newest bucket was added.
 */

// A rebuild whose process died frees its lock within this.
const REBUILD_LOCK_TTL_MS = 30_000;
const SEP = '\u0001';
const END = '\u0002';

export class RedisSeries implements SeriesStore, RebuildableSeries {
  private readonly redis: Redis & ScriptCommands;

  constructor(
    redis: Redis,
    private readonly prefix: string,
    readonly retention: SeriesRetention,
  ) {
    this.redis = withScripts(redis);
  }

  async prepare(): Promise<void> {}

  /** Redis can lose the rollups while the database keeps history: they can be rebuilt from it. */
  rebuildable(): RebuildableSeries {
    return this;
  }

  async applyGroup(jobs: readonly GuardedBuckets[], now: Date): Promise<void> {
    const packed = jobs
      .filter((job) => job.buckets.length > 0)
      .map(({ guard, buckets }) => {
        const parts = [`${guard.slot}${SEP}${guard.lane}${SEP}${guard.seq}${END}`];
        for (const b of buckets)
          parts.push(`${b.step}${SEP}${b.start}${SEP}${b.key}${SEP}${b.count}${SEP}${b.sum}${SEP}${b.min}${SEP}${b.max}${END}`);
        return parts.join('');
      });
    if (packed.length === 0) return;
    const kept = STEPS.map((step) => this.retention[step] ?? -1);
    await this.redis.seriesApply(REDIS_GUARD_TTL_SECONDS, now.getTime(), ...kept, this.prefix, ...packed);
  }

  async read(keys: readonly string[], step: Step, from: number, to: number): Promise<Map<string, BucketView[]>> {
    const unique = [...new Set(keys)];
    const pipeline = this.redis.pipeline();
    for (const key of unique) pipeline.zrangebyscore(this.setOf(step, key), from, to);
    const results = (await execOrThrow(pipeline)) as string[][];
    return new Map(unique.map((key, index) => [key, (results[index] ?? []).map(parseMember)]));
  }

  async bucketsAt(starts: ReadonlyMap<string, number>, step: Step): Promise<Map<string, BucketView>> {
    const entries = [...starts];
    if (entries.length === 0) return new Map();
    const pipeline = this.redis.pipeline();
    for (const [key, start] of entries) pipeline.zrangebyscore(this.setOf(step, key), start, start);
    const results = (await execOrThrow(pipeline)) as string[][];
    const buckets = new Map<string, BucketView>();
    entries.forEach(([key], index) => {
      const member = results[index]?.[0];
      if (member !== undefined) buckets.set(key, parseMember(member));
    });
    return buckets;
  }

  /** Whether the sets were complete from the database's start, or rebuilt (see ../rollup-rebuild.ts). */
  async isComplete(): Promise<boolean> {
    return (await this.redis.exists(this.completeKey())) === 1;
  }

  async markComplete(): Promise<void> {
    await this.redis.set(this.completeKey(), new Date().toISOString());
  }

  async unmarkComplete(): Promise<void> {
    await this.redis.del(this.completeKey());
  }

  /**
   * Runs `work` as the only rebuild of these rollups (a lock beside the shard locks, renewed while it runs); throws
   * RebuildRunningError at once when another rebuild holds it.
   */
  async withRebuildLock<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await new KeyLocks(this.redis, this.prefix, { ttlMs: REBUILD_LOCK_TTL_MS, waitMs: 0 }).withLocks(['series-rebuild'], work);
    } catch (error) {
      if (error instanceof KeyLockTimeoutError) throw new RebuildRunningError('another rollup rebuild of this queue is running');
      throw error;
    }
  }

  /**
   * Deletes the buckets of each step that start at or after its cutoff (not the guards: a re-run job must still find
   * its lane applied); returns how many buckets went.
   */
  async clearBuckets(cutoffs: Record<Step, number>): Promise<number> {
    let deleted = 0;
    for (const step of STEPS) {
      const stream = this.redis.scanStream({ match: `${this.prefix}:series:${step}:*`, count: 1000 });
      for await (const keys of stream as AsyncIterable<string[]>) {
        const pipeline = this.redis.pipeline();
        for (const key of keys) pipeline.zremrangebyscore(key, cutoffs[step], '+inf');
        for (const removed of await execOrThrow(pipeline)) deleted += Number(removed);
      }
    }
    return deleted;
  }

  private completeKey(): string {
    return `${this.prefix}:series:complete`;
  }

  private setOf(step: Step, key: string): string {
    return `${this.prefix}:series:${step}:{${key}}`;
  }
}

function parseMember(member: string): BucketView {
  const [start, count, sum, min, max] = member.split(' ').map(Number);
  return toBucketView({ start: start ?? 0, count: count ?? 0, sum: sum ?? 0, min: min ?? 0, max: max ?? 0 });
}
