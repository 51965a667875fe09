import Redis, { type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';

export type RedisRole = 'api' | 'worker' | 'subscriber' | 'blocking';

/**
 * Builds a Redis client for one role. The API's command client fails fast
 * (one retry, then an error) so ingest can answer 503 at once while Redis is
 * down; Bull's subscriber and blocking clients must never give up
 * (`maxRetriesPerRequest: null`, as Bull requires), and neither does the worker.
 */
export function createRedis(url: string, role: RedisRole, logger: Logger): Redis {
  const options: RedisOptions = {
    connectionName: `realtime-${role}`,
    // Reconnect quickly at first, then every 2 s: a restarted Redis is back within a few seconds.
    retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
    maxRetriesPerRequest: role === 'api' ? 1 : null,
    enableReadyCheck: role !== 'subscriber' && role !== 'blocking',
  };
  const client = new Redis(url, options);
  let lastError = '';
  client.on('error', (error: Error) => {
    // One line per distinct failure, not one per reconnect attempt.
    if (error.message !== lastError) logger.warn({ role, err: error.message }, 'redis connection error');
    lastError = error.message;
  });
  client.on('ready', () => {
    if (lastError) logger.info({ role }, 'redis connection restored');
    lastError = '';
  });
  return client;
}

export function isRedisReady(client: Redis): boolean {
  return client.status === 'ready';
}
