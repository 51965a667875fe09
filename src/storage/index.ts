/*
 * The storage's composition root. The contract (contract.ts) is all the rest of the service sees; the layouts are
 * profile folders that only this file picks from:
 *
 *   mongodb/    the MongoDB profile (production): per-key statistics and bucket rollups, guarded upserts
 *   ferretdb/   the FerretDB profile (default stack): packed shards under locks, rollups and recent history in Redis
 *   shared/     what both use: history, processed records, the driver's errors, the shared models
 */
import type Redis from 'ioredis';
import type { Db } from 'mongodb';
import type { Connection } from 'mongoose';
import type { Logger } from 'pino';
import type { Config } from '../config/config';
import type { SeriesRetention } from '../domain/series';
import type { AggregateStore, HistoryStore, ProcessedRecordStore, SeriesStore } from './contract';
import { createFerretdbStores } from './ferretdb';
import { createMongodbStores } from './mongodb';
import { checkStoredLayout, chooseProfile, detectServer, type StorageProfile, type StoredLayouts } from './profile';
import { createHistoryRetention, type HistoryRetention } from './retention';
import { checkRollups } from './rollup-rebuild';
import { HistoryRepository } from './shared/history-repository';
import { createModels, ensureIndexes, type Models } from './shared/models';
import { ProcessedRecordRepository } from './shared/processed-record-repository';

export { PROFILES, type StorageProfile } from './profile';

export interface Repositories {
  profile: StorageProfile;
  models: Models;
  aggregates: AggregateStore;
  history: HistoryStore;
  processed: ProcessedRecordStore;
  series: SeriesStore;
  /** HISTORY_RETENTION; a worker starts it. */
  retention: HistoryRetention;
}

export interface StorageDeps {
  connection: Connection;
  config: Config;
  /** For the FerretDB profile's locks, rollups and recent history. */
  redis: Redis;
  logger: Logger;
}

/**
 * The one place the storage is built: detects the server, picks its profile, creates the indexes it wants and the
 * documents that must exist before the first write. Every process, test, the fault suite and the bench get their
 * repositories here.
 */
export async function createRepositories({ connection, config, redis, logger }: StorageDeps): Promise<Repositories> {
  const db = connection.db;
  if (!db) throw new Error('the MongoDB connection is not open');
  const profile = chooseProfile(config.STORAGE_PROFILE, await detectServer(connection));
  checkStoredLayout(profile, await storedLayouts(db), config.STORAGE_PROFILE);
  const models = createModels(connection);
  if (profile.indexes) await ensureIndexes(models);
  const history = new HistoryRepository(models.history, config.HISTORY_QUERY_TIMEOUT_MS, profile.historyColumns, config.HISTORY_RETENTION);
  const settings = { connection, db, config, redis, logger, profile, history, seriesRetention: seriesRetention(config) };
  const stores = profile.name === 'mongodb' ? createMongodbStores(settings) : await createFerretdbStores(settings);
  await stores.aggregates.prepare(new Date());
  logger.debug({ profile: profile.name }, 'storage profile');
  await stores.series.prepare();
  await checkRollups(stores.series, models, logger);
  return {
    profile,
    models,
    ...stores,
    processed: new ProcessedRecordRepository(models.processedRecord),
    retention: createHistoryRetention(profile, stores.history, config.HISTORY_RETENTION, logger),
  };
}

/** SERIES_RETENTION_* as the rollups read it. */
export function seriesRetention(config: Config): SeriesRetention {
  return { '1m': config.SERIES_RETENTION_1M, '1h': config.SERIES_RETENTION_1H, '1d': config.SERIES_RETENTION_1D };
}

async function storedLayouts(db: Db): Promise<StoredLayouts> {
  const [shards, perKey] = await Promise.all([
    db.collection<{ _id: string }>('statshards').findOne({ _id: 'layout' }, { projection: { _id: 1 } }),
    db.collection('stats').findOne({}, { projection: { _id: 1 } }),
  ]);
  return { shards: shards !== null, perKey: perKey !== null };
}
