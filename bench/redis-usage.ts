import Redis from 'ioredis';

// SCAN in pages of this many keys: one run holds at most a few thousand.
const SCAN_COUNT = 1000;

/** Bull's keys (`bull:<queue>:*`) and the service's own (`<queue>:*`: batch status, claims, idempotency, locks). */
const patternsOf = (queueName: string): string[] => [`bull:${queueName}:*`, `${queueName}:*`];

async function keysOf(redis: Redis, queueName: string): Promise<string[]> {
  const keys: string[] = [];
  for (const pattern of patternsOf(queueName)) {
    let cursor = '0';
    do {
      const [next, page] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
      keys.push(...page);
      cursor = next;
    } while (cursor !== '0');
  }
  return keys;
}

export interface RedisUsage {
  /** `used_memory` of the whole server (INFO memory): other users of the same Redis count too. */
  usedMemoryBytes: number;
  /** What this run's keys hold (MEMORY USAGE of each). */
  runKeysBytes: number;
  runKeys: number;
}

export async function readRedisUsage(redisUrl: string, queueName: string): Promise<RedisUsage> {
  const redis = new Redis(redisUrl);
  try {
    const info = await redis.info('memory');
    const usedMemoryBytes = Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? Number.NaN);
    const keys = await keysOf(redis, queueName);
    let runKeysBytes = 0;
    for (const key of keys) {
      const bytes = await redis.memory('USAGE', key);
      runKeysBytes += bytes ?? 0;
    }
    return { usedMemoryBytes, runKeysBytes, runKeys: keys.length };
  } finally {
    redis.disconnect();
  }
}

/** Deletes everything a run left in Redis, so the next run's memory figures start clean. */
export async function deleteRunKeys(redisUrl: string, queueName: string): Promise<void> {
  const redis = new Redis(redisUrl);
  try {
    const keys = await keysOf(redis, queueName);
    for (let start = 0; start < keys.length; start += SCAN_COUNT) await redis.unlink(...keys.slice(start, start + SCAN_COUNT));
  } finally {
    redis.disconnect();
  }
}

/** The server's version, for the report. */
export async function redisVersion(redisUrl: string): Promise<string> {
  const redis = new Redis(redisUrl);
  try {
    return /^redis_version:(\S+)/m.exec(await redis.info('server'))?.[1] ?? 'unknown';
  } finally {
    redis.disconnect();
  }
}
