import type Redis from 'ioredis';
import type { Db } from 'mongodb';
import type { Connection } from 'mongoose';
import type { Logger } from 'pino';
import type { Config } from '../config/config';
import { createModels, ensureIndexes, type Models } from '../models';
import { KeyLocks } from '../queue/key-locks';
import type { AggregateStore } from '../repositories/aggregate-store';
import { HistoryRepository, type HistoryStore } from '../repositories/history-repository';
import { RecentHistory, TieredHistory } from '../repositories/recent-history';
import { KeyAggregateRepository } from '../repositories/key-aggregate-repository';
import { ProcessedRecordRepository } from '../repositories/processed-record-repository';
import { PackedAggregateRepository } from '../repositories/packed-aggregate-repository';
import { resolveShardLayout } from '../repositories/shard-layout';
import { BucketSeriesRepository } from '../repositories/bucket-series-repository';
import { RedisSeries } from '../repositories/redis-series';
import type { SeriesStore } from '../repositories/series-store';
import type { SeriesRetention } from '../domain/series';
import { GUARD_RETENTION } from '../exactly-once/guard';
import { checkStoredLayout, chooseProfile, detectServer, type StorageProfile, type StoredLayouts } from './profile';
import { createHistoryRetention, type HistoryRetention } from './retention';
import { checkRollups } from './rollup-rebuild';

export { PROFILES, type StorageProfile } from './profile';

export interface Repositories {
  profile: StorageProfile;
  models: Models;
  aggregates: AggregateStore;
  history: HistoryStore;
  processed: ProcessedRecordRepository;
  series: SeriesStore;
  /** HISTORY_RETENTION; a worker starts it. */
  retention: HistoryRetention;
}

export interface StorageDeps {
  connection: Connection;
  config: Config;
  /** For the FerretDB profile's locks. */
  redis: Redis;
  logger: Logger;
}

/**
 * The one place the storage is built: detects the server, picks its profile, creates the indexes the profile
 * wants and the documents that must exist before the first write. Every process, test, the fault suite and the
 * bench get their repositories here.
 */
export async function createRepositories({ connection, config, redis, logger }: StorageDeps): Promise<Repositories> {
  const db = connection.db;
  if (!db) throw new Error('the MongoDB connection is not open');
  const profile = chooseProfile(config.STORAGE_PROFILE, await detectServer(connection));
  checkStoredLayout(profile, await storedLayouts(db), config.STORAGE_PROFILE);
  const models = createModels(connection);
  if (profile.indexes) await ensureIndexes(models);
  const aggregates = await createAggregateStore(profile, models, db, config, redis, logger);
  await aggregates.prepare(new Date());
  logger.debug({ profile: profile.name }, 'storage profile');
  const history = createHistoryStore(
    profile,
    new HistoryRepository(models.dataPoint, config.HISTORY_QUERY_TIMEOUT_MS),
    aggregates,
    config,
    redis,
  );
  const series = createSeriesStore(profile, db, config, redis);
  await series.prepare();
  await checkRollups(series, models, logger);
  return {
    profile,
    models,
    aggregates,
    history,
    processed: new ProcessedRecordRepository(models.processedRecord),
    series,
    retention: createHistoryRetention(profile, history, config.HISTORY_RETENTION, logger),
  };
}

async function createAggregateStore(
  profile: StorageProfile,
  models: Models,
  db: Db,
  config: Config,
  redis: Redis,
  logger: Logger,
): Promise<AggregateStore> {
  if (profile.aggregates === 'per-key') return new KeyAggregateRepository(models.aggregate, GUARD_RETENTION, profile.writeBatch);
  return createShardStore({ db, config, redis, logger });
}

/** The FerretDB profile's statistics: packed shards, as many as the database was created with (AGGREGATE_SHARDS). */
export async function createShardStore({
  db,
  config,
  redis,
  logger,
}: {
  db: Db;
  config: Config;
  redis: Redis;
  logger: Logger;
}): Promise<AggregateStore> {
  // A dead worker's locks free themselves as soon as its jobs do (JOB_LOCK_MS).
  const settings = { ttlMs: config.JOB_LOCK_MS, waitMs: config.KEY_LOCK_WAIT_MS };
  const locks = new KeyLocks(redis, config.QUEUE_NAME, settings, (lost) =>
    logger.error({ lost }, 'key locks were lost while writing aggregates'),
  );
  const layout = await resolveShardLayout(db, config.AGGREGATE_SHARDS, new Date());
  return new PackedAggregateRepository(db, locks, redis, config.QUEUE_NAME, GUARD_RETENTION, layout.shards, config.STATS_CACHE_KEYS);
}

/** SERIES_RETENTION_* as the rollups read it. */
export function seriesRetention(config: Config): SeriesRetention {
  return { '1m': config.SERIES_RETENTION_1M, '1h': config.SERIES_RETENTION_1H, '1d': config.SERIES_RETENTION_1D };
}

function createSeriesStore(profile: StorageProfile, db: Db, config: Config, redis: Redis): SeriesStore {
  if (profile.series === 'redis') return new RedisSeries(redis, config.QUEUE_NAME, seriesRetention(config));
  // On FerretDB with the MongoDB profile forced (tests), no TTL index: its buckets are not expired.
  return new BucketSeriesRepository(db, seriesRetention(config), GUARD_RETENTION, profile.writeBatch, {
    indexes: profile.indexes,
    expiry: profile.historyExpiry === 'ttl-index',
  });
}

function createHistoryStore(
  profile: StorageProfile,
  store: HistoryRepository,
  aggregates: AggregateStore,
  config: Config,
  redis: Redis,
): HistoryStore {
  if (profile.recentHistory === 'index' || config.HISTORY_RECENT_PER_KEY === 0) return store;
  const recent = new RecentHistory(redis, config.QUEUE_NAME, config.HISTORY_RECENT_PER_KEY);
  return new TieredHistory(store, recent, async (key) => (await aggregates.findByKey(key))?.count ?? null, config.HISTORY_RETENTION);
}

async function storedLayouts(db: Db): Promise<StoredLayouts> {
  const [shards, perKey] = await Promise.all([
    db.collection<{ _id: string }>('statshards').findOne({ _id: 'layout' }, { projection: { _id: 1 } }),
    db.collection('stats').findOne({}, { projection: { _id: 1 } }),
  ]);
  return { shards: shards !== null, perKey: perKey !== null };
}
