/*
 * The FerretDB profile (the default stack's FerretDB 1.24). Each file works around one of its limits (its
 * documentation of v1.24; docs/storage.md has what was measured here):
 *
 *   packed-aggregate-repository.ts  an update whose filter is more than `{_id}` reads every document of its
 *                                   collection, and each update checks every pair of its paths: statistics live in
 *                                   a few shard documents, each packed into one binary field, rewritten whole
 *   shard-layout.ts                 which shard holds a key; the shard count is fixed when the database is created
 *   key-locks.ts                    concurrent updates of one document lose writes: one writer per shard (Redis lock)
 *   redis-series.ts                 a guarded bucket document per key and minute would cost a scan per bucket, and
 *                                   windows a scan per read: rollups live in Redis, guarded by a Lua script
 *   recent-history.ts               any history filter decodes every bucket: a key's newest pages, and a batch's
 *                                   pages while its status lasts, come from a bounded per-key tier in Redis
 *
 * History and processed records themselves are shared with the MongoDB profile (../shared/); FerretDB has no TTL
 * indexes, so history retention is swept by the worker (../retention.ts).
 */
import type Redis from 'ioredis';
import type { Db } from 'mongodb';
import type { Logger } from 'pino';
import type { Config } from '../../config/config';
import type { SeriesRetention } from '../../domain/series';
import { BatchStore } from '../../exactly-once/batch-store';
import { GUARD_RETENTION } from '../../exactly-once/guard';
import type { AggregateStore } from '../contract';
import type { HistoryRepository } from '../shared/history-repository';
import type { ProfileStores } from '../profile';
import { KeyLocks } from './key-locks';
import { PackedAggregateRepository } from './packed-aggregate-repository';
import { RecentHistory, TieredHistory } from './recent-history';
import { RedisSeries } from './redis-series';
import { resolveShardLayout } from './shard-layout';

export interface FerretdbStoreSettings {
  db: Db;
  config: Config;
  /** For the shard locks and versions, the rollups and the recent-history tier. */
  redis: Redis;
  logger: Logger;
  seriesRetention: SeriesRetention;
  /** The database's history, which the recent tier stands in front of. */
  history: HistoryRepository;
}

export async function createFerretdbStores(settings: FerretdbStoreSettings): Promise<ProfileStores> {
  const { config, redis, history } = settings;
  const aggregates = await createShardStore(settings);
  const series = new RedisSeries(redis, config.QUEUE_NAME, settings.seriesRetention);
  if (config.HISTORY_RECENT_PER_KEY === 0) return { aggregates, series, history };
  const recent = new RecentHistory(redis, config.QUEUE_NAME, config.HISTORY_RECENT_PER_KEY);
  const batches = new BatchStore(redis, config.QUEUE_NAME);
  const tiered = new TieredHistory(
    history,
    recent,
    async (key) => (await aggregates.findByKey(key))?.count ?? null,
    async (batchId) => (await batches.get(batchId))?.points ?? null,
    config.HISTORY_RETENTION,
  );
  return { aggregates, series, history: tiered };
}

/** The statistics: packed shards, as many as the database was created with (AGGREGATE_SHARDS). */
export async function createShardStore({
  db,
  config,
  redis,
  logger,
}: Pick<FerretdbStoreSettings, 'db' | 'config' | 'redis' | 'logger'>): Promise<AggregateStore> {
  // A dead worker's locks free themselves as soon as its jobs do (JOB_LOCK_MS).
  const settings = { ttlMs: config.JOB_LOCK_MS, waitMs: config.KEY_LOCK_WAIT_MS };
  const locks = new KeyLocks(redis, config.QUEUE_NAME, settings, (lost) =>
    logger.error({ lost }, 'key locks were lost while writing aggregates'),
  );
  const layout = await resolveShardLayout(db, config.AGGREGATE_SHARDS, new Date());
  return new PackedAggregateRepository(db, locks, redis, config.QUEUE_NAME, GUARD_RETENTION, layout.shards, config.STATS_CACHE_KEYS);
}
