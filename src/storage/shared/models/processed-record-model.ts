import { Schema, type Connection, type Model } from 'mongoose';
import type { ProcessedRecord } from '../../contract';

/** The document of one processed record (see the contract). */
export type ProcessedRecordDocument = ProcessedRecord;

const processedRecordSchema = new Schema<ProcessedRecordDocument>(
  {
    _id: { type: String, required: true },
    batchId: { type: String, required: true },
    chunk: { type: Number, required: true },
    points: { type: Number, required: true },
    keys: { type: Number, required: true },
    guard: { type: String, required: true },
    attempt: { type: Number, required: true },
    durationMs: { type: Number, required: true },
    processedAt: { type: Date, required: true },
  },
  { collection: 'processedrecords', versionKey: false, autoIndex: false },
);
processedRecordSchema.index({ batchId: 1 });

export type ProcessedRecordModel = Model<ProcessedRecordDocument>;

export function createProcessedRecordModel(connection: Connection): ProcessedRecordModel {
  return connection.model<ProcessedRecordDocument>('ProcessedRecord', processedRecordSchema);
}
