import Redis from 'ioredis';
import { createLogger } from '../../src/logger';
import { createRedis, isRedisUnavailable } from '../../src/queue/redis';
import { DEFAULT_REDIS_URL } from '../../src/config/config';
import { closedPort, failure } from '../support/failures';

const REDIS_URL = process.env.REDIS_URL ?? DEFAULT_REDIS_URL;

/**
 * A tripwire for how ioredis reports a Redis out of reach (src/queue/redis.ts): an API request that meets one of
 * these must be answered 503, retryable, and one whose command Redis refused must not. Fails when an ioredis upgrade
 * changes the errors.
 */
describe('Redis failures, as ioredis reports them', () => {
  it('when the client was closed, then a command fails as Redis unavailable', async () => {
    const redis = new Redis(REDIS_URL);
    await redis.quit();
    expect(isRedisUnavailable(await failure(redis.get('x')))).toBe(true);
  });

  it('when the offline queue is off and Redis is not connected, then a command fails as Redis unavailable', async () => {
    const redis = new Redis(`redis://127.0.0.1:${await closedPort()}`, { enableOfflineQueue: false, lazyConnect: true });
    try {
      expect(isRedisUnavailable(await failure(redis.get('x')))).toBe(true);
    } finally {
      redis.disconnect();
    }
  });

  it("when the API's client cannot reach Redis, then its command fails as Redis unavailable after its one retry", async () => {
    const redis = createRedis(`redis://127.0.0.1:${await closedPort()}`, 'api', createLogger('silent', 'test'));
    try {
      expect(isRedisUnavailable(await failure(redis.get('x')))).toBe(true);
    } finally {
      redis.disconnect();
    }
  });

  it('when the connection drops with part of a pipeline answered, then the rest fails as Redis unavailable', async () => {
    // Reconnects: the unanswered tail of a pipeline whose head was answered is aborted, not resent.
    const redis = new Redis(REDIS_URL, { retryStrategy: () => 50 });
    const killer = new Redis(REDIS_URL);
    try {
      const id = await redis.client('ID');
      // BLPOP holds its answer until the kill, so PING is answered and BLPOP is in flight when the connection drops.
      const results = redis.pipeline().ping().blpop(`redis-errors-test-${id}`, 5).exec();
      await new Promise((resolve) => setTimeout(resolve, 100));
      await killer.client('KILL', 'ID', String(id));
      const [, [aborted]] = (await results) as [unknown, [Error | null]];
      expect(aborted).toBeInstanceOf(Error);
      expect(isRedisUnavailable(aborted as Error)).toBe(true);
    } finally {
      redis.disconnect();
      await killer.quit();
    }
  });

  it('when Redis refuses a command, then that is not Redis unavailable', async () => {
    const redis = new Redis(REDIS_URL);
    try {
      await redis.set('redis-errors-test-string', 'x', 'EX', 10);
      expect(isRedisUnavailable(await failure(redis.lpush('redis-errors-test-string', 'y')))).toBe(false);
    } finally {
      await redis.quit();
    }
  });
});
