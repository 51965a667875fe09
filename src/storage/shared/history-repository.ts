import { MongoServerError, type Collection, type Filter } from 'mongodb';
import type { DataPointDocument, DataPointModel } from './models/data-point-model';
import { AppError } from '../../domain/errors';
import type { HistoryJob, HistoryPage, HistoryQuery, HistoryRecord, HistoryStore } from '../contract';
import { nativeCollection } from './models';
import { insertNew } from './mongo-errors';

export function historyId(batchId: string, index: number): string {
  return `${batchId}:${index}`;
}

function toRecord(doc: DataPointDocument): HistoryRecord {
  return {
    key: doc.key,
    value: doc.value,
    timestamp: doc.timestamp.toISOString(),
    type: doc.type ?? null,
    meta: doc.meta ?? null,
    batchId: doc.batchId,
    receivedAt: doc.receivedAt.toISOString(),
    processedAt: doc.processedAt.toISOString(),
  };
}

const NAMESPACE_NOT_FOUND = 26;
// The TTL index of HISTORY_RETENTION on MongoDB.
const TTL_INDEX = 'history_retention';
// MongoDB's (and FerretDB's) code for a command stopped by maxTimeMS.
const MAX_TIME_EXPIRED = 50;

/** History in the database: MongoDB reads it by index; the FerretDB profile puts a tier in front (ferretdb/recent-history.ts). */
export class HistoryRepository implements HistoryStore {
  private readonly collection: Collection<DataPointDocument>;

  /** `queryTimeoutMs` bounds a page read on the server (`maxTimeMS`); on FerretDB every query reads the whole history. */
  constructor(
    model: DataPointModel,
    /** HISTORY_QUERY_TIMEOUT_MS */
    private readonly queryTimeoutMs: number,
  ) {
    this.collection = nativeCollection(model);
  }

  /** One record per point of several jobs, in one unordered insert; records already there (a job run again) stay as they are. */
  insertJobs(jobs: readonly HistoryJob[], processedAt: Date): Promise<number> {
    const documents = jobs.flatMap(({ batchId, points, receivedAt }) =>
      points.map((point) => {
        const doc: DataPointDocument = {
          _id: historyId(batchId, point.i),
          key: point.key,
          value: point.value,
          timestamp: new Date(point.ts),
          batchId,
          receivedAt,
          processedAt,
        };
        if (point.type !== undefined) doc.type = point.type;
        if (point.meta !== undefined) doc.meta = point.meta;
        return doc;
      }),
    );
    return insertNew(this.collection, documents);
  }

  async page(query: HistoryQuery): Promise<HistoryPage> {
    const filter: Filter<DataPointDocument> = {};
    if (query.key !== undefined) filter.key = query.key;
    if (query.batchId !== undefined) filter.batchId = query.batchId;
    if (query.from !== undefined || query.to !== undefined) {
      filter.timestamp = {};
      if (query.from !== undefined) filter.timestamp.$gte = new Date(query.from);
      if (query.to !== undefined) filter.timestamp.$lte = new Date(query.to);
    }
    if (query.after) {
      const t = new Date(query.after.t);
      filter.$or = [{ timestamp: { $lt: t } }, { timestamp: t, _id: { $lt: query.after.id } }];
    }
    let docs: DataPointDocument[];
    try {
      docs = await this.collection
        .find(filter, { maxTimeMS: this.queryTimeoutMs })
        .sort({ timestamp: -1, _id: -1 })
        .limit(query.limit + 1)
        .toArray();
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
    const page = docs.slice(0, query.limit);
    const last = page[page.length - 1];
    return {
      items: page.map(toRecord),
      next: docs.length > query.limit && last ? { t: last.timestamp.getTime(), id: last._id } : null,
    };
  }

  /** Deletes the records whose timestamp is before `cutoff`; returns how many. */
  async deleteOlderThan(cutoff: Date): Promise<number> {
    return (await this.collection.deleteMany({ timestamp: { $lt: cutoff } })).deletedCount;
  }

  /**
   * Makes the server expire records `seconds` after their timestamp (a TTL index), or keep them (`null`: the index
   * is dropped). Idempotent; a changed retention is applied to the existing index.
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
      await this.collection.createIndex({ timestamp: 1 }, { name: TTL_INDEX, expireAfterSeconds: seconds });
    } else if (existing.expireAfterSeconds !== seconds) {
      await this.collection.db.command({
        collMod: this.collection.collectionName,
        index: { name: TTL_INDEX, expireAfterSeconds: seconds },
      });
    }
  }

  async countByBatch(batchId: string): Promise<number> {
    return this.collection.countDocuments({ batchId });
  }
}
