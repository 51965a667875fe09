import { Schema, type Connection, type Model } from 'mongoose';

/**
 * One history bucket as stored (../history-buckets.ts has what a bucket is): `_id` is its id, timestamps are dates.
 * A job run again, in any group, writes the same `_id`s, so a re-insert is a no-op.
 */
export interface HistoryBucketDocument {
  _id: string;
  key: string;
  batchId: string;
  /** The oldest and newest timestamp of its points. */
  min: Date;
  max: Date;
  /** Its number of points. */
  n: number;
  /** The points as parallel arrays (index j of each is one point): each point's index in its batch, timestamp, value. */
  i?: number[];
  t?: Date[];
  v?: number[];
  /** Types and meta, present only when a point has one (null for the others). */
  y?: (string | null)[];
  m?: (Record<string, unknown> | null)[];
  /**
   * The same columns packed in one string with the two times below, instead of the arrays and those fields (the
   * FerretDB profile: StorageProfile.historyColumns).
   */
  p?: string;
  /** When its batch was received and when it was stored: fields beside the arrays, inside `p` when packed. */
  receivedAt?: Date;
  processedAt?: Date;
}

const historyBucketSchema = new Schema<HistoryBucketDocument>(
  {
    _id: { type: String, required: true },
    key: { type: String, required: true },
    batchId: { type: String, required: true },
    min: { type: Date, required: true },
    max: { type: Date, required: true },
    n: { type: Number, required: true },
    i: { type: [Number], default: undefined },
    t: { type: [Date], default: undefined },
    v: { type: [Number], default: undefined },
    y: { type: [Schema.Types.Mixed], default: undefined },
    m: { type: [Schema.Types.Mixed], default: undefined },
    p: String,
    receivedAt: Date,
    processedAt: Date,
  },
  { collection: 'history', versionKey: false, autoIndex: false },
);
// Newest buckets first per key (the common read), per batch, and across all keys; `min` lets a page past a cursor
// skip, inside the index, the buckets of the cursor's window that hold only newer points.
historyBucketSchema.index({ key: 1, max: -1, min: -1 });
historyBucketSchema.index({ batchId: 1, max: -1, min: -1 });
historyBucketSchema.index({ max: -1, min: -1 });

export type HistoryBucketModel = Model<HistoryBucketDocument>;

export function createHistoryBucketModel(connection: Connection): HistoryBucketModel {
  return connection.model<HistoryBucketDocument>('HistoryBucket', historyBucketSchema);
}
