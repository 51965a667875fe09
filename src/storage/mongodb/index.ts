/*
 * The MongoDB profile (production): every store in the database, each write a guarded upsert served by `_id`.
 *
 *   key-aggregate-repository.ts   statistics, one document per key with its own guard: no lock, no shared document
 *   key-stats-model.ts            that document's schema (`stats`)
 *   bucket-series-repository.ts   rollups, one document per key, step and bucket; MongoDB expires them (TTL index)
 *   guarded-upserts.ts            how both tell "applied before" from "created meanwhile" on a duplicate key
 *
 * History and processed records are shared with the FerretDB profile (../shared/), read through MongoDB's indexes.
 */
import type { Connection } from 'mongoose';
import { GUARD_RETENTION } from '../../exactly-once/guard';
import type { SeriesRetention } from '../../domain/series';
import type { HistoryStore } from '../contract';
import type { ProfileStores, StorageProfile } from '../profile';
import { BucketSeriesRepository } from './bucket-series-repository';
import { KeyAggregateRepository } from './key-aggregate-repository';
import { createKeyStatsModel } from './key-stats-model';

export interface MongodbStoreSettings {
  connection: Connection;
  profile: StorageProfile;
  seriesRetention: SeriesRetention;
  history: HistoryStore;
}

export function createMongodbStores({ connection, profile, seriesRetention, history }: MongodbStoreSettings): ProfileStores {
  const db = connection.db;
  if (!db) throw new Error('the MongoDB connection is not open');
  return {
    aggregates: new KeyAggregateRepository(createKeyStatsModel(connection), GUARD_RETENTION, profile.writeBatch),
    // On FerretDB with the MongoDB profile forced (tests), no TTL index: its buckets are not expired.
    series: new BucketSeriesRepository(db, seriesRetention, GUARD_RETENTION, profile.writeBatch, {
      indexes: profile.indexes,
      expiry: profile.historyExpiry === 'ttl-index',
    }),
    history,
  };
}
