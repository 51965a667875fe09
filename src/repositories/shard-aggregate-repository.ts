import { LRUCache } from 'lru-cache';
import type { AnyBulkWriteOperation, Collection } from 'mongodb';
import type { AggregateModel, AggregateShardDocument, KeyDocument } from '../models/aggregate-model';
import { chunk, mergeDeltas, type KeyDelta, type StatsView } from '../domain/stats';
import { nativeCollection } from '../models';
import type { KeyLocks } from '../queue/key-locks';
import {
  addDelta,
  addGuards,
  prefixPattern,
  toStatsView,
  type AggregatePage,
  type AggregateStore,
  type GuardedDeltas,
  type GuardRetention,
  type JobGuard,
} from './aggregate-store';
import { bulkWriteErrors, DUPLICATE_KEY, insertNew } from './mongo-errors';

/** The number of shards when none is given: AGGREGATE_SHARDS's default. */
export const DEFAULT_AGGREGATE_SHARDS = 8;
const LAYOUT_ID = 'layout';

/** The field name of a key inside its shard: base64url never holds `.` or `$`. */
export function keyField(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

/** FNV-1a over the key's UTF-8 bytes: a stable spread of keys over shards, the same in every process. */
export function shardOf(key: string, shards: number): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(key, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % shards;
}

/** The deltas of one job (or of several, merged) that fall in one shard, with the guards they are written under. */
interface ShardWrite {
  shard: string;
  deltas: KeyDelta[];
  guards: JobGuard[];
}

// Keys known to be in the key list skip registering; 100k keys is ~10 MB.
const KNOWN_KEYS_CAPACITY = 100_000;

/**
 * The FerretDB profile's statistics: keys in a fixed number of shard documents, written under Redis locks.
 *
 * Why shards and not one document per key: on FerretDB an update whose
 * filter is more than `{_id}` (ours holds the exactly-once guard) reads and
 * decodes every document of the collection, so its cost grows with the
 * number of documents, and a job paid it once per key. Now a job pays it
 * once per shard it touches, over a handful of documents: measured on
 * FerretDB with 100 keys and 15 jobs' guards, 850 ms per group of updates
 * became 40-120 ms. A shard is updated by one statement, so a job is applied
 * to a shard entirely or not at all, and the guard lives with the shard.
 */
export class ShardAggregateRepository implements AggregateStore {
  private readonly collection: Collection<AggregateShardDocument>;
  private readonly keys: Collection<KeyDocument>;
  private readonly knownKeys = new LRUCache<string, true>({ max: KNOWN_KEYS_CAPACITY });

  /**
   * `writeBatchSize` caps the updates per command. FerretDB 1.24 on SQLite
   * opens one cursor per update statement from a pool of 100 and hangs for
   * good at 100 statements in one command (measured: 99 work, 100 hang).
   * `shards` (AGGREGATE_SHARDS) is fixed once data is written: `prepare`
   * refuses another value. `locks`: FerretDB loses concurrent updates of one document, so one writer per shard at
   * a time.
   */
  constructor(
    model: AggregateModel,
    private readonly locks: KeyLocks,
    private readonly retention: GuardRetention,
    private readonly writeBatchSize: number,
    private readonly shards = DEFAULT_AGGREGATE_SHARDS,
  ) {
    this.collection = nativeCollection(model.shards);
    this.keys = nativeCollection(model.keys);
  }

  /**
   * Creates the shard documents (idempotent; every process calls it at
   * start-up). They exist before any guarded update, because an upsert whose
   * guard does not match (a replayed job) would insert a second document with
   * the same `_id`. Throws when the data was written with another number of shards.
   */
  async prepare(now: Date): Promise<void> {
    const ids = [LAYOUT_ID, ...Array.from({ length: this.shards }, (_, index) => this.shardId(index))];
    let remaining = ids.map((id) => ({
      updateOne: {
        filter: { _id: id },
        update: { $setOnInsert: id === LAYOUT_ID ? { shards: this.shards, createdAt: now } : { createdAt: now } },
        upsert: true,
      },
    }));
    while (remaining.length > 0) {
      try {
        await this.collection.bulkWrite(remaining, { ordered: true });
        break;
      } catch (error) {
        // Another process created the same document at the same time: it exists now, go on after it.
        const failed = bulkWriteErrors(error)?.[0];
        if (!failed || failed.code !== DUPLICATE_KEY) throw error;
        remaining = remaining.slice(failed.index + 1);
      }
    }
    const layout = await this.collection.findOne({ _id: LAYOUT_ID }, { projection: { shards: 1 } });
    if (layout?.shards !== this.shards) {
      throw new Error(
        `AGGREGATE_SHARDS is ${this.shards}, but this database holds statistics written with ${String(layout?.shards)} shards; set it back to that.`,
      );
    }
  }

  documentsOf(keys: readonly string[]): string[] {
    return [...new Set(keys.map((key) => this.shardOfKey(key)))];
  }

  /** Records keys for listing (before their first statistics are written); known keys are left as they are. */
  private async register(keys: readonly string[], now: Date): Promise<void> {
    const unknown = keys.filter((key) => !this.knownKeys.has(key));
    if (unknown.length === 0) return;
    await insertNew(
      this.keys,
      unknown.map((key) => ({ _id: key, createdAt: now })),
    );
    for (const key of unknown) this.knownKeys.set(key, true);
  }

  /**
   * Applies one job's deltas once: one update per shard, whose filter
   * matches only while this lane's recorded sequence there is below
   * `guard.seq`, and which raises it in the same single-document update.
   */
  async applyDeltas(deltas: readonly KeyDelta[], guard: JobGuard, now: Date): Promise<void> {
    await this.applyGroup([{ deltas, guard }], now);
  }

  /**
   * Applies the deltas of several jobs (of different lanes) with one update
   * per shard: the filter holds every job's guard, so the update matches only
   * where none of them was applied yet, and raises them all. Where it matches
   * nothing (some job there was applied before: a re-run), each job's deltas
   * are applied on their own, guarded: those already applied change nothing.
   */
  async applyGroup(jobs: readonly GuardedDeltas[], now: Date): Promise<void> {
    const keys = [...new Set(jobs.flatMap((job) => job.deltas.map((delta) => delta.key)))];
    await this.register(keys, now);
    await this.locks.withLocks(this.documentsOf(keys), async () => {
      const operations = this.byShard(jobs).map((write) => this.update(write, now));
      if ((await this.write(operations)) === operations.length || jobs.length === 1) return;
      for (const job of jobs) await this.write(this.byShard([job]).map((write) => this.update(write, now)));
    });
  }

  async findByKey(key: string): Promise<StatsView | null> {
    return (await this.findByKeys([key])).get(key) ?? null;
  }

  /** One read per shard, of only the keys asked for. */
  async findByKeys(keys: readonly string[]): Promise<Map<string, StatsView | null>> {
    const byShard = new Map<string, string[]>();
    for (const key of new Set(keys)) {
      const shard = this.shardOfKey(key);
      const shardKeys = byShard.get(shard);
      if (shardKeys) shardKeys.push(key);
      else byShard.set(shard, [key]);
    }
    const views = new Map<string, StatsView | null>();
    await Promise.all(
      [...byShard].map(async ([shard, shardKeys]) => {
        const projection = Object.fromEntries(shardKeys.map((key) => [`k.${keyField(key)}`, 1]));
        const doc = await this.collection.findOne({ _id: shard }, { projection });
        for (const key of shardKeys) views.set(key, toStatsView(key, doc?.k?.[keyField(key)]));
      }),
    );
    return views;
  }

  /** Keys in order from the key list, then their statistics; a key listed before its first write is left out. */
  async list(options: { prefix?: string; limit: number; after?: string }): Promise<AggregatePage> {
    const idFilter: { $regex?: RegExp; $gt?: string } = {};
    if (options.prefix) idFilter.$regex = prefixPattern(options.prefix);
    if (options.after !== undefined) idFilter.$gt = options.after;
    const docs = await this.keys
      .find(Object.keys(idFilter).length > 0 ? { _id: idFilter } : {}, { projection: { _id: 1 } })
      .sort({ _id: 1 })
      .limit(options.limit + 1)
      .toArray();
    const page = docs.slice(0, options.limit).map((doc) => doc._id);
    const views = await this.findByKeys(page);
    const last = page[page.length - 1];
    return {
      items: page.map((key) => views.get(key)).filter((view): view is StatsView => view !== null && view !== undefined),
      nextCursor: docs.length > options.limit && last !== undefined ? last : null,
    };
  }

  private shardId(index: number): string {
    return `shard-${index}`;
  }

  /** The id of the shard document that holds `key`. */
  private shardOfKey(key: string): string {
    return this.shardId(shardOf(key, this.shards));
  }

  /** The jobs' deltas per shard, merged per key, with the guard of every job that touches the shard. */
  private byShard(jobs: readonly GuardedDeltas[]): ShardWrite[] {
    const shards = new Map<string, { deltas: Map<string, KeyDelta>; guards: JobGuard[] }>();
    for (const { deltas, guard } of jobs) {
      for (const delta of deltas) {
        const shard = this.shardOfKey(delta.key);
        const entry = shards.get(shard) ?? { deltas: new Map<string, KeyDelta>(), guards: [] };
        // Jobs come one after the other: a job's guard is added once per shard it touches.
        if (entry.guards[entry.guards.length - 1] !== guard) entry.guards.push(guard);
        const current = entry.deltas.get(delta.key);
        entry.deltas.set(delta.key, current ? mergeDeltas(current, delta) : delta);
        shards.set(shard, entry);
      }
    }
    return [...shards].map(([shard, { deltas, guards }]) => ({ shard, deltas: [...deltas.values()], guards }));
  }

  /** One shard's guarded update; its guards are of distinct lanes. */
  private update({ shard, deltas, guards }: ShardWrite, now: Date): AnyBulkWriteOperation<AggregateShardDocument> {
    const filter: Record<string, unknown> = { _id: shard };
    const ops = { inc: {}, min: {}, max: {}, set: {}, unset: {} as Record<string, ''> };
    for (const delta of deltas) addDelta(ops, `k.${keyField(delta.key)}.`, delta, now);
    addGuards(filter, ops, guards, this.retention);
    return {
      updateOne: {
        filter: filter,
        update: { $inc: ops.inc, $min: ops.min, $max: ops.max, $set: ops.set, $unset: ops.unset },
      },
    };
  }

  /** Runs updates in commands of `writeBatchSize`; returns how many matched. */
  private async write(operations: readonly AnyBulkWriteOperation<AggregateShardDocument>[]): Promise<number> {
    let matched = 0;
    for (const batch of chunk(operations, this.writeBatchSize)) {
      matched += (await this.collection.bulkWrite(batch, { ordered: false })).matchedCount;
    }
    return matched;
  }
}
