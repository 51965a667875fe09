import type { Collection, Db, Filter } from 'mongodb';
import { HISTORY_BUCKET_SPAN_MS, historyId } from '../../src/storage/shared/history-buckets';
import { fromDocument } from '../../src/storage/shared/history-repository';
import type { HistoryBucketDocument } from '../../src/storage/shared/models/history-bucket-model';

/*
 * History as the database stores it: buckets (src/storage/shared/models/history-bucket-model.ts), each holding the
 * points of one key that one job carries within one aligned minute. Every bucket has one key and one batch, so a
 * filter on `key` or `batchId` (or `key: {$in: [...]}`) selects whole buckets, and with them exactly the points of
 * those keys or batches.
 */

/** The collection of history buckets. */
export function historyBuckets(db: Db): Collection<HistoryBucketDocument> {
  return db.collection<HistoryBucketDocument>('history');
}

/** How many points the history buckets matching `filter` hold (the sum of their `n`). */
export async function storedPoints(db: Db, filter: Filter<HistoryBucketDocument> = {}): Promise<number> {
  let points = 0;
  for await (const bucket of historyBuckets(db).find(filter, { projection: { n: 1 } })) points += bucket.n;
  return points;
}

/** One stored point, expanded from its bucket; `_id` is its record id, `<batchId>:<index in its batch>`. */
export interface StoredRecord {
  _id: string;
  key: string;
  batchId: string;
  value: number;
  timestamp: Date;
  type: string | null;
  meta: Record<string, unknown> | null;
}

/** Every point of the history buckets matching `filter`, one record each, in the order the buckets hold them. */
export async function storedRecords(db: Db, filter: Filter<HistoryBucketDocument> = {}): Promise<StoredRecord[]> {
  const records: StoredRecord[] = [];
  for await (const bucket of historyBuckets(db).find(filter)) records.push(...recordsOf(bucket));
  return records;
}

/** A bucket's points as records, whichever way its columns are stored; throws when they disagree with `n`. */
export function recordsOf(doc: HistoryBucketDocument): StoredRecord[] {
  const bucket = fromDocument(doc);
  for (const field of ['i', 't', 'v', 'y', 'm'] as const) {
    const values = bucket[field];
    if (values !== undefined && values.length !== bucket.n) {
      throw new Error(`history bucket ${bucket.id} holds ${bucket.n} points but ${values.length} entries in ${field}`);
    }
  }
  return bucket.i.map((index, j) => ({
    _id: historyId(bucket.batchId, index),
    key: bucket.key,
    batchId: bucket.batchId,
    value: bucket.v[j] as number,
    timestamp: new Date(bucket.t[j] as number),
    type: bucket.y?.[j] ?? null,
    meta: bucket.m?.[j] ?? null,
  }));
}

/**
 * A bucket as a job stores it, for seeding history: `points` of one key within one aligned minute, named by its
 * first point.
 */
export function historyBucket(
  batchId: string,
  key: string,
  points: readonly { i: number; value: number; ts: number }[],
  processedAt: Date,
): HistoryBucketDocument {
  const first = points[0];
  if (!first) throw new Error('a bucket holds at least one point');
  const times = points.map((point) => point.ts);
  if (new Set(times.map((ts) => Math.floor(ts / HISTORY_BUCKET_SPAN_MS))).size > 1)
    throw new Error('a bucket holds points of one aligned minute');
  return {
    _id: historyId(batchId, first.i),
    key,
    batchId,
    min: new Date(Math.min(...times)),
    max: new Date(Math.max(...times)),
    n: points.length,
    i: points.map((point) => point.i),
    t: times.map((ts) => new Date(ts)),
    v: points.map((point) => point.value),
    receivedAt: processedAt,
    processedAt,
  };
}
