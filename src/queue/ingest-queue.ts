import Queue from 'bull';
import type Redis from 'ioredis';
import type { Logger } from 'pino';
import { fetchOnlyWhileOpen, nameWorkerQuietly } from './bull-internals';
import { createRedis } from './redis';
import type { JobPayload } from '../domain/job-payload';

export type IngestQueue = Queue.Queue<JobPayload>;

export interface QueueSettings {
  redisUrl: string;
  name: string;
  attempts: number;
  backoffMs: number;
  /** JOB_LOCK_MS and JOB_STALLED_INTERVAL_MS. */
  lockMs: number;
  stalledIntervalMs: number;
  /** KEEP_COMPLETED_JOBS. */
  keepCompletedJobs: number;
}

/**
 * Bull's lock is renewed every lockDuration/2 while a job runs; a worker
 * that died loses it after `lockDuration`, and the stalled check (every
 * `stalledInterval`) hands the job to another worker: a killed worker's job
 * runs again within lockDuration + stalledInterval (1 min by default). `maxStalledCount` is high on purpose:
 * with Bull's default of 1, a job whose worker is killed twice would end up
 * failed, i.e. accepted points would never be counted.
 */
const MAX_STALLED_COUNT = 1000;

export interface IngestQueueHandle {
  queue: IngestQueue;
  /** Stops the queue (a worker's active jobs finish first), then its Redis clients. */
  close: () => Promise<void>;
}

/**
 * Creates the queue with Redis clients of its own. The API's command client
 * fails fast, the worker's waits (see redis.ts). Bull does not close clients
 * made by `createClient`, so the handle does, once Bull has stopped.
 */
export function createIngestQueue(settings: QueueSettings, role: 'api' | 'worker', logger: Logger): IngestQueueHandle {
  const clients: Redis[] = [];
  const track = (client: Redis): Redis => {
    clients.push(client);
    return client;
  };
  const queue = new Queue<JobPayload>(settings.name, {
    createClient: (type) => {
      if (type === 'client') return track(createRedis(settings.redisUrl, role, logger));
      if (type === 'subscriber') return track(createRedis(settings.redisUrl, 'subscriber', logger));
      return track(createRedis(settings.redisUrl, 'blocking', logger));
    },
    settings: {
      lockDuration: settings.lockMs,
      stalledInterval: settings.stalledIntervalMs,
      maxStalledCount: MAX_STALLED_COUNT,
    },
    defaultJobOptions: {
      attempts: settings.attempts,
      backoff: { type: 'exponential', delay: settings.backoffMs },
      // Bounded: the last hour (at most KEEP_COMPLETED_JOBS) of completed jobs, a week (at most 10000) of failed ones;
      // a completed job still holds its points.
      removeOnComplete: { age: 3600, count: settings.keepCompletedJobs },
      removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
    },
  });
  queue.on('error', (error: Error) => logger.warn({ err: error.message }, 'queue error'));
  if (role === 'worker') {
    fetchOnlyWhileOpen(queue);
    nameWorkerQuietly(queue);
  }
  return {
    queue,
    close: async () => {
      await queue.close();
      for (const client of clients) client.disconnect();
    },
  };
}
