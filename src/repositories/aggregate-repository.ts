import type { AnyBulkWriteOperation, Collection, Filter } from 'mongodb';
import type { AggregateModel, AggregateShardDocument, KeyDocument, KeyStats } from '../models/aggregate-model';
import { chunk, mergeDeltas, type KeyDelta, type StatsView } from '../domain/stats';
import { nativeCollection } from '../models';
import { bulkWriteErrors, DUPLICATE_KEY, insertNew } from './mongo-errors';

/** Identifies one job's writes: lane `lane` of time slot `slot` applying its job number `seq`. */
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

export interface AggregatePage {
  items: StatsView[];
  nextCursor: string | null;
}

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

/** The view of one key's statistics, or null when the key has none (yet). */
export function toStatsView(key: string, stats: Partial<KeyStats> | undefined): StatsView | null {
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

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The deltas of one job (or of several, merged) that fall in one shard, with the guards they are written under. */
interface ShardWrite {
  shard: string;
  deltas: KeyDelta[];
  guards: JobGuard[];
}

/**
 * Per-key statistics, stored in a fixed number of shard documents.
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
export class AggregateRepository {
  private readonly collection: Collection<AggregateShardDocument>;
  private readonly keys: Collection<KeyDocument>;

  /**
   * `writeBatchSize` caps the updates per command. FerretDB 1.24 on SQLite
   * opens one cursor per update statement from a pool of 100 and hangs for
   * good at 100 statements in one command (measured: 99 work, 100 hang).
   * `shards` (AGGREGATE_SHARDS) is fixed once data is written: `prepare`
   * refuses another value.
   */
  constructor(
    model: AggregateModel,
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

  /** The shard documents that hold these keys: what a writer must lock. */
  shardsOf(keys: readonly string[]): string[] {
    return [...new Set(keys.map((key) => this.shardOfKey(key)))];
  }

  /** Records keys for listing (before their first statistics are written); known keys are left as they are. */
  async register(keys: readonly string[], now: Date): Promise<void> {
    await insertNew(
      this.keys,
      keys.map((key) => ({ _id: key, createdAt: now })),
    );
  }

  /**
   * Applies one job's deltas once: one update per shard, whose filter
   * matches only while this lane's recorded sequence there is below
   * `guard.seq`, and which raises it in the same single-document update.
   * Returns how many shards changed now; the others already had this job.
   */
  async applyDeltas(deltas: readonly KeyDelta[], guard: JobGuard, now: Date): Promise<number> {
    return this.write(this.byShard([{ deltas, guard }]).map((write) => this.update(write, now)));
  }

  /**
   * Applies the deltas of several jobs (of different lanes) with one update
   * per shard: the filter holds every job's guard, so the update matches only
   * where none of them was applied yet, and raises them all. Where it matches
   * nothing (some job there was applied before: a re-run), each job's deltas
   * are applied on their own, guarded: those already applied change nothing.
   */
  async applyGroup(jobs: readonly { deltas: readonly KeyDelta[]; guard: JobGuard }[], now: Date): Promise<void> {
    const operations = this.byShard(jobs).map((write) => this.update(write, now));
    if ((await this.write(operations)) === operations.length || jobs.length === 1) return;
    for (const { deltas, guard } of jobs) await this.applyDeltas(deltas, guard, now);
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
    // An anchored, case-sensitive regex is MongoDB's indexed prefix match.
    const idFilter: { $regex?: RegExp; $gt?: string } = {};
    if (options.prefix) idFilter.$regex = new RegExp(`^${escapeRegExp(options.prefix)}`);
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
  private byShard(jobs: readonly { deltas: readonly KeyDelta[]; guard: JobGuard }[]): ShardWrite[] {
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
    const filter: Filter<AggregateShardDocument> = { _id: shard };
    const inc: Record<string, number> = {};
    const min: Record<string, number | Date> = {};
    const max: Record<string, number | Date | { t: Date; v: number }> = {};
    const set: Record<string, Date> = {};
    for (const delta of deltas) {
      const path = `k.${keyField(delta.key)}`;
      inc[`${path}.count`] = delta.count;
      inc[`${path}.sum`] = delta.sum;
      min[`${path}.min`] = delta.min;
      min[`${path}.first`] = new Date(delta.firstTs);
      max[`${path}.max`] = delta.max;
      max[`${path}.lastTs`] = new Date(delta.lastTs);
      // Field order matters: BSON compares t first, then v.
      max[`${path}.last`] = { t: new Date(delta.lastTs), v: delta.lastValue };
      set[`${path}.updatedAt`] = now;
    }
    const written = new Set(guards.map((guard) => guard.slot));
    const pruned = new Set<number>();
    for (const guard of guards) {
      const guardPath = `g.${guard.slot}.${guard.lane}`;
      filter[guardPath] = { $not: { $gte: guard.seq } };
      max[guardPath] = guard.seq;
      for (let age = this.retention.keepSlots; age < this.retention.keepSlots + this.retention.pruneSlots; age += 1) {
        // Jobs of neighbouring slots in one update: never drop a slot that one of them writes.
        if (!written.has(guard.slot - age)) pruned.add(guard.slot - age);
      }
    }
    const prune = Object.fromEntries([...pruned].map((slot) => [`g.${slot}`, ''] as const));
    return { updateOne: { filter, update: { $inc: inc, $min: min, $max: max, $set: set, $unset: prune } } };
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
