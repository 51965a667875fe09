import { getJson, postJson, startHarness, waitForBatch, type Harness } from '../support/harness';

describe('back-pressure', () => {
  let h: Harness;

  beforeAll(async () => {
    // No worker: the backlog only grows. 10 points per job, at most 30 waiting points.
    h = await startHarness({ JOB_CHUNK_SIZE: '10', MAX_QUEUE_BACKLOG: '30' }, { workers: 0 });
  });

  afterAll(async () => {
    await h.close();
  });

  it('when the waiting backlog is over its limit, then ingest answers 503 with Retry-After and enqueues nothing, and accepts again once it drains', async () => {
    const points = Array.from({ length: 20 }, (_, i) => ({ key: 'pressure', value: i }));
    const accepted: string[] = [];
    let refused: Awaited<ReturnType<typeof postJson>> | undefined;
    for (let attempt = 0; attempt < 10 && !refused; attempt += 1) {
      const answer = await postJson(h.baseUrl, points);
      if (answer.status === 202) accepted.push(answer.body.batchId);
      else refused = answer;
      // The backlog is read at most every 250 ms.
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    expect(accepted.length).toBeGreaterThanOrEqual(2);
    expect(refused?.status).toBe(503);
    expect(refused?.headers.get('retry-after')).toBe('5');
    expect(refused?.body.error).toMatchObject({ code: 'SERVICE_UNAVAILABLE', message: expect.stringMatching(/backlog/) });
    expect(await h.api.queue.getWaitingCount()).toBe(accepted.length * 2);

    await h.startWorker();
    await Promise.all(accepted.map((batchId) => waitForBatch(h.baseUrl, batchId)));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const again = await postJson(h.baseUrl, points);
    expect(again.status).toBe(202);
    await waitForBatch(h.baseUrl, again.body.batchId);
    expect((await getJson(h.baseUrl, '/api/data/stats/pressure')).body).toMatchObject({ count: 20 * (accepted.length + 1) });
  });
});
