import { MongoServerError, type Collection, type Filter } from 'mongodb';
import { AppError } from '../../domain/errors';
import type { Point } from '../../domain/point-schema';
import type { HistoryJob, HistoryPage, HistoryQuery, HistoryRecord, HistoryStore } from '../contract';
import { nativeCollection } from './models';
import { HISTORY_BUCKET_SPAN_MS, type HistoryBucketDocument, type HistoryBucketModel } from './models/history-bucket-model';
import { insertNew } from './mongo-errors';

/** A point's record id: its batch and its index there (the cursor's tie-break). */
export function historyId(batchId: string, index: number): string {
  return `${batchId}:${index}`;
}

/**
 * A job's history buckets: its points grouped by key and aligned window, each bucket named by its first point. The
 * names depend only on the job's own points, so a job run again (alone, in another group, after a crash) writes
 * the same buckets.
 */
export function bucketsOf(job: HistoryJob, processedAt: Date): HistoryBucketDocument[] {
  const groups = new Map<string, Point[]>();
  for (const point of job.points) {
    const group = `${Math.floor(point.ts / HISTORY_BUCKET_SPAN_MS)}\u0000${point.key}`;
    let points = groups.get(group);
    if (!points) groups.set(group, (points = []));
    points.push(point);
  }
  const buckets: HistoryBucketDocument[] = [];
  for (const points of groups.values()) {
    const first = points[0] as Point;
    let min = first.ts;
    let max = first.ts;
    for (const point of points) {
      if (point.ts < min) min = point.ts;
      if (point.ts > max) max = point.ts;
    }
    const bucket: HistoryBucketDocument = {
      _id: historyId(job.batchId, first.i),
      key: first.key,
      batchId: job.batchId,
      min: new Date(min),
      max: new Date(max),
      n: points.length,
      i: points.map((point) => point.i),
      t: points.map((point) => new Date(point.ts)),
      v: points.map((point) => point.value),
      receivedAt: job.receivedAt,
      processedAt,
    };
    if (points.some((point) => point.type !== undefined)) bucket.y = points.map((point) => point.type ?? null);
    if (points.some((point) => point.meta !== undefined)) bucket.m = points.map((point) => point.meta ?? null);
    buckets.push(bucket);
  }
  return buckets;
}

/** A point of a bucket read for a page: where it sorts, and where its fields are. */
interface Candidate {
  t: number;
  id: string;
  bucket: HistoryBucketDocument;
  j: number;
}

/** Newest first: timestamp descending, then record id descending (bytewise, as the cursor compares). */
function newestFirst(a: Candidate, b: Candidate): number {
  return b.t - a.t || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

function toRecord({ bucket, j, t }: Candidate): HistoryRecord {
  return {
    key: bucket.key,
    value: bucket.v[j] as number,
    timestamp: new Date(t).toISOString(),
    type: bucket.y?.[j] ?? null,
    meta: bucket.m?.[j] ?? null,
    batchId: bucket.batchId,
    receivedAt: bucket.receivedAt.toISOString(),
    processedAt: bucket.processedAt.toISOString(),
  };
}

const NAMESPACE_NOT_FOUND = 26;
// The TTL index of HISTORY_RETENTION on MongoDB.
const TTL_INDEX = 'history_retention';
// MongoDB's (and FerretDB's) code for a command stopped by maxTimeMS.
const MAX_TIME_EXPIRED = 50;
// Buckets per round trip of a page read: a newest-100 page at 10 points a bucket needs about 11.
const READ_BATCH = 16;

/**
 * History in the database, in buckets (models/history-bucket-model.ts): MongoDB reads them by index; the FerretDB
 * profile puts a tier in front (ferretdb/recent-history.ts). Reads merge overlapping buckets back into per-point
 * records, newest first.
 */
export class HistoryRepository implements HistoryStore {
  private readonly collection: Collection<HistoryBucketDocument>;

  /** `queryTimeoutMs` bounds a page read on the server (`maxTimeMS`); on FerretDB every query reads the whole history. */
  constructor(
    model: HistoryBucketModel,
    /** HISTORY_QUERY_TIMEOUT_MS */
    private readonly queryTimeoutMs: number,
  ) {
    this.collection = nativeCollection(model);
  }

  /** Several jobs' buckets in one unordered insert; buckets already there (a job run again) stay as they are. */
  insertJobs(jobs: readonly HistoryJob[], processedAt: Date): Promise<number> {
    const buckets = jobs.flatMap((job) => bucketsOf(job, processedAt));
    return insertNew(this.collection, buckets, (bucket) => bucket.n);
  }

  /**
   * The newest `limit` records at or below the page's upper bound. Buckets come newest `max` first; a bucket whose
   * `max` is older than the page's last record so far cannot change the page, so reading stops there. Buckets of
   * one key overlap in time (late points, several jobs), which this merge allows for; a bucket spans less than one
   * window, so only buckets with `max` below the bound's window end can hold points at or below it.
   */
  async page(query: HistoryQuery): Promise<HistoryPage> {
    const upper = Math.min(query.to ?? Infinity, query.after?.t ?? Infinity);
    const lower = query.from ?? -Infinity;
    if (upper < lower) return { items: [], next: null };
    const filter: Filter<HistoryBucketDocument> = {};
    if (query.key !== undefined) filter.key = query.key;
    if (query.batchId !== undefined) filter.batchId = query.batchId;
    const max: { $gte?: Date; $lt?: Date } = {};
    if (lower > -Infinity) max.$gte = new Date(lower);
    if (upper < Infinity) {
      max.$lt = new Date((Math.floor(upper / HISTORY_BUCKET_SPAN_MS) + 1) * HISTORY_BUCKET_SPAN_MS);
      filter.min = { $lte: new Date(upper) };
    }
    if (max.$gte || max.$lt) filter.max = max;

    const want = query.limit + 1;
    let pool: Candidate[] = [];
    // The timestamp of the want-th newest candidate once the pool holds that many: older buckets cannot matter.
    let floor = -Infinity;
    let sorted = true;
    try {
      const cursor = this.collection.find(filter, { maxTimeMS: this.queryTimeoutMs }).sort({ max: -1 }).batchSize(READ_BATCH);
      for await (const bucket of cursor) {
        if (!sorted && pool.length >= want) {
          pool.sort(newestFirst);
          pool.length = want;
          floor = (pool[want - 1] as Candidate).t;
          sorted = true;
        }
        if (bucket.max.getTime() < floor) break;
        for (let j = 0; j < bucket.n; j++) {
          const t = (bucket.t[j] as Date).getTime();
          if (t > upper || t < lower || t < floor) continue;
          const id = historyId(bucket.batchId, bucket.i[j] as number);
          if (query.after && t === query.after.t && !(id < query.after.id)) continue;
          pool.push({ t, id, bucket, j });
          sorted = false;
        }
      }
    } catch (error) {
      if (error instanceof MongoServerError && error.code === MAX_TIME_EXPIRED) {
        throw new AppError(
          503,
          'QUERY_TIMEOUT',
          `The history query did not finish within ${this.queryTimeoutMs / 1000} s. Narrow it (key with from/to, or batchId); on FerretDB every history query reads all records.`,
        );
      }
      throw error;
    }
    pool.sort(newestFirst);
    pool = pool.slice(0, want);
    const page = pool.slice(0, query.limit);
    const last = page[page.length - 1];
    return {
      items: page.map(toRecord),
      next: pool.length > query.limit && last ? { t: last.t, id: last.id } : null,
    };
  }

  /** Deletes the buckets whose newest point is before `cutoff`; returns how many points went. */
  async deleteOlderThan(cutoff: Date): Promise<number> {
    const filter = { max: { $lt: cutoff } };
    const points = await this.sumPoints(filter);
    if (points > 0) await this.collection.deleteMany(filter);
    return points;
  }

  /**
   * Makes the server expire a bucket `seconds` after its newest point (a TTL index), or keep buckets (`null`: the
   * index is dropped). Idempotent; a changed retention is applied to the existing index.
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
