import type { BatchDone } from '../../src/exactly-once/batch-store';
import { getJson, startHarness, waitFor, waitForBatch, type Harness } from '../support/harness';
import { storedPoints } from '../support/stored-history';

describe('jobs that can never succeed', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness();
  });

  afterAll(async () => {
    await h.close();
  });

  it('when a job payload is invalid, then it fails at once without retries, nothing is stored and its batch is reported failed', async () => {
    const socket = await h.connect();
    expect((await socket.emitWithAck('subscribe', { keys: [], jobs: true })).ok).toBe(true);
    const done: BatchDone[] = [];
    socket.on('batch:done', (event) => done.push(event));

    // A queue is an input too: a payload written by something other than this API.
    const batchId = 'forged0batch';
    await h.redis.hset(`${h.config.QUEUE_NAME}:batch:${batchId}`, {
      status: 'queued',
      points: 1,
      chunks: 1,
      keys: 1,
      processedPoints: 0,
      doneChunks: 0,
      receivedAt: Date.now(),
    });
    const job = await h.api.queue.add(
      { batchId, chunk: 0, receivedAt: Date.now(), points: [{ i: 0, key: 'forged', value: 1, ts: 0, meta: { $where: '1' } }] },
      { jobId: `${batchId}:0` },
    );

    const batch = await waitForBatch(h.baseUrl, batchId);
    expect(batch).toMatchObject({ status: 'failed', processedPoints: 0 });
    expect(batch.error).toMatch(/invalid job payload/);
    const failed = await waitFor(async () => {
      const state = await (await h.api.queue.getJob(String(job.id)))?.getState();
      return state === 'failed' ? state : undefined;
    });
    expect(failed).toBe('failed');
    expect((await h.api.queue.getJob(String(job.id)))?.attemptsMade).toBe(1);
    await waitFor(() => done.find((event) => event.batchId === batchId));
    expect(done.find((event) => event.batchId === batchId)).toMatchObject({ status: 'failed', points: 1 });
    expect((await getJson(h.baseUrl, '/api/data/stats/forged')).status).toBe(404);
    expect(await storedPoints(h.db, { batchId })).toBe(0);
  });
});
