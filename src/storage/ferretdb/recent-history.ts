import type Redis from 'ioredis';
import type { HistoryPage, HistoryQuery, HistoryStore, HistoryJob } from '../contract';
import { queued, withScripts, type ScriptCommands } from '../../queue/lua-scripts';
import { BATCH_TTL_SECONDS } from '../../exactly-once/window';
import { bucketsOf, PageMerge, windowEnd, withinRetention, type HistoryBucket } from '../shared/history-buckets';
import type { HistoryRepository } from '../shared/history-repository';

/*
 * The recent-history tier: the newest history buckets of each key, in Redis, for the FerretDB profile (see
 * docs/storage.md). FerretDB v1 reads and decodes every history bucket for any filter, so a key's newest page costs
 * O(all history) there; from this tier it costs O(page). MongoDB reads its (key, max, min) index instead.
 *
 * Per key, three Redis keys, holding the same buckets as the database (../shared/history-buckets.ts):
 *   z  sorted set: bucket id → its newest timestamp
 *   d  hash: bucket id → `n SEP min SEP` and the bucket as JSON (BucketJson)
 *   m  hash: seen  points ever added (each bucket once), trimmed ones included
 *            held  points here now; the oldest buckets are trimmed while the rest hold HISTORY_RECENT_PER_KEY
 *            floor the highest newest-timestamp of a trimmed bucket: every point above it is here
 *            bad  set when the tier may miss a point (a late bucket at or below the floor, or uncounted points)
 *
 * Per batch, one more: a hash of its bucket ids → `key SEP n`, kept as long as the batch's status and deleted once
 * one of its buckets is trimmed, so that a recent batch's `batchId` page reads its buckets from the key tiers.
 *
 * A key's page is answered only when the tier holds every point it could return: the key's count of points in its
 * statistics equals `seen` (the tier is written after the statistics, so equal counts mean it has seen every counted
 * point: nothing lost with Redis, nothing in flight), and the answer does not reach down to the floor. A batch's page
 * is answered only when its index lists all of the batch's points and every listed bucket is still in its key's tier.
 */

// Separators of the buckets sent to recent-history-add.lua: JSON escapes both inside strings, and ids and numbers hold neither.
const SEP = '\u0001';
const END = '\u0002';

/** A bucket without its key, id, min and max, which the tier keeps beside it: [i, t, v, y, m, batchId, receivedAt, processedAt]. */
type BucketJson = [number[], number[], number[], HistoryBucket['y'] | null, HistoryBucket['m'] | null, string, number, number];

/** What the tier holds for one query, or why it cannot answer. */
export type RecentAnswer = { page: HistoryPage; seen: number } | null;

// Keys per call of the add script: ~3 KEYS each; one call runs alone in Redis, so it stays a few ms at most.
const ADD_KEYS_PER_CALL = 128;

// Bounds for the read script, which compares them as numbers too.
const NO_LOWER = '-1e300';
const NO_UPPER = '1e300';

export class RecentHistory {
  private readonly redis: Redis & ScriptCommands;

  /** `cap`: points kept per key (HISTORY_RECENT_PER_KEY). */
  constructor(
    redis: Redis,
    private readonly prefix: string,
    private readonly cap: number,
  ) {
    this.redis = withScripts(redis);
  }

  /** Adds buckets (already in the store, their points already counted); buckets already here stay. */
  async add(buckets: readonly HistoryBucket[]): Promise<void> {
    const byKey = new Map<string, string[]>();
    const byBatch = new Map<string, string[]>();
    for (const bucket of buckets) {
      const json: BucketJson = [
        bucket.i,
        bucket.t,
        bucket.v,
        bucket.y ?? null,
        bucket.m ?? null,
        bucket.batchId,
        bucket.receivedAt,
        bucket.processedAt,
      ];
      let entries = byKey.get(bucket.key);
      if (!entries) byKey.set(bucket.key, (entries = []));
      entries.push(`${bucket.id}${SEP}${bucket.max}${SEP}${bucket.n}${SEP}${bucket.min}${SEP}${JSON.stringify(json)}${END}`);
      let index = byBatch.get(bucket.batchId);
      if (!index) byBatch.set(bucket.batchId, (index = []));
      index.push(bucket.id, `${bucket.key}${SEP}${bucket.n}`);
    }
    const pipeline = queued(this.redis.pipeline());
    for (const [batchId, index] of byBatch) {
      // A job run again writes the same fields.
      const batchKey = this.batchKeyOf(batchId);
      pipeline.hset(batchKey, ...index).expire(batchKey, BATCH_TTL_SECONDS);
    }
    // One script call per ADD_KEYS_PER_CALL keys (recent-history-add.lua): each bucket once, then each key's tier
    // trimmed to its cap. With one point per key, a call per key cost more than the buckets it carried.
    const keys = [...byKey];
    let calls = 0;
    for (let start = 0; start < keys.length; start += ADD_KEYS_PER_CALL) {
      const slice = keys.slice(start, start + ADD_KEYS_PER_CALL);
      const redisKeys = slice.flatMap(([key]) => this.keysOf(key));
      pipeline.recentHistoryAdd(redisKeys.length, ...redisKeys, this.cap, ...slice.map(([, entries]) => entries.join('')));
      calls += 1;
    }
    const replies = (await pipeline.exec()) ?? [];
    const failed = replies.find(([error]) => error !== null);
    if (failed?.[0]) throw failed[0];
    // A batch with a bucket trimmed from its key's tier can no longer be read from the tier: its index goes too.
    const trimmed = new Set<string>();
    for (const [, reply] of replies.slice(replies.length - calls)) {
      for (const id of reply as string[]) trimmed.add(this.batchKeyOf(id.slice(0, id.lastIndexOf(':'))));
    }
    if (trimmed.size > 0) await this.redis.del(...trimmed);
  }

  /** Marks keys whose stored points may not all be counted: the tier stops answering for them. */
  async invalidate(keys: Iterable<string>): Promise<void> {
    const pipeline = this.redis.pipeline();
    for (const key of new Set(keys)) pipeline.hset(this.keysOf(key)[2], 'bad', 1);
    await pipeline.exec();
  }

  /** One page of `query.key`'s records newest first, if the tier holds all it could contain. */
  async page(query: HistoryQuery & { key: string }): Promise<RecentAnswer> {
    const merge = new PageMerge(query);
    if (merge.empty) return null;
    const highest = merge.upper === Infinity ? '+inf' : `(${windowEnd(merge.upper)}`;
    const lower = merge.lower === -Infinity ? NO_LOWER : String(merge.lower);
    const upper = merge.upper === Infinity ? NO_UPPER : String(merge.upper);
    const reply = <string[]>await this.redis.recentHistoryRead(...this.keysOf(query.key), highest, lower, upper, query.limit + 1);
    const [seen, floor, bad] = reply;
    if (bad !== '') return null;
    for (let index = 3; index < reply.length; index += 1) {
      if (!merge.add(decode(query.key, reply[index] as string))) break;
    }
    const { page, reach, full } = merge.finish();
    // Exact when every point it had to consider is above the floor; with fewer than a page, the whole window must be.
    if (floor !== '' && (full ? (reach ?? -Infinity) : merge.lower) <= Number(floor)) return null;
    return { seen: Number(seen), page };
  }

  /**
   * One page of a batch's records newest first (narrowed to `query.key` if set), if the tier holds all of them: its
   * index lists `batchPoints` points and each listed bucket is still in its key's tier.
   */
  async batchPage(query: HistoryQuery & { batchId: string }, batchPoints: number): Promise<HistoryPage | null> {
    const merge = new PageMerge(query);
    const index = await this.redis.hgetall(this.batchKeyOf(query.batchId));
    const byKey = new Map<string, string[]>();
    let points = 0;
    for (const [id, entry] of Object.entries(index)) {
      const [key, n] = entry.split(SEP) as [string, string];
      points += Number(n);
      if (query.key !== undefined && key !== query.key) continue;
      let ids = byKey.get(key);
      if (!ids) byKey.set(key, (ids = []));
      ids.push(id);
    }
    if (points !== batchPoints) return null;
    if (merge.empty || byKey.size === 0) return { items: [], next: null };
    const pipeline = this.redis.pipeline();
    for (const [key, ids] of byKey) pipeline.hmget(this.keysOf(key)[1], ...ids);
    const replies = (await pipeline.exec()) ?? [];
    const buckets: HistoryBucket[] = [];
    let position = 0;
    for (const key of byKey.keys()) {
      const [error, values] = replies[position++] ?? [new Error('no reply')];
      if (error) throw error;
      for (const value of values as (string | null)[]) {
        // Trimmed from its key's tier: the store answers.
        if (value === null) return null;
        buckets.push(decode(key, value.slice(value.indexOf(SEP, value.indexOf(SEP) + 1) + 1)));
      }
    }
    buckets.sort((a, b) => b.max - a.max);
    for (const bucket of buckets) if (!merge.add(bucket)) break;
    return merge.finish().page;
  }

  private batchKeyOf(batchId: string): string {
    return `${this.prefix}:recent:batch:${batchId}`;
  }

  private keysOf(key: string): [string, string, string] {
    // A hash tag per key keeps its three keys together; the add script takes many keys a call, so the tier needs one
    // Redis server (as the rollups' script does), not a Cluster.
    const base = `${this.prefix}:recent:{${key}}`;
    return [`${base}:z`, `${base}:d`, `${base}:m`];
  }
}

/** A bucket of `key` from its JSON in the tier. */
function decode(key: string, json: string): HistoryBucket {
  const [i, t, v, y, m, batchId, receivedAt, processedAt] = JSON.parse(json) as BucketJson;
  const bucket: HistoryBucket = {
    id: '',
    key,
    batchId,
    min: Math.min(...t),
    max: Math.max(...t),
    n: t.length,
    i,
    t,
    v,
    receivedAt,
    processedAt,
  };
  if (y) bucket.y = y;
  if (m) bucket.m = m;
  return bucket;
}

/**
 * History with the recent tier in front (the FerretDB profile): writes go to the store, then to the tier; a key's
 * page comes from the tier when it can answer exactly, from the store otherwise.
 */
export class TieredHistory implements HistoryStore {
  constructor(
    private readonly store: HistoryRepository,
    private readonly recent: RecentHistory,
    /** The key's count of points in its statistics, null when it has none. */
    private readonly countOf: (key: string) => Promise<number | null>,
    /** The batch's number of points, null when its status is unknown (expired, or still receiving). */
    private readonly batchPoints: (batchId: string) => Promise<number | null>,
    private readonly retentionMs: number | null,
    private readonly clock: () => number = Date.now,
  ) {}

  async insertJobs(jobs: readonly HistoryJob[], processedAt: Date, options: { counted?: boolean } = {}): Promise<number> {
    if (options.counted === false) {
      // Before the store: a failure in between must not leave the tier answering without these records.
      await this.recent.invalidate(jobs.flatMap((job) => job.points.map((point) => point.key)));
      return this.store.insertJobs(jobs, processedAt);
    }
    // After the store: the tier never lists a record the store lacks. The same buckets for both, made once.
    const buckets = jobs.flatMap((job) => bucketsOf(job, processedAt));
    const inserted = await this.store.insertBuckets(buckets);
    await this.recent.add(buckets);
    return inserted;
  }

  async page(query: HistoryQuery): Promise<HistoryPage> {
    // The store leaves out points past retention itself.
    const recent = withinRetention(query, this.retentionMs, this.clock());
    // Redis unavailable: the store answers, as it would without the tier.
    if (recent.batchId !== undefined) {
      const batchId = recent.batchId;
      const points = await this.batchPoints(batchId).catch(() => null);
      const page = points === null ? null : await this.recent.batchPage({ ...recent, batchId }, points).catch(() => null);
      if (page) return page;
    } else if (recent.key !== undefined) {
      const key = recent.key;
      const answer = await this.recent.page({ ...recent, key }).catch(() => null);
      if (answer && answer.seen === ((await this.countOf(key)) ?? 0)) return answer.page;
    }
    return this.store.page(query);
  }

  deleteOlderThan(cutoff: Date): Promise<number> {
    return this.store.deleteOlderThan(cutoff);
  }

  setExpiry(seconds: number | null): Promise<void> {
    return this.store.setExpiry(seconds);
  }

  countByBatch(batchId: string): Promise<number> {
    return this.store.countByBatch(batchId);
  }
}
