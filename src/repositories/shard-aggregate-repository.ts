import { LRUCache } from 'lru-cache';
import type { AnyBulkWriteOperation, Collection, Db } from 'mongodb';
import type { AggregateModel, AggregateShardDocument, KeyDocument } from '../models/aggregate-model';
import { chunk, mergeDeltas, type KeyDelta, type StatsView } from '../domain/stats';
import { nativeCollection } from '../models';
import type { KeyLocks } from '../queue/key-locks';
import { guardedUpdate, prefixPattern, toStatsView, type AggregatePage, type AggregateStore, type GuardedDeltas } from './aggregate-store';
import type { GuardRetention, JobGuard } from '../exactly-once/guard';
import { bulkWriteErrors, DUPLICATE_KEY, insertNew } from './mongo-errors';
import { keysByShard, shardOf, type ShardLayout } from './shard-layout';

// How many shard collections are written at once: FerretDB decodes, validates and encodes in Go, on every core.
const PARALLEL_SHARD_WRITES = 4;

/** The field name of a key inside its shard: base64url never holds `.` or `$`. */
export function keyField(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

/** The deltas of one job (or of several, merged) that fall in one shard, with the guards they are written under. */
interface ShardWrite {
  index: number;
  shard: string;
  deltas: KeyDelta[];
  guards: JobGuard[];
}

// Keys known to be in the key list skip registering; 100k keys is ~10 MB.
const KNOWN_KEYS_CAPACITY = 100_000;

/**
 * The FerretDB profile's statistics in databases created before shards were packed (`layout.packed` unset; new ones
 * get packed-aggregate-repository.ts): keys in a fixed number of shard documents, a field per key, written under
 * Redis locks.
 *
 * Why shards: on FerretDB an update whose filter is more than `{_id}` (ours
 * holds the exactly-once guard) reads and decodes every document of its
 * collection, so per-key documents would cost O(keys) per key. A shard is
 * updated by one statement, so a job is applied to a shard entirely or not
 * at all, and the guard lives with the shard.
 *
 * Why each shard in a collection of its own: a statement decodes every
 * document of its collection, and FerretDB checks every pair of paths of an
 * update against each other, so a statement's cost grows with its
 * collection's size and with the square of the keys it writes. Why 32 by
 * default: every statement has a fixed cost and a group writes one per shard it
 * touches, so more shards slow down a few hundred keys while they speed up tens
 * of thousands; docs/storage.md has the measurements on both sides.
 */
export class ShardAggregateRepository implements AggregateStore {
  private readonly collection: Collection<AggregateShardDocument>;
  private readonly keys: Collection<KeyDocument>;
  private readonly knownKeys = new LRUCache<string, true>({ max: KNOWN_KEYS_CAPACITY });
  /** Shard collections whose document this process knows to exist. */
  private readonly ensured = new Set<number>();

  /**
   * `writeBatchSize` caps the updates per command. FerretDB 1.24 on SQLite
   * opens one cursor per update statement from a pool of 100 and hangs for
   * good at 100 statements in one command.
   * `layout`: the database's (shard-layout.ts). `locks`: FerretDB loses
   * concurrent updates of one document, so one writer per shard at a time.
   */
  constructor(
    model: AggregateModel,
    private readonly db: Db,
    private readonly locks: KeyLocks,
    private readonly retention: GuardRetention,
    private readonly writeBatchSize: number,
    private readonly layout: ShardLayout,
  ) {
    this.collection = nativeCollection(model.shards);
    this.keys = nativeCollection(model.keys);
  }

  /**
   * In the layout of one collection, creates the shard documents: they exist before any guarded update, because an
   * upsert whose guard does not match (a replayed job) would insert a second document with the same `_id`. Shards in
   * collections of their own are created on first use (see `ensureShards`).
   */
  async prepare(now: Date): Promise<void> {
    if (!this.layout.ownCollections) await this.createSharedShards(now);
  }

  /** The shard documents of the one-collection layout, created where missing. */
  private async createSharedShards(now: Date): Promise<void> {
    let remaining = Array.from({ length: this.layout.shards }, (_, index) => ({
      updateOne: { filter: { _id: this.shardId(index) }, update: { $setOnInsert: { createdAt: now } }, upsert: true },
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
  }

  /** The collection that holds shard `index`. */
  private collectionOf(index: number): Collection<AggregateShardDocument> {
    return this.layout.ownCollections ? this.db.collection<AggregateShardDocument>(`statshards_${index}`) : this.collection;
  }

  /** Creates the documents of shards in collections of their own before their first guarded update. */
  private async ensureShards(indexes: readonly number[], now: Date): Promise<void> {
    if (!this.layout.ownCollections) return;
    for (const index of indexes) {
      if (this.ensured.has(index)) continue;
      await insertNew(this.collectionOf(index), [{ _id: this.shardId(index), createdAt: now }]);
      this.ensured.add(index);
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
    const writes = this.byShard(jobs);
    await this.ensureShards(
      writes.map((write) => write.index),
      now,
    );
    // The shards the writes touch are exactly the documents that hold these keys.
    await this.locks.withLocks(
      writes.map((write) => write.shard),
      async () => {
        if ((await this.write(writes, now)) === writes.length || jobs.length === 1) return;
        for (const job of jobs) await this.write(this.byShard([job]), now);
      },
    );
  }

  async findByKey(key: string): Promise<StatsView | null> {
    return (await this.findByKeys([key])).get(key) ?? null;
  }

  /** One read per shard, of only the keys asked for. */
  async findByKeys(keys: readonly string[]): Promise<Map<string, StatsView | null>> {
    const views = new Map<string, StatsView | null>();
    await Promise.all(
      [...keysByShard(keys, this.layout.shards)].map(async ([index, shardKeys]) => {
        const projection = Object.fromEntries(shardKeys.map((key) => [`k.${keyField(key)}`, 1]));
        const doc = await this.collectionOf(index).findOne({ _id: this.shardId(index) }, { projection });
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

  private shardIndexOf(key: string): number {
    return shardOf(key, this.layout.shards);
  }

  /** The id of the shard document that holds `key`. */
  private shardOfKey(key: string): string {
    return this.shardId(this.shardIndexOf(key));
  }

  /** The jobs' deltas per shard, merged per key, with the guard of every job that touches the shard. */
  private byShard(jobs: readonly GuardedDeltas[]): ShardWrite[] {
    const shards = new Map<number, { deltas: Map<string, KeyDelta>; guards: JobGuard[] }>();
    for (const { deltas, guard } of jobs) {
      for (const delta of deltas) {
        const shard = this.shardIndexOf(delta.key);
        const entry = shards.get(shard) ?? { deltas: new Map<string, KeyDelta>(), guards: [] };
        // Jobs come one after the other: a job's guard is added once per shard it touches.
        if (entry.guards[entry.guards.length - 1] !== guard) entry.guards.push(guard);
        const current = entry.deltas.get(delta.key);
        entry.deltas.set(delta.key, current ? mergeDeltas(current, delta) : delta);
        shards.set(shard, entry);
      }
    }
    return [...shards].map(([index, { deltas, guards }]) => ({ index, shard: this.shardId(index), deltas: [...deltas.values()], guards }));
  }

  /** One shard's guarded update; its guards are of distinct lanes. */
  private update({ shard, deltas, guards }: ShardWrite, now: Date): AnyBulkWriteOperation<AggregateShardDocument> {
    const paths = deltas.map((delta) => [`k.${keyField(delta.key)}.`, delta] as const);
    return { updateOne: guardedUpdate(shard, paths, guards, this.retention, now) };
  }

  /** Runs the shards' updates (in commands of `writeBatchSize` where they share a collection); returns how many matched. */
  private async write(writes: readonly ShardWrite[], now: Date): Promise<number> {
    if (!this.layout.ownCollections) {
      let matched = 0;
      for (const batch of chunk(writes, this.writeBatchSize)) {
        matched += (
          await this.collection.bulkWrite(
            batch.map((write) => this.update(write, now)),
            { ordered: false },
          )
        ).matchedCount;
      }
      return matched;
    }
    let matched = 0;
    for (const batch of chunk(writes, PARALLEL_SHARD_WRITES)) {
      // Every write settles before any error is thrown: the caller releases the shards' locks right after.
      const results = await Promise.allSettled(batch.map((write) => this.collectionOf(write.index).bulkWrite([this.update(write, now)])));
      for (const result of results) {
        if (result.status === 'rejected') throw result.reason;
        matched += result.value.matchedCount;
      }
    }
    return matched;
  }
}
