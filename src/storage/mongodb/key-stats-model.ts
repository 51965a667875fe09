import { Schema, type Connection, type Model } from 'mongoose';
import type { KeyStats } from '../shared/stats-view';

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

export type KeyStatsModel = Model<KeyStatsDocument>;

export function createKeyStatsModel(connection: Connection): KeyStatsModel {
  return connection.model<KeyStatsDocument>('KeyStats', keyStatsSchema);
}
