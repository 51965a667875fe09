import { Schema, type Connection, type Model } from 'mongoose';

/** One key's statistics. `last` is `{t, v}` so that `$max` picks the value at the greatest timestamp, ties to the greater value. */
export interface KeyStats {
  count: number;
  sum: number;
  min: number;
  max: number;
  first: Date;
  lastTs: Date;
  last: { t: Date; v: number };
  updatedAt: Date;
}

/**
 * The MongoDB profile's statistics: one document per key (`_id` is the key), with its own exactly-once guard `g`
 * (see exactly-once/lane-pool.ts). No document is shared by all writers and none grows with the number of keys.
 */
export interface KeyStatsDocument extends Partial<KeyStats> {
  _id: string;
  g?: Record<string, Record<string, number>>;
}

const keyStatsSchema = new Schema<KeyStatsDocument>(
  { _id: { type: String, required: true }, g: { type: Schema.Types.Mixed } },
  { collection: 'stats', versionKey: false, autoIndex: false, strict: false },
);

export interface AggregateModel {
  perKey: Model<KeyStatsDocument>;
}

export function createAggregateModel(connection: Connection): AggregateModel {
  return { perKey: connection.model<KeyStatsDocument>('KeyStats', keyStatsSchema) };
}
