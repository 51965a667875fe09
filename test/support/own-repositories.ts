import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import type { Connection } from 'mongoose';
import { connectMongo } from '../../src/storage/connect';
import { type Config, DEFAULT_REDIS_URL, loadConfig } from '../../src/config/config';
import { createLogger } from '../../src/logger';
import { createRepositories, type Repositories } from '../../src/storage';
import { mongoServerUri } from './harness';

/**
 * Repositories built as the processes build them, each call on a database and a queue name of its own, without an
 * API or a worker. Registers the hooks that open the shared Redis client and drop the databases afterwards.
 */
export interface OwnRepositories {
  open(settings?: Record<string, string>): Promise<{ config: Config; repos: Repositories }>;
  /** Another process's repositories on the database and queue of `config` (from `open`). */
  again(config: Config): Promise<Repositories>;
  /** The Redis client the repositories use (open between the hooks). */
  redis(): Redis;
}

export function ownRepositories(name: string): OwnRepositories {
  const logger = createLogger('silent', 'test');
  const opened: Connection[] = [];
  let redis: Redis;

  beforeAll(() => {
    redis = new Redis(process.env.REDIS_URL ?? DEFAULT_REDIS_URL);
  });

  afterAll(async () => {
    for (const connection of opened) {
      await connection.db?.dropDatabase();
      await connection.close();
    }
    await redis.quit();
  });

  const open = async (settings: Record<string, string> = {}): Promise<{ config: Config; repos: Repositories }> => {
    const suffix = randomBytes(4).toString('hex');
    const uri = `${mongoServerUri()}/test_${name}_${suffix}`;
    const config = loadConfig({
      MONGODB_URI: uri,
      QUEUE_NAME: `test-${name}-${suffix}`,
      STORAGE_PROFILE: process.env.STORAGE_PROFILE ?? 'auto',
      ...settings,
    });
    return { config, repos: await again(config) };
  };
  const again = async (config: Config): Promise<Repositories> => {
    const connection = await connectMongo(config.MONGODB_URI, logger, false);
    opened.push(connection);
    return createRepositories({ connection, config, redis, logger });
  };
  return { open, again, redis: () => redis };
}
