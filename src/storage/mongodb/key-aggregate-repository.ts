import type { AnyBulkWriteOperation, Collection } from 'mongodb';
import { mergeDeltas, type KeyDelta, type StatsView } from '../../domain/stats';
import { applyGroupOnce, guardClauses, type GuardRetention, type JobGuard } from '../../exactly-once/guard';
import type { AggregatePage, AggregateStore, GuardedDeltas } from '../contract';
import { nativeCollection } from '../shared/models';
import { prefixPattern, toStatsView } from '../shared/stats-view';
import { runGuardedUpserts } from './guarded-upserts';
import type { KeyStatsDocument, KeyStatsModel } from './key-stats-model';

/** One key's merged deltas, with the guard of every job that touches it. */
interface KeyWrite {
  delta: KeyDelta;
  guards: JobGuard[];
}

const WITHOUT_GUARD = { g: 0 } as const;

/**
 * The MongoDB profile's statistics: one document per key, each with its own
 * exactly-once guard, checked and raised in the same single-document update
 * as the `$inc`. MongoDB applies concurrent updates of one document one after
 * the other, so no lock is needed, and no document is shared by all writers:
 * workers on many machines write side by side, and the number of keys has
 * no ceiling. Every read is by `_id` (the key), an index range.
 */
export class KeyAggregateRepository implements AggregateStore {
  private readonly collection: Collection<KeyStatsDocument>;

  /** `writeBatchSize`: most updates per command (see storage/profile.ts). */
  constructor(
    model: KeyStatsModel,
    private readonly retention: GuardRetention,
    private readonly writeBatchSize: number,
  ) {
    this.collection = nativeCollection(model);
  }

  /** Nothing to create: a key's document is created by its first update. */
  async prepare(): Promise<void> {}

  /** One guarded update per key for all the jobs, one job at a time where a key had one of them (applyGroupOnce). */
  async applyGroup(jobs: readonly GuardedDeltas[], now: Date): Promise<void> {
    await applyGroupOnce(jobs, async (group) => {
      const operations = this.byKey(group).map((write) => this.update(write, now));
      return (await this.write(operations)) === operations.length;
    });
  }

  async findByKey(key: string): Promise<StatsView | null> {
    return toStatsView(key, await this.collection.findOne({ _id: key }, { projection: WITHOUT_GUARD }));
  }

  async findByKeys(keys: readonly string[]): Promise<Map<string, StatsView | null>> {
    const unique = [...new Set(keys)];
    const docs = await this.collection.find({ _id: { $in: unique } }, { projection: WITHOUT_GUARD }).toArray();
    const byId = new Map(docs.map((doc) => [doc._id, doc]));
    return new Map(unique.map((key) => [key, toStatsView(key, byId.get(key))]));
  }

  async list(options: { prefix?: string; limit: number; after?: string }): Promise<AggregatePage> {
    const idFilter: { $regex?: RegExp; $gt?: string } = {};
    if (options.prefix) idFilter.$regex = prefixPattern(options.prefix);
    if (options.after !== undefined) idFilter.$gt = options.after;
    const docs = await this.collection
      .find(Object.keys(idFilter).length > 0 ? { _id: idFilter } : {}, { projection: WITHOUT_GUARD })
      .sort({ _id: 1 })
      .limit(options.limit + 1)
      .toArray();
    const page = docs.slice(0, options.limit);
    const last = page[page.length - 1];
    return {
      items: page.map((doc) => toStatsView(doc._id, doc)).filter((view): view is StatsView => view !== null),
      nextCursor: docs.length > options.limit && last !== undefined ? last._id : null,
    };
  }

  private byKey(jobs: readonly GuardedDeltas[]): KeyWrite[] {
    const writes = new Map<string, KeyWrite>();
    for (const { deltas, guard } of jobs) {
      for (const delta of deltas) {
        const current = writes.get(delta.key);
        if (current) {
          current.delta = mergeDeltas(current.delta, delta);
          current.guards.push(guard);
        } else {
          writes.set(delta.key, { delta, guards: [guard] });
        }
      }
    }
    return [...writes.values()];
  }

  /** A key's guarded upsert: a new key's document is created by it. */
  private update({ delta, guards }: KeyWrite, now: Date): AnyBulkWriteOperation<KeyStatsDocument> {
    return { updateOne: { ...guardedUpdate(delta, guards, this.retention, now), upsert: true } };
  }

  private write(operations: readonly AnyBulkWriteOperation<KeyStatsDocument>[]): Promise<number> {
    return runGuardedUpserts(this.collection, operations, this.writeBatchSize);
  }
}

/**
 * The guarded update of one key's document: the filter matches only while none of `guards` was applied to it; the
 * update adds the delta (count and sum guarded by that filter, the rest idempotent by nature), raises every guard and
 * drops guard slots past the retention, all in one statement (the rule: exactly-once/guard.ts).
 */
function guardedUpdate(
  delta: KeyDelta,
  guards: readonly JobGuard[],
  retention: GuardRetention,
  now: Date,
): { filter: Record<string, unknown>; update: Record<string, Record<string, unknown>> } {
  const guard = guardClauses(guards, retention);
  return {
    filter: { _id: delta.key, ...guard.filter },
    update: {
      $inc: { count: delta.count, sum: delta.sum },
      $min: { min: delta.min, first: new Date(delta.firstTs) },
      // Field order matters: BSON compares t first, then v.
      $max: { max: delta.max, lastTs: new Date(delta.lastTs), last: { t: new Date(delta.lastTs), v: delta.lastValue }, ...guard.max },
      $set: { updatedAt: now },
      $unset: guard.unset,
    },
  };
}
