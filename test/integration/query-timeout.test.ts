import { getJson, startHarness, type Harness } from '../support/harness';

describe('a history query over the time limit', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ HISTORY_QUERY_TIMEOUT_MS: '1' }, { workers: 0 });
    const now = new Date();
    const records = Array.from({ length: 20_000 }, (_, i) => ({
      _id: `timeoutbatch:${i}`,
      key: `slow/${i % 10}`,
      value: i,
      timestamp: new Date(1_700_000_000_000 + i),
      batchId: 'timeoutbatch',
      receivedAt: now,
      processedAt: now,
    }));
    for (let i = 0; i < records.length; i += 5000) await h.db.collection('datapoints').insertMany(records.slice(i, i + 5000) as never[]);
  });

  afterAll(async () => {
    await h.close();
  });

  it('when a history page takes longer than HISTORY_QUERY_TIMEOUT_MS, then it is stopped and answered 503 QUERY_TIMEOUT saying how to narrow it', async () => {
    // Across keys: no profile can answer this from a key's recent records (FerretDB reads every record for it).
    const answer = await getJson(h.baseUrl, '/api/data/history?from=1700000000000&limit=100');
    expect(answer.status).toBe(503);
    expect(answer.body.error).toEqual({
      code: 'QUERY_TIMEOUT',
      message: expect.stringMatching(/did not finish within 0.001 s\. Narrow it/),
    });
    // The process is fine afterwards.
    expect((await getJson(h.baseUrl, '/healthz')).status).toBe(200);
  });
});
