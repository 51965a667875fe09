import type { Collection, Document } from 'mongodb';
import type { Connection, Model } from 'mongoose';
import { createHistoryBucketModel, type HistoryBucketModel } from './history-bucket-model';
import { createProcessedRecordModel, type ProcessedRecordModel } from './processed-record-model';

/** The models both profiles share: history and processed records (each profile builds its own statistics). */
export interface Models {
  history: HistoryBucketModel;
  processedRecord: ProcessedRecordModel;
}

export function createModels(connection: Connection): Models {
  return {
    history: createHistoryBucketModel(connection),
    processedRecord: createProcessedRecordModel(connection),
  };
}

/** Creates the secondary indexes (idempotent); the storage profile decides whether (see ../../profile.ts). */
export async function ensureIndexes(models: Models): Promise<void> {
  await Promise.all([models.history.createIndexes(), models.processedRecord.createIndexes()]);
}

/**
 * The driver's typed collection behind a model. The hot paths (bulk writes,
 * exact-`_id` reads) use the driver directly: no document hydration, and the
 * update operators are sent exactly as written.
 */
export function nativeCollection<T extends Document>(model: Model<T>): Collection<T> {
  return model.collection as unknown as Collection<T>;
}
