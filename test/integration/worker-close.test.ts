import Redis from 'ioredis';
import type { JobPayload } from '../../src/domain/job-payload';
import { createLogger } from '../../src/logger';
import { createIngestQueue, type IngestQueueHandle } from '../../src/queue/ingest-queue';
import { testQueueSettings } from '../support/queue-settings';
import { DEFAULT_REDIS_URL } from '../../src/config/config';

const REDIS_URL = process.env.REDIS_URL ?? DEFAULT_REDIS_URL;

function payload(chunk: number): JobPayload {
  return { batchId: 'closebatch', chunk, receivedAt: Date.now(), points: [{ i: 0, key: 'k', value: chunk, ts: 0 }] };
}

describe('a worker queue that is closed while a job completes', () => {
  const settings = testQueueSettings('test-close');
  const { name } = settings;
  const logger = createLogger('silent', 'test');
  let producer: IngestQueueHandle;

  beforeAll(() => {
    producer = createIngestQueue(settings, 'api', logger);
  });

  afterAll(async () => {
    await producer.queue.obliterate({ force: true });
    await producer.close();
  });

  it('when close() comes while the first job is being marked completed, then the next job stays waiting instead of being left active', async () => {
    const jobs = await Promise.all([0, 1, 2].map((chunk) => producer.queue.add(payload(chunk), { jobId: `closebatch:${chunk}` })));
    const worker = createIngestQueue(settings, 'worker', logger);
    const handled: string[] = [];
    let closing: Promise<void> | undefined;
    void worker.queue.process(1, (job) => {
      handled.push(String(job.id));
      // The completion script is on its way to Redis when close() is called, and its answer comes after.
      setImmediate(() => {
        closing ??= worker.close();
      });
      return Promise.resolve('done');
    });
    while (!closing) await new Promise((resolve) => setTimeout(resolve, 10));
    await closing;

    expect(handled).toEqual(['closebatch:0']);
    const states = await Promise.all(jobs.map(async (job) => (await producer.queue.getJob(String(job.id)))?.getState()));
    expect(states).toEqual(['completed', 'waiting', 'waiting']);
    const redis = new Redis(REDIS_URL);
    try {
      expect(await redis.llen(`bull:${name}:active`)).toBe(0);
    } finally {
      redis.disconnect();
    }
  });
});
