import { randomBytes } from 'node:crypto';
import { Binary, type Collection, type Db } from 'mongodb';
import { chunk, mergeDeltas, type KeyDelta, type StatsView } from '../../domain/stats';
import type Redis from 'ioredis';
import { withScripts, type ScriptCommands } from '../../queue/lua-scripts';
import { applyOnce, type GuardMap, type GuardRetention } from '../../exactly-once/guard';
import type { AggregatePage, AggregateStore, GuardedDeltas } from '../contract';
import { insertNew, RefusedDataError } from '../shared/mongo-errors';
import { toStatsView } from '../shared/stats-view';
import type { KeyLocks } from './key-locks';
import { keysByShard, shardOf } from './shard-layout';

/** One key's statistics inside a packed shard: count, sum, min, max, first and last timestamp (ms), last value, updated (ms). */
type PackedStats = [number, number, number, number, number, number, number, number];

/**
 * One shard: its keys' statistics as JSON in one binary field `k`, its guard as JSON in `g`, and a version `v` changed by
 * every write. `g` is binary too because FerretDB 1.24 skips a `$set` of an embedded document that equals the stored
 * one by its values alone (`{"10": {a: 1}}` over `{"9": {a: 1}}` changes nothing).
 */
interface PackedShardDocument {
  _id: string;
  k?: Binary;
  g?: Binary;
  /** `<counter>.<random token>`: the counter orders versions, the token keeps a recreated or restored shard's apart. */
  v?: string | number;
  /** How many keys `k` holds. */
  n?: number;
  createdAt: Date;
}

// How many shards are read or written at once: FerretDB decodes and encodes in Go, on every core.
const PARALLEL_SHARDS = 4;

/** A shard as this process last wrote or read it. */
interface ShardState {
  /** The version as stored (`v`), which a conditional write must match exactly. */
  v: string | number;
  stats: Map<string, PackedStats>;
  guards: GuardMap;
  /** Its keys in order, made on the first page listed from this version. */
  sorted?: string[];
}
// Stays below MongoDB's 16 MiB document limit: at ~100 bytes a key, about 160,000 keys per shard.
const MAX_PACKED_BYTES = 15 * 1024 * 1024;

/**
 * The FerretDB profile's statistics: keys spread over `AGGREGATE_SHARDS` shard documents, each in a collection of its
 * own, a shard's statistics packed into one binary field and rewritten whole, read-modify-write under a Redis lock.
 *
 * Why packed: FerretDB 1.24 validates every pair of paths of an update against each other and decodes, re-encodes
 * and rewrites the whole document for any update, so a statement with a field per key costs the square of its keys;
 * a shard read and written as one binary field costs its bytes (docs/storage.md has both measured). Why
 * read-modify-write is exact: each shard is written by one process at a time (its lock; FerretDB loses concurrent
 * updates), the guard travels in the same document as the statistics, and the write is conditional on the version
 * read.
 *
 * A writer keeps each shard it wrote, decoded, and skips reading it again while the shard's version in Redis (set by
 * every writer after its write) is the one it wrote: with one worker, a group costs one command per shard instead of
 * two. A version missing or stale in Redis only costs a read, or a refused conditional write and a read.
 */
export class PackedAggregateRepository implements AggregateStore {
  /** Shard collections whose document this process knows to exist. */
  private readonly ensured = new Set<number>();
  private readonly cache = new Map<number, ShardState>();
  private cachedKeys = 0;
  private readonly versionsKey: string;
  private readonly redis: Redis & ScriptCommands;

  /** `namespace`: where the shards' versions live in Redis, beside the locks. */
  constructor(
    private readonly db: Db,
    private readonly locks: KeyLocks,
    redis: Redis,
    namespace: string,
    private readonly retention: GuardRetention,
    private readonly shards: number,
    /** A process keeps the shards it wrote or read, decoded, up to this many keys in all (STATS_CACHE_KEYS). */
    private readonly cachedKeysCap: number,
  ) {
    this.redis = withScripts(redis);
    this.versionsKey = `${namespace}:statshards:versions`;
  }

  /** Shard documents are created on first use (see `ensureShards`). */
  async prepare(): Promise<void> {}

  /** Per shard the jobs touch: one read (unless cached), the jobs not yet applied there added, one conditional write. */
  async applyGroup(jobs: readonly GuardedDeltas[], now: Date): Promise<void> {
    const byShard = new Map<number, GuardedDeltas[]>();
    for (const { deltas, guard } of jobs) {
      for (const delta of deltas) {
        const index = shardOf(delta.key, this.shards);
        const shardJobs = byShard.get(index) ?? [];
        const current = shardJobs[shardJobs.length - 1];
        if (current?.guard === guard) (current.deltas as KeyDelta[]).push(delta);
        else shardJobs.push({ guard, deltas: [delta] });
        byShard.set(index, shardJobs);
      }
    }
    const indexes = [...byShard.keys()];
    await this.ensureShards(indexes, now);
    await this.locks.withLocks(
      indexes.map((index) => shardId(index)),
      async () => {
        const versions = await this.publishedVersions(indexes);
        const written: string[] = [];
        let failure: Error | undefined;
        for (const batch of chunk(indexes, PARALLEL_SHARDS)) {
          // Every write settles before any error is thrown: the caller releases the shards' locks right after.
          const results = await Promise.allSettled(
            batch.map((index) => this.writeShard(index, byShard.get(index) ?? [], now, versions.get(index) ?? null)),
          );
          results.forEach((result, position) => {
            if (result.status === 'fulfilled') written.push(String(batch[position]), String(result.value));
            else failure ??= result.reason instanceof Error ? result.reason : new Error(String(result.reason));
          });
          if (failure !== undefined) break;
        }
        // The shard's own error wins over Redis's: it says whether the job may ever succeed.
        const publishing = written.length > 0 ? this.redis.packedVersionsPublish(this.versionsKey, ...written) : Promise.resolve(0);
        if (failure !== undefined) {
          await publishing.catch(() => undefined);
          throw failure;
        }
        await publishing;
      },
    );
  }

  async findByKey(key: string): Promise<StatsView | null> {
    return (await this.findByKeys([key])).get(key) ?? null;
  }

  /** One read per shard that holds any of the keys, unless this process holds that shard's current version. */
  async findByKeys(keys: readonly string[]): Promise<Map<string, StatsView | null>> {
    const byShard = keysByShard(keys, this.shards);
    const views = new Map<string, StatsView | null>();
    await this.eachShard([...byShard.keys()], (index, state) => {
      for (const key of byShard.get(index) ?? []) views.set(key, toView(key, state.stats.get(key)));
    });
    return views;
  }

  /**
   * Keys in order, from every shard: each shard's keys are sorted once per version this process holds, so a page
   * costs a binary search per shard; a shard not held costs a read of it. MongoDB's profile reads an `_id` range.
   */
  async list(options: { prefix?: string; limit: number; after?: string }): Promise<AggregatePage> {
    const { prefix = '', limit, after } = options;
    const candidates: [string, PackedStats][] = [];
    const indexes = Array.from({ length: this.shards }, (_, index) => index);
    await this.eachShard(indexes, (_, state) => {
      state.sorted ??= [...state.stats.keys()].sort();
      const sorted = state.sorted;
      // Only a shard's first `limit + 1` keys after the cursor, under the prefix, can be on the page.
      const start = firstAbove(sorted, after, prefix);
      for (let at = start; at < Math.min(sorted.length, start + limit + 1); at += 1) {
        const key = sorted[at] as string;
        if (!key.startsWith(prefix)) break;
        const stats = state.stats.get(key);
        if (stats) candidates.push([key, stats]);
      }
    });
    candidates.sort(byKey);
    const page = candidates.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: page.map(([key, stats]) => toView(key, stats)).filter((view): view is StatsView => view !== null),
      nextCursor: candidates.length > limit && last !== undefined ? last[0] : null,
    };
  }

  /**
   * Calls `visit` with each shard's current state: the one this process holds when Redis says it is current, else
   * the store's (then held). `visit` runs before anything else can change the state it gets.
   */
  private async eachShard(indexes: readonly number[], visit: (index: number, state: ShardState) => void): Promise<void> {
    // Redis out of reach: every shard is read from the store.
    const known = await this.publishedVersions(indexes).catch(() => new Map<number, string | null>());
    const missing: number[] = [];
    for (const index of indexes) {
      const held = this.cache.get(index);
      if (held && String(held.v) === known.get(index)) visit(index, held);
      else missing.push(index);
    }
    for (const batch of chunk(missing, PARALLEL_SHARDS * 2)) {
      await Promise.all(
        batch.map(async (index) => {
          const state = await this.stored(index);
          if (state) this.remember(index, state);
          visit(index, state ?? { v: '', stats: new Map(), guards: {} });
        }),
      );
    }
  }

  /** The version each shard's last writer published in Redis (null where none is). */
  private async publishedVersions(indexes: readonly number[]): Promise<Map<number, string | null>> {
    const versions = await this.redis.hmget(this.versionsKey, ...indexes.map(String));
    return new Map(indexes.map((index, position) => [index, versions[position] ?? null]));
  }

  private collectionOf(index: number): Collection<PackedShardDocument> {
    return this.db.collection<PackedShardDocument>(`statshards_${index}`);
  }

  private read(index: number, projection: Record<string, 1>): Promise<PackedShardDocument | null> {
    return this.collectionOf(index).findOne({ _id: shardId(index) }, { projection });
  }

  /** Creates shard documents before their first write, so that a write is always an update of a known version. */
  private async ensureShards(indexes: readonly number[], now: Date): Promise<void> {
    for (const index of indexes) {
      if (this.ensured.has(index)) continue;
      await insertNew(this.collectionOf(index), [{ _id: shardId(index), v: nextVersion(undefined), createdAt: now }]);
      this.ensured.add(index);
    }
  }

  /** The shard as stored; null before its first write created it. */
  private async stored(index: number): Promise<ShardState | null> {
    const doc = await this.read(index, { k: 1, g: 1, v: 1 });
    return doc ? { v: doc.v ?? 0, stats: unpack(doc.k), guards: (decodeJson(doc.g) ?? {}) as GuardMap } : null;
  }

  /** The shard as stored, which a write needs to exist (ensureShards). */
  private async load(index: number): Promise<ShardState> {
    const state = await this.stored(index);
    if (!state) throw new Error(`statistics shard ${index} is missing`);
    return state;
  }

  /** Keeps a shard's state for its next write or read, in place of any older one, within `cachedKeysCap`. */
  private remember(index: number, state: ShardState): void {
    this.take(index);
    if (this.cachedKeys + state.stats.size > this.cachedKeysCap) return;
    this.cache.set(index, state);
    this.cachedKeys += state.stats.size;
  }

  /** The cached state, taken out of the cache: it is changed in place and put back only once written. */
  private take(index: number): ShardState | undefined {
    const state = this.cache.get(index);
    if (state) {
      this.cache.delete(index);
      this.cachedKeys -= state.stats.size;
    }
    return state;
  }

  /**
   * Adds the jobs not yet applied to this shard, raises their guards, drops guard slots past the retention; returns
   * the shard's version after. Starts from the cached state when `knownVersion` (Redis's) is the cached one; when the
   * store holds another version after all, reads it and tries once more.
   */
  private async writeShard(
    index: number,
    jobs: readonly GuardedDeltas[],
    now: Date,
    knownVersion: string | null,
  ): Promise<string | number> {
    const cached = this.take(index);
    const first = cached && String(cached.v) === knownVersion ? cached : await this.load(index);
    const written = await this.tryWrite(index, first, jobs, now);
    if (written !== null) return written;
    if (first === cached) {
      const again = await this.tryWrite(index, await this.load(index), jobs, now);
      if (again !== null) return again;
    }
    // Under the shard's lock nobody else writes it: a changed version means the lock was lost; the job is retried.
    throw new Error(`statistics shard ${index} changed while it was locked`);
  }

  /** One conditional write from `state` (changed in place); the new version, or null when the store holds another. */
  private async tryWrite(index: number, state: ShardState, jobs: readonly GuardedDeltas[], now: Date): Promise<string | number | null> {
    const { stats } = state;
    // The guard and the statistics travel in the same document, written by one conditional write (exactly-once/guard.ts).
    const { applied, guards: kept } = applyOnce(state.guards, jobs, this.retention, ({ deltas }) => {
      for (const delta of deltas) {
        const added = addDelta(stats.get(delta.key), delta, now.getTime());
        // JSON would store an infinite sum as null; MongoDB and FerretDB refuse such an update (BadValue), as this does.
        if (!Number.isFinite(added[1])) throw new RefusedDataError(`the sum of key ${JSON.stringify(delta.key)} would not be finite`);
        stats.set(delta.key, added);
      }
    });
    if (applied.length === 0) {
      this.remember(index, state);
      return state.v;
    }
    const packed = pack(stats);
    if (packed.length > MAX_PACKED_BYTES) {
      throw new Error(
        `statistics shard ${index} would hold ${packed.length} bytes (${stats.size} keys), above the 16 MB document limit; a database for this many keys needs more AGGREGATE_SHARDS (set when it is created) or the MongoDB profile`,
      );
    }
    const version = nextVersion(state.v);
    const result = await this.collectionOf(index).updateOne(
      { _id: shardId(index), v: state.v },
      { $set: { k: new Binary(packed), g: new Binary(Buffer.from(JSON.stringify(kept), 'utf8')), v: version, n: stats.size } },
    );
    if (result.matchedCount !== 1) return null;
    this.remember(index, { v: version, stats, guards: kept });
    return version;
  }
}

/** The version after `previous`: its counter plus one, and a token of its own. */
function nextVersion(previous: string | number | undefined): string {
  const counter = previous === undefined ? -1 : Number(String(previous).split('.')[0]);
  return `${Number.isFinite(counter) ? counter + 1 : 0}.${randomBytes(6).toString('hex')}`;
}

function shardId(index: number): string {
  return `shard-${index}`;
}

/** The position of the first key in `sorted` above `after` and at or above `prefix`. */
function firstAbove(sorted: readonly string[], after: string | undefined, prefix: string): number {
  // The cursor bounds the page when it is at or past the prefix (exclusive); else the prefix does (inclusive).
  const byCursor = after !== undefined && after >= prefix;
  const floor = byCursor ? after : prefix;
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const key = sorted[middle] as string;
    if (key < floor || (byCursor && key === floor)) low = middle + 1;
    else high = middle;
  }
  return low;
}

function byKey(a: readonly [string, unknown], b: readonly [string, unknown]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

function decodeJson(field: Binary | undefined): unknown {
  return field ? JSON.parse(Buffer.from(field.buffer).toString('utf8')) : undefined;
}

function unpack(packed: Binary | undefined): Map<string, PackedStats> {
  return new Map(Object.entries((decodeJson(packed) ?? {}) as Record<string, PackedStats>));
}

function pack(stats: Map<string, PackedStats>): Buffer {
  return Buffer.from(JSON.stringify(Object.fromEntries(stats)), 'utf8');
}

/** A key's packed statistics with one job's delta added (`mergeDeltas`: the same rules as the MongoDB profile's `$min`/`$max`). */
function addDelta(current: PackedStats | undefined, delta: KeyDelta, nowMs: number): PackedStats {
  const merged = current
    ? mergeDeltas(
        {
          key: delta.key,
          count: current[0],
          sum: current[1],
          min: current[2],
          max: current[3],
          firstTs: current[4],
          lastTs: current[5],
          lastValue: current[6],
        },
        delta,
      )
    : delta;
  return [merged.count, merged.sum, merged.min, merged.max, merged.firstTs, merged.lastTs, merged.lastValue, nowMs];
}

function toView(key: string, stats: PackedStats | undefined): StatsView | null {
  if (!stats) return null;
  const [count, sum, min, max, firstTs, lastTs, lastValue, updatedAt] = stats;
  const last = new Date(lastTs);
  return toStatsView(key, {
    count,
    sum,
    min,
    max,
    first: new Date(firstTs),
    lastTs: last,
    last: { t: last, v: lastValue },
    updatedAt: new Date(updatedAt),
  });
}
