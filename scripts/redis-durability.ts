import Redis from 'ioredis';

/**
 * Why a Redis would lose accepted points on a restart, or undefined when it keeps them: the queue lives in Redis, so
 * the no-loss guarantee needs an append-only file (docker-compose.yml and `npm run stack`'s own Redis have one).
 */
export async function redisDurabilityWarning(url: string): Promise<string | undefined> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false });
  try {
    await redis.connect();
    const reply = (await redis.config('GET', 'appendonly')) as string[];
    if (reply[1] === 'yes') return undefined;
    return (
      `the Redis at ${url.replace(/\/\/[^@/]*@/, '//***@')} keeps no append-only file (appendonly ${reply[1] ?? 'unknown'}): ` +
      'queued points are lost if it restarts. Fine for trying the service; for data you keep, run Redis with ' +
      '--appendonly yes (as docker-compose.yml does).'
    );
  } catch {
    // CONFIG may be disabled (managed Redis): nothing to say then.
    return undefined;
  } finally {
    redis.disconnect();
  }
}
