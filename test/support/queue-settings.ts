import { randomBytes } from 'node:crypto';
import type { QueueSettings } from '../../src/queue/ingest-queue';
import { DEFAULT_REDIS_URL } from '../../src/config/config';

/** Settings of a queue of its own on the test Redis, named `<prefix>-<random>`. */
export function testQueueSettings(prefix: string): QueueSettings {
  return {
    redisUrl: process.env.REDIS_URL ?? DEFAULT_REDIS_URL,
    name: `${prefix}-${randomBytes(4).toString('hex')}`,
    attempts: 3,
    backoffMs: 100,
    lockMs: 30_000,
    stalledIntervalMs: 30_000,
    keepCompletedJobs: 100,
  };
}
