import fs from 'node:fs';
import type { JobPayload } from '../../src/domain/job-payload';
import { createLogger } from '../../src/logger';
import { missingBullInternals, promoteIn } from '../../src/queue/bull-internals';
import { createIngestQueue, type IngestQueueHandle } from '../../src/queue/ingest-queue';
import { testQueueSettings } from '../support/queue-settings';

/** Tripwires for Bull's private API (src/queue/bull-internals.ts): each fails when an upgrade changes what it relies on. */
const settings = testQueueSettings('test-internals');
let handle: IngestQueueHandle;

beforeAll(async () => {
  handle = createIngestQueue(settings, 'api', createLogger('silent', 'test'));
  await handle.queue.isReady();
});

afterAll(async () => {
  await handle.queue.obliterate({ force: true });
  await handle.close();
});

const payload: JobPayload = { batchId: 'internals', chunk: 0, receivedAt: Date.now(), points: [{ i: 0, key: 'k', value: 1, ts: 0 }] };

describe("Bull's private API, as this service uses it", () => {
  it('when a queue is ready, then every private member the service relies on is there', () => {
    expect(missingBullInternals(handle.queue)).toEqual([]);
  });

  it('when a delayed job is promoted inside a transaction, then it is waiting once the transaction ran', async () => {
    const job = await handle.queue.add(payload, { delay: 3_600_000 });
    expect(await job.getState()).toBe('delayed');
    const transaction = handle.queue.client.multi();
    promoteIn(transaction, handle.queue, String(job.id));
    await transaction.exec();
    expect(await job.getState()).toBe('waiting');
  });

  it("when Bull's processJob is read, then it still takes notFetch and passes it to the completion that fetches the next job", () => {
    const source = fs.readFileSync(require.resolve('bull/lib/queue.js'), 'utf8');
    const processJob = /Queue\.prototype\.processJob = function\(job, notFetch = false\) \{([\s\S]*?)\n\};/.exec(source)?.[1];
    expect(processJob).toBeDefined();
    expect(processJob).toMatch(/moveToCompleted\([^)]*notFetch\)/);
  });

  it('when the installed Bull is read, then it is the exact version package.json pins', () => {
    const pinned = (JSON.parse(fs.readFileSync('package.json', 'utf8')) as { dependencies: Record<string, string> }).dependencies.bull;
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
    expect((JSON.parse(fs.readFileSync(require.resolve('bull/package.json'), 'utf8')) as { version: string }).version).toBe(pinned);
  });
});
