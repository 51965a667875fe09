import { Schema, type Connection, type Model } from 'mongoose';

/** One key's statistics inside its shard. `last` is `{t, v}` so that `$max` picks the value at the greatest timestamp, ties to the greater value. */
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
 * The statistics of many keys: key K lives in shard `shardOf(K)`, under
 * `k.<base64url(K)>` (a field name never holds `.` or `$`). `g` is the
 * exactly-once guard of the whole shard: `g.<slot>.<lane>` is the highest
 * job sequence of that worker lane applied to it (see
 * exactly-once/lane-pool.ts). One more document, `_id: "layout"`, records the
 * number of shards the data was written with.
 */
export interface AggregateShardDocument {
  _id: string;
  k?: Record<string, KeyStats>;
  g?: Record<string, Record<string, number>>;
  shards?: number;
  /** On the layout document: each shard in a collection of its own (see shard-aggregate-repository.ts). */
  ownCollections?: boolean;
  createdAt: Date;
}

/**
 * The MongoDB profile's statistics: one document per key (`_id` is the key), with its own exactly-once guard `g`
 * (see exactly-once/lane-pool.ts). No document is shared by all writers and none grows with the number of keys.
 */
export interface KeyStatsDocument extends Partial<KeyStats> {
  _id: string;
  g?: Record<string, Record<string, number>>;
}

/** Every key ever counted, for listing in key order. */
export interface KeyDocument {
  _id: string;
  createdAt: Date;
}

const shardSchema = new Schema<AggregateShardDocument>(
  {
    _id: { type: String, required: true },
    k: { type: Schema.Types.Mixed },
    g: { type: Schema.Types.Mixed },
    shards: Number,
    ownCollections: Boolean,
    createdAt: Date,
  },
  { collection: 'statshards', versionKey: false, autoIndex: false, minimize: false },
);

const keyStatsSchema = new Schema<KeyStatsDocument>(
  { _id: { type: String, required: true }, g: { type: Schema.Types.Mixed } },
  { collection: 'stats', versionKey: false, autoIndex: false, strict: false },
);

const keySchema = new Schema<KeyDocument>(
  { _id: { type: String, required: true }, createdAt: Date },
  { collection: 'statkeys', versionKey: false, autoIndex: false },
);

export interface AggregateModel {
  shards: Model<AggregateShardDocument>;
  keys: Model<KeyDocument>;
  perKey: Model<KeyStatsDocument>;
}

export function createAggregateModel(connection: Connection): AggregateModel {
  return {
    shards: connection.model<AggregateShardDocument>('AggregateShard', shardSchema),
    keys: connection.model<KeyDocument>('StatKey', keySchema),
    perKey: connection.model<KeyStatsDocument>('KeyStats', keyStatsSchema),
  };
}
