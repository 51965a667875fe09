import type { AnyBulkWriteOperation, Collection, Filter } from 'mongodb';
import type { AggregateDocument, AggregateModel } from '../models/aggregate-model';
import { chunk, mergeDeltas, type KeyDelta, type StatsView } from '../domain/stats';
import { nativeCollection } from '../models';
import { bulkWriteErrors, DUPLICATE_KEY } from './mongo-errors';

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

const VIEW_PROJECTION = { g: 0 } as const;

/** The view of an aggregate, or null for a document created for a key whose first job has not been applied yet. */
export function toStatsView(doc: AggregateDocument): StatsView | null {
  const { count, sum, min, max, first, lastTs, last, updatedAt } = doc;
  // All are set together by the first applied job's update.
  if (count === undefined || sum === undefined || min === undefined || max === undefined) return null;
  if (first === undefined || lastTs === undefined || last === undefined || updatedAt === undefined) return null;
  return {
    key: doc._id,
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

export class AggregateRepository {
  private readonly collection: Collection<AggregateDocument>;

  /**
   * `writeBatchSize` caps the updates per command. FerretDB 1.24 on SQLite
   * opens one cursor per update statement from a pool of 100 and hangs for
   * good at 100 statements in one command (measured: 99 work, 100 hang), so
   * the default is 50; MongoDB takes any size.
   */
  constructor(
    model: AggregateModel,
    private readonly retention: GuardRetention,
    private readonly writeBatchSize: number,
  ) {
    this.collection = nativeCollection(model);
  }

  /**
   * Creates the documents of keys that do not exist yet. A separate step,
   * because an upsert whose guard does not match (a replayed job) would try
   * to insert a second document with the same `_id`, and FerretDB stops an
   * unordered bulk at the first such error.
   */
  async ensureExists(keys: readonly string[], now: Date): Promise<void> {
    for (const batch of chunk(keys, this.writeBatchSize)) await this.ensureBatchExists(batch, now);
  }

  private async ensureBatchExists(keys: readonly string[], now: Date): Promise<void> {
    let remaining = keys.map((key) => ({
      updateOne: { filter: { _id: key }, update: { $setOnInsert: { createdAt: now } }, upsert: true },
    }));
    while (remaining.length > 0) {
      try {
        await this.collection.bulkWrite(remaining, { ordered: true });
        return;
      } catch (error) {
        // Another worker created the same key between our read and write: it exists now, go on after it.
        const failed = bulkWriteErrors(error)?.[0];
        if (!failed || failed.code !== DUPLICATE_KEY) throw error;
        remaining = remaining.slice(failed.index + 1);
      }
    }
  }

  /**
   * Applies each delta once per guard: the filter matches only while this
   * lane's recorded sequence on the key is below `guard.seq`, and the same
   * single-document update raises it. Returns how many keys changed now;
   * the others already had this job.
   */
  async applyDeltas(deltas: readonly KeyDelta[], guard: JobGuard, now: Date): Promise<number> {
    return this.write(deltas.map((delta) => this.update(delta, [guard], now)));
  }

  /**
   * Applies the deltas of several jobs (of different lanes) with one update
   * per key: the filter holds every job's guard, so the update matches only
   * where none of them was applied yet, and raises them all. Where it matches
   * nothing (some job there was applied before: a re-run), each job's deltas
   * are applied on their own, guarded: those already applied change nothing.
   */
  async applyGroup(jobs: readonly { deltas: readonly KeyDelta[]; guard: JobGuard }[], now: Date): Promise<void> {
    const [only] = jobs;
    if (jobs.length === 1 && only) {
      await this.applyDeltas(only.deltas, only.guard, now);
      return;
    }
    const byKey = new Map<string, { delta: KeyDelta; guards: JobGuard[] }>();
    for (const { deltas, guard } of jobs) {
      for (const delta of deltas) {
        const entry = byKey.get(delta.key);
        if (entry) {
          entry.delta = mergeDeltas(entry.delta, delta);
          entry.guards.push(guard);
        } else {
          byKey.set(delta.key, { delta, guards: [guard] });
        }
      }
    }
    const operations = [...byKey.values()].map(({ delta, guards }) => this.update(delta, guards, now));
    if ((await this.write(operations)) === operations.length) return;
    for (const { deltas, guard } of jobs) await this.applyDeltas(deltas, guard, now);
  }

  /** One key's guarded update: `guards` are of distinct lanes. */
  private update(delta: KeyDelta, guards: readonly JobGuard[], now: Date): AnyBulkWriteOperation<AggregateDocument> {
    const filter: Filter<AggregateDocument> = { _id: delta.key };
    const raise: Record<string, number> = {};
    const written = new Set(guards.map((guard) => guard.slot));
    const pruned = new Set<number>();
    for (const guard of guards) {
      const guardPath = `g.${guard.slot}.${guard.lane}`;
      filter[guardPath] = { $not: { $gte: guard.seq } };
      raise[guardPath] = guard.seq;
      for (let age = this.retention.keepSlots; age < this.retention.keepSlots + this.retention.pruneSlots; age += 1) {
        // Jobs of neighbouring slots in one update: never drop a slot that one of them writes.
        if (!written.has(guard.slot - age)) pruned.add(guard.slot - age);
      }
    }
    const prune = Object.fromEntries([...pruned].map((slot) => [`g.${slot}`, ''] as const));
    return {
      updateOne: {
        filter,
        update: {
          $inc: { count: delta.count, sum: delta.sum },
          $min: { min: delta.min, first: new Date(delta.firstTs) },
          $max: {
            max: delta.max,
            lastTs: new Date(delta.lastTs),
            // Field order matters: BSON compares t first, then v.
            last: { t: new Date(delta.lastTs), v: delta.lastValue },
            ...raise,
          },
          $set: { updatedAt: now },
          $unset: prune,
        },
      },
    };
  }

  /** Runs updates in commands of `writeBatchSize`; returns how many matched. */
  private async write(operations: readonly AnyBulkWriteOperation<AggregateDocument>[]): Promise<number> {
    let matched = 0;
    for (const batch of chunk(operations, this.writeBatchSize)) {
      matched += (await this.collection.bulkWrite(batch, { ordered: false })).matchedCount;
    }
    return matched;
  }

  async findByKey(key: string): Promise<StatsView | null> {
    const doc = await this.collection.findOne({ _id: key }, { projection: VIEW_PROJECTION });
    return doc && toStatsView(doc);
  }

  /** One lookup per key: exact `_id` matches are the fast path on FerretDB, `$in` is not. */
  async findByKeys(keys: readonly string[]): Promise<Map<string, StatsView | null>> {
    const views = await Promise.all(keys.map((key) => this.findByKey(key)));
    return new Map(keys.map((key, index) => [key, views[index] ?? null]));
  }

  async list(options: { prefix?: string; limit: number; after?: string }): Promise<AggregatePage> {
    // An anchored, case-sensitive regex is MongoDB's indexed prefix match.
    const idFilter: { $regex?: RegExp; $gt?: string } = {};
    if (options.prefix) idFilter.$regex = new RegExp(`^${escapeRegExp(options.prefix)}`);
    if (options.after !== undefined) idFilter.$gt = options.after;
    const filter = Object.keys(idFilter).length > 0 ? { _id: idFilter, first: { $exists: true } } : { first: { $exists: true } };
    const docs = await this.collection
      .find(filter, { projection: VIEW_PROJECTION })
      .sort({ _id: 1 })
      .limit(options.limit + 1)
      .toArray();
    const page = docs.slice(0, options.limit);
    const last = page[page.length - 1];
    return {
      items: page.map(toStatsView).filter((view): view is StatsView => view !== null),
      nextCursor: docs.length > options.limit && last ? last._id : null,
    };
  }
}
