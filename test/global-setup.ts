import { ensureStack } from '../scripts/stack/services';
import { DEFAULT_MONGODB_URI, DEFAULT_REDIS_URL } from '../src/config/config';

/**
 * Makes Redis and the MongoDB-compatible server available for the
 * integration tests (reusing running ones), exactly as `npm run stack` does.
 * Test workers inherit the resolved URLs through the environment.
 */
export default async function globalSetup(): Promise<void> {
  const info = await ensureStack({
    redisUrl: process.env.REDIS_URL ?? DEFAULT_REDIS_URL,
    mongoUri: process.env.MONGODB_URI ?? DEFAULT_MONGODB_URI,
    log: (message) => process.stderr.write(`[stack] ${message}\n`),
  });
  process.env.REDIS_URL = info.redisUrl;
  process.env.MONGODB_URI = info.mongoUri;
}
