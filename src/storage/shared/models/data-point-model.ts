import { Schema, type Connection, type Model } from 'mongoose';

/** One history record per accepted point; `_id` is `<batchId>:<index>`, so a re-insert is a no-op. */
export interface DataPointDocument {
  _id: string;
  key: string;
  value: number;
  timestamp: Date;
  type?: string;
  meta?: Record<string, unknown>;
  batchId: string;
  receivedAt: Date;
  processedAt: Date;
}

const dataPointSchema = new Schema<DataPointDocument>(
  {
    _id: { type: String, required: true },
    key: { type: String, required: true },
    value: { type: Number, required: true },
    timestamp: { type: Date, required: true },
    type: String,
    meta: { type: Schema.Types.Mixed },
    batchId: { type: String, required: true },
    receivedAt: { type: Date, required: true },
    processedAt: { type: Date, required: true },
  },
  { collection: 'datapoints', versionKey: false, autoIndex: false },
);
// Newest first per key (the common read), per batch, and across all keys.
dataPointSchema.index({ key: 1, timestamp: -1, _id: -1 });
dataPointSchema.index({ batchId: 1 });
dataPointSchema.index({ timestamp: -1, _id: -1 });

export type DataPointModel = Model<DataPointDocument>;

export function createDataPointModel(connection: Connection): DataPointModel {
  return connection.model<DataPointDocument>('DataPoint', dataPointSchema);
}
