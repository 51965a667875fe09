import { Schema, type Connection, type Model } from 'mongoose';

/**
 * One document per job whose writes are all durable: the audit trail of the
 * worker, and the fast "already done" check when Bull runs a job again.
 */
export interface ProcessedRecordDocument {
  _id: string;
  batchId: string;
  chunk: number;
  points: number;
  keys: number;
  guard: string;
  attempt: number;
  durationMs: number;
  processedAt: Date;
}

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
