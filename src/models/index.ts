import type { Collection, Document } from 'mongodb';
import type { Connection, Model } from 'mongoose';
import { createAggregateModel, type AggregateModel } from './aggregate-model';
import { createDataPointModel, type DataPointModel } from './data-point-model';
import { createProcessedRecordModel, type ProcessedRecordModel } from './processed-record-model';

export interface Models {
  aggregate: AggregateModel;
  dataPoint: DataPointModel;
  processedRecord: ProcessedRecordModel;
}

export function createModels(connection: Connection): Models {
  return {
    aggregate: createAggregateModel(connection),
    dataPoint: createDataPointModel(connection),
    processedRecord: createProcessedRecordModel(connection),
  };
}

/** Whether the server is FerretDB (its buildInfo says so), not MongoDB. */
export async function isFerretDb(connection: Connection): Promise<boolean> {
  const info = await connection.db?.admin().command({ buildInfo: 1 });
  return typeof info?.ferretdbVersion === 'string';
}

/**
 * Creates the secondary indexes (idempotent). Called by both composition
 * roots at start-up. Not on FerretDB: v1's SQLite backend uses no index but
 * `_id` for any query or sort, and three indexes on the history doubled the
 * cost of inserting it (measured: 65 vs 125 µs per record).
 */
export async function ensureIndexes(models: Models, connection: Connection): Promise<void> {
  if (await isFerretDb(connection)) return;
  await Promise.all([models.dataPoint.createIndexes(), models.processedRecord.createIndexes()]);
}

/**
 * The driver's typed collection behind a model. The hot paths (bulk writes,
 * exact-`_id` reads) use the driver directly: no document hydration, and the
 * update operators are sent exactly as written.
 */
export function nativeCollection<T extends Document>(model: Model<T>): Collection<T> {
  return model.collection as unknown as Collection<T>;
}
