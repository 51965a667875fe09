import type { AnyBulkWriteOperation, Collection, Db } from 'mongodb';
import {
  bucketId,
  mergeBucket,
  STEP_MS,
  toBucketView,
  type BucketDelta,
  type BucketView,
  type SeriesRetention,
  type Step,
} from '../../domain/series';
import { applyGroupOnce, guardClauses, type GuardRetention, type JobGuard } from '../../exactly-once/guard';
import type { GuardedBuckets, SeriesStore } from '../contract';
import { runGuardedUpserts } from './guarded-upserts';

/**
 * One bucket of one key: `_id` is `<step>|<start ms>|<key>`; `k`, `s`, `t` repeat it for the range reads
 * (index `{k, s, t}`); `x` is when it expires (TTL index), absent for a step kept for good; `g` is its guard.
 */
export interface SeriesBucketDocument {
  _id: string;
  k: string;
  s: Step;
  t: Date;
  x?: Date;
  count: number;
  sum: number;
  min: number;
  max: number;
  g?: Record<string, Record<string, number>>;
}

const SERIES_COLLECTION = 'series';

/**
 * The MongoDB profile's rollups: one small document per key, step and bucket, written by a guarded upsert like a
 * key's statistics (the guard in the filter, served by `_id`), so no document is shared by all writers. A window
 * is one range of the `{k, s, t}` index; MongoDB deletes buckets past their step's retention (TTL index on `x`).
 */
export class BucketSeriesRepository implements SeriesStore {
  private readonly collection: Collection<SeriesBucketDocument>;

  /** `indexes`: the server uses secondary indexes; `expiry`: it has TTL indexes (FerretDB v1 has neither). */
  constructor(
    db: Db,
    readonly retention: SeriesRetention,
    private readonly guardRetention: GuardRetention,
    private readonly writeBatchSize: number,
    private readonly options: { indexes: boolean; expiry: boolean },
  ) {
    this.collection = db.collection<SeriesBucketDocument>(SERIES_COLLECTION);
  }

  async prepare(): Promise<void> {
    if (this.options.indexes) await this.collection.createIndex({ k: 1, s: 1, t: 1 }, { name: 'series_window' });
    if (this.options.expiry) await this.collection.createIndex({ x: 1 }, { name: 'series_expiry', expireAfterSeconds: 0 });
  }

  /**
   * One guarded upsert per bucket for all the jobs, one job at a time where a bucket had one of them (applyGroupOnce).
   */
  async applyGroup(jobs: readonly GuardedBuckets[]): Promise<void> {
    await applyGroupOnce(jobs, async (group) => {
      const operations = byBucket(group).map(({ bucket, guards }) => this.update(bucket, guards));
      return (await runGuardedUpserts(this.collection, operations, this.writeBatchSize)) === operations.length;
    });
  }

  /** The rollups live in the database with the statistics and history: nothing to rebuild. */
  rebuildable(): null {
    return null;
  }

  async read(keys: readonly string[], step: Step, from: number, to: number): Promise<Map<string, BucketView[]>> {
    const series = new Map<string, BucketView[]>();
    await Promise.all(
      [...new Set(keys)].map(async (key) => {
        const docs = await this.collection
          .find({ k: key, s: step, t: { $gte: new Date(from), $lte: new Date(to) } }, { projection: { g: 0 } })
          .sort({ k: 1, s: 1, t: 1 })
          .toArray();
        series.set(key, docs.map(toView));
      }),
    );
    return series;
  }

  async bucketsAt(starts: ReadonlyMap<string, number>, step: Step): Promise<Map<string, BucketView>> {
    if (starts.size === 0) return new Map();
    const ids = [...starts].map(([key, start]) => bucketId(step, start, key));
    const docs = await this.collection.find({ _id: { $in: ids } }, { projection: { g: 0 } }).toArray();
    return new Map(docs.map((doc) => [doc.k, toView(doc)]));
  }

  /** A bucket's guarded upsert: a new bucket's document is created by it, with its expiry. */
  private update(bucket: BucketDelta, guards: readonly JobGuard[]): AnyBulkWriteOperation<SeriesBucketDocument> {
    const guard = guardClauses(guards, this.guardRetention);
    const kept = this.retention[bucket.step];
    const onInsert: Record<string, unknown> = { k: bucket.key, s: bucket.step, t: new Date(bucket.start) };
    if (kept !== null) onInsert.x = new Date(bucket.start + STEP_MS[bucket.step] + kept);
    const update: Record<string, Record<string, unknown>> = {
      $inc: { count: bucket.count, sum: bucket.sum },
      $min: { min: bucket.min },
      $max: { max: bucket.max, ...guard.max },
      $setOnInsert: onInsert,
    };
    if (Object.keys(guard.unset).length > 0) update.$unset = guard.unset;
    return { updateOne: { filter: { _id: bucketId(bucket.step, bucket.start, bucket.key), ...guard.filter }, update, upsert: true } };
  }
}

function toView(doc: SeriesBucketDocument): BucketView {
  return toBucketView({ start: doc.t.getTime(), count: doc.count, sum: doc.sum, min: doc.min, max: doc.max });
}

/** The jobs' buckets merged per bucket, with the guard of every job that touches it. */
function byBucket(jobs: readonly GuardedBuckets[]): { bucket: BucketDelta; guards: JobGuard[] }[] {
  const writes = new Map<string, { bucket: BucketDelta; guards: JobGuard[] }>();
  for (const { buckets, guard } of jobs) {
    for (const bucket of buckets) {
      const id = bucketId(bucket.step, bucket.start, bucket.key);
      const write = writes.get(id);
      if (write) {
        write.bucket = mergeBucket(write.bucket, bucket);
        write.guards.push(guard);
      } else {
        writes.set(id, { bucket, guards: [guard] });
      }
    }
  }
  return [...writes.values()];
}
