import { MongoServerError, type Collection, type Filter } from 'mongodb';
import { AppError } from '../../domain/errors';
import { MAX_EPOCH_MS } from '../../domain/point-schema';
import type { HistoryJob, HistoryPage, HistoryQuery, HistoryStore } from '../contract';
import { bucketsOf, PageMerge, windowEnd, withinRetention, type HistoryBucket } from './history-buckets';
import { nativeCollection } from './models';
import type { HistoryBucketDocument, HistoryBucketModel } from './models/history-bucket-model';
import { insertNew } from './mongo-errors';

/** How a bucket's points are stored: native arrays, or one string of JSON (see StorageProfile.historyColumns). */
export type HistoryColumns = 'arrays' | 'packed';

/**
 * The packed columns and times: [i, t, v, y, m, receivedAt, processedAt], as JSON. The times are in it too because
 * FerretDB v1's insert costs by the field: two date fields fewer took 26% off inserting 800 buckets.
 */
type PackedColumns = [number[], number[], number[], HistoryBucket['y'] | null, HistoryBucket['m'] | null, number, number];

function toDocument(bucket: HistoryBucket, columns: HistoryColumns): HistoryBucketDocument {
  const { id, key, batchId, n, i, t, v, y, m } = bucket;
  const doc: HistoryBucketDocument = { _id: id, key, batchId, min: new Date(bucket.min), max: new Date(bucket.max), n };
  if (columns === 'packed') {
    doc.p = JSON.stringify([i, t, v, y ?? null, m ?? null, bucket.receivedAt, bucket.processedAt] satisfies PackedColumns);
    return doc;
  }
  Object.assign(doc, {
    i,
    t: t.map((ms) => new Date(ms)),
    v,
    receivedAt: new Date(bucket.receivedAt),
    processedAt: new Date(bucket.processedAt),
  });
  if (y) doc.y = y;
  if (m) doc.m = m;
  return doc;
}

/** A stored bucket, either way its columns are stored (one layout per profile: no other is read). */
export function fromDocument(doc: HistoryBucketDocument): HistoryBucket {
  const { _id: id, key, batchId, n } = doc;
  const base = { id, key, batchId, min: doc.min.getTime(), max: doc.max.getTime(), n };
  let bucket: HistoryBucket;
  let y: HistoryBucket['y'] | null | undefined;
  let m: HistoryBucket['m'] | null | undefined;
  if (doc.p !== undefined) {
    const [i, t, v, types, metas, receivedAt, processedAt] = JSON.parse(doc.p) as PackedColumns;
    bucket = { ...base, i, t, v, receivedAt, processedAt };
    [y, m] = [types, metas];
  } else {
    const i = doc.i ?? [];
    const t = doc.t?.map((date) => date.getTime()) ?? [];
    bucket = { ...base, i, t, v: doc.v ?? [], receivedAt: timeOf(doc, 'receivedAt'), processedAt: timeOf(doc, 'processedAt') };
    [y, m] = [doc.y, doc.m];
  }
  if (y) bucket.y = y;
  if (m) bucket.m = m;
  return bucket;
}

/** A time field of a bucket stored with arrays; every such bucket is written with both. */
function timeOf(doc: HistoryBucketDocument, field: 'receivedAt' | 'processedAt'): number {
  const date = doc[field];
  if (!date) throw new Error(`history bucket ${doc._id} has no ${field}`);
  return date.getTime();
}

const NAMESPACE_NOT_FOUND = 26;
// The TTL index of HISTORY_RETENTION on MongoDB.
const TTL_INDEX = 'history_retention';
// MongoDB's (and FerretDB's) code for a command stopped by maxTimeMS.
const MAX_TIME_EXPIRED = 50;
// Buckets per round trip of a page read: a newest-100 page at 10 points a bucket needs about 11.
const READ_BATCH = 16;

/**
 * History in the database, one document per bucket (history-buckets.ts): MongoDB reads them by index; the FerretDB
 * profile puts a tier in front (ferretdb/recent-history.ts).
 */
export class HistoryRepository implements HistoryStore {
  private readonly collection: Collection<HistoryBucketDocument>;

  /** `queryTimeoutMs` bounds a page read on the server (`maxTimeMS`); on FerretDB every query reads the whole history. */
  constructor(
    model: HistoryBucketModel,
    /** HISTORY_QUERY_TIMEOUT_MS */
    private readonly queryTimeoutMs: number,
    private readonly columns: HistoryColumns = 'arrays',
    /** HISTORY_RETENTION: points older are left out of pages before their bucket expires, as the recent tier does. */
    private readonly retentionMs: number | null = null,
    private readonly clock: () => number = Date.now,
  ) {
    this.collection = nativeCollection(model);
  }

  /** Several jobs' buckets in one unordered insert; buckets already there (a job run again) stay as they are. */
  insertJobs(jobs: readonly HistoryJob[], processedAt: Date): Promise<number> {
    return this.insertBuckets(jobs.flatMap((job) => bucketsOf(job, processedAt)));
  }

  /** Inserts buckets made by `bucketsOf` (the tiered history makes them once for the store and the tier). */
  insertBuckets(buckets: readonly HistoryBucket[]): Promise<number> {
    const documents = buckets.map((bucket) => toDocument(bucket, this.columns));
    return insertNew(this.collection, documents, (document) => document.n);
  }

  /**
   * Buckets newest `max` first, merged into records until no older bucket can change the page. A bucket spans less
   * than one window, so only buckets whose `max` is below the end of the upper bound's window can hold points at or
   * below that bound; `min` (in the index) leaves out those of that window holding only newer points.
   */
  async page(query: HistoryQuery): Promise<HistoryPage> {
    const merge = new PageMerge(withinRetention(query, this.retentionMs, this.clock()));
    if (merge.empty) return { items: [], next: null };
    const filter: Filter<HistoryBucketDocument> = {};
    if (query.key !== undefined) filter.key = query.key;
    if (query.batchId !== undefined) filter.batchId = query.batchId;
    const max: { $gte?: Date; $lt?: Date } = {};
    if (merge.lower > -Infinity) max.$gte = new Date(merge.lower);
    if (merge.upper < Infinity) {
      // Past the last date JavaScript can hold, a bound is no bound (an invalid date would be sent as 1970).
      if (windowEnd(merge.upper) <= MAX_EPOCH_MS) max.$lt = new Date(windowEnd(merge.upper));
      filter.min = { $lte: new Date(merge.upper) };
    }
    if (max.$gte || max.$lt) filter.max = max;
    try {
      const cursor = this.collection.find(filter, { maxTimeMS: this.queryTimeoutMs }).sort({ max: -1 }).batchSize(READ_BATCH);
      for await (const doc of cursor) {
        if (!merge.add(fromDocument(doc))) break;
      }
    } catch (error) {
      if (error instanceof MongoServerError && error.code === MAX_TIME_EXPIRED) {
        throw new AppError(
          503,
          'QUERY_TIMEOUT',
          `The history query did not finish within ${this.queryTimeoutMs / 1000} s. On FerretDB (the default stack) a query the recent tier in Redis cannot answer reads all of history: a key's pages beyond its newest HISTORY_RECENT_PER_KEY points, a batch no longer in the tier, or neither key nor batchId. Read a key's or a recent batch's newest pages, or run MongoDB, whose indexes serve every history query.`,
        );
      }
      throw error;
    }
    return merge.finish().page;
  }

  /** Deletes the buckets whose newest point is before `cutoff`; returns how many points went. */
  async deleteOlderThan(cutoff: Date): Promise<number> {
    const filter = { max: { $lt: cutoff } };
    const points = await this.sumPoints(filter);
    if (points > 0) await this.collection.deleteMany(filter);
    return points;
  }

  /**
   * Makes the server expire a bucket `seconds` after its newest point (a TTL index on `max`), or keep buckets
   * (`null`: the index is dropped). Idempotent; a changed retention is applied to the existing index.
   */
  async setExpiry(seconds: number | null): Promise<void> {
    const indexes: { name?: string; expireAfterSeconds?: number }[] = await this.collection
      .listIndexes()
      .toArray()
      .catch((error: unknown) => {
        // A collection that does not exist yet has no index.
        if (error instanceof MongoServerError && error.code === NAMESPACE_NOT_FOUND) return [];
        throw error;
      });
    const existing = indexes.find((index) => index.name === TTL_INDEX);
    if (seconds === null) {
      if (existing) await this.collection.dropIndex(TTL_INDEX);
      return;
    }
    if (!existing) {
      await this.collection.createIndex({ max: 1 }, { name: TTL_INDEX, expireAfterSeconds: seconds });
    } else if (existing.expireAfterSeconds !== seconds) {
      await this.collection.db.command({
        collMod: this.collection.collectionName,
        index: { name: TTL_INDEX, expireAfterSeconds: seconds },
      });
    }
  }

  countByBatch(batchId: string): Promise<number> {
    return this.sumPoints({ batchId });
  }

  private async sumPoints(filter: Filter<HistoryBucketDocument>): Promise<number> {
    let points = 0;
    for await (const bucket of this.collection.find(filter, { projection: { n: 1 } })) points += bucket.n;
    return points;
  }
}
