import { Schema, type Connection, type Model } from 'mongoose';

/**
 * One document per key. `g` holds the exactly-once guard: `g.<slot>.<lane>`
 * is the highest job sequence of that worker lane applied to this key (see
 * services/lane-pool.ts). `last` is `{t, v}` so that `$max` picks the value at
 * the greatest timestamp, ties to the greater value, in any order.
 */
export interface AggregateDocument {
  _id: string;
  // Absent between a key's creation and its first applied job (see AggregateRepository.ensureExists).
  count?: number;
  sum?: number;
  min?: number;
  max?: number;
  first?: Date;
  lastTs?: Date;
  last?: { t: Date; v: number };
  createdAt: Date;
  updatedAt?: Date;
  g?: Record<string, Record<string, number>>;
}

const aggregateSchema = new Schema<AggregateDocument>(
  {
    _id: { type: String, required: true },
    count: { type: Number, required: true },
    sum: { type: Number, required: true },
    min: Number,
    max: Number,
    first: Date,
    lastTs: Date,
    last: { _id: false, t: Date, v: Number },
    createdAt: Date,
    updatedAt: Date,
    g: { type: Schema.Types.Mixed },
  },
  { collection: 'aggregates', versionKey: false, autoIndex: false, minimize: false },
);

export type AggregateModel = Model<AggregateDocument>;

export function createAggregateModel(connection: Connection): AggregateModel {
  return connection.model<AggregateDocument>('Aggregate', aggregateSchema);
}
