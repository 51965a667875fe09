import { ensureStack } from '../scripts/stack/services';

/**
 * Makes Redis and the MongoDB-compatible server available for the
 * integration tests (reusing running ones), exactly as `npm run stack` does.
 * Test workers inherit the resolved URLs through the environment.
 */
export default async function globalSetup(): Promise<void> {
  const info = await ensureStack({
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    mongoUri: process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27017/realtime',
    log: (message) => process.stderr.write(`[stack] ${message}\n`),
  });
  process.env.REDIS_URL = info.redisUrl;
  process.env.MONGODB_URI = info.mongoUri;
}
