import { getJson, startHarness, type Harness } from '../support/harness';
import { historyBucket, historyBuckets } from '../support/stored-history';

describe('a history query over the time limit', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ HISTORY_QUERY_TIMEOUT_MS: '1' }, { workers: 0 });
    // 20,000 points of one job: 10 keys, each key's points 6 s apart, so 2,000 buckets of 10 points (one per key and minute).
    const now = new Date();
    // A whole minute, after the query's `from`.
    const t0 = 1_700_000_040_000;
    const buckets = Array.from({ length: 2000 }, (_, b) => {
      const key = b % 10;
      const minute = Math.floor(b / 10);
      const points = Array.from({ length: 10 }, (_, j) => {
        const i = minute * 100 + j * 10 + key;
        return { i, value: i, ts: t0 + minute * 60_000 + j * 6000 };
      });
      return historyBucket('timeoutbatch', `slow/${key}`, points, now);
    });
    for (let i = 0; i < buckets.length; i += 500) await historyBuckets(h.db).insertMany(buckets.slice(i, i + 500));
  });

  afterAll(async () => {
    await h.close();
  });

  it('when a history page takes longer than HISTORY_QUERY_TIMEOUT_MS, then it is stopped and answered 503 QUERY_TIMEOUT saying which reads answer', async () => {
    // Across keys: no profile can answer this from a key's recent records (FerretDB reads every bucket for it).
    const answer = await getJson(h.baseUrl, '/api/data/history?from=1700000000000&limit=100');
    expect(answer.status).toBe(503);
    expect(answer.body.error).toEqual({
      code: 'QUERY_TIMEOUT',
      message: expect.stringMatching(/did not finish within 0.001 s\. .*Read a key's or a recent batch's newest pages, or run MongoDB/),
    });
    // The process is fine afterwards.
    expect((await getJson(h.baseUrl, '/healthz')).status).toBe(200);
  });
});
