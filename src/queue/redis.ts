import Redis, { type ChainableCommander, type RedisOptions } from 'ioredis';
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

/**
 * Runs a pipeline or transaction and returns each command's result; throws the first command's error, or when the
 * transaction was discarded (ioredis answers null), instead of handing back [error, result] pairs to check.
 */
export async function execOrThrow(commands: ChainableCommander): Promise<unknown[]> {
  const results = await commands.exec();
  if (!results) throw new Error('the transaction was discarded');
  const failed = results.find(([error]) => error !== null);
  if (failed?.[0]) throw failed[0];
  return results.map(([, result]) => result);
}

// ioredis 5 rejects with plain Errors (no class, no code) when a connection is gone; their exact wording is pinned
// by test/integration/redis-errors.test.ts, which fails when an upgrade changes it.
const CONNECTION_GONE_MESSAGES = new Set(['Connection is closed.', "Stream isn't writeable and enableOfflineQueue options is false"]);

/**
 * Whether a command failed because Redis is out of reach (retryable: the API answers 503), not because of the
 * command: a dropped connection (AbortError), the per-request retries used up, a refused connection, or a closed one.
 */
export function isRedisUnavailable(error: Error): boolean {
  if (error.name === 'AbortError' || error.name === 'MaxRetriesPerRequestError') return true;
  return (error as NodeJS.ErrnoException).code === 'ECONNREFUSED' || CONNECTION_GONE_MESSAGES.has(error.message);
}

export function isRedisReady(client: Redis): boolean {
  return client.status === 'ready';
}
