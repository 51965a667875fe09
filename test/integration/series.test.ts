import { bucketStart, STEPS } from '../../src/domain/series';
import type { SeriesUpdate, StatsUpdate } from '../../src/sockets/socket-events';
import type { HistoryStore } from '../../src/storage/contract';
import { getJson, postJson, startHarness, waitFor, waitForBatch, type Harness } from '../support/harness';

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});

afterAll(async () => {
  await h.close();
});

const MINUTE = 60_000;
const HOUR = 3_600_000;
// An hour that started at least two hours ago: its minutes, and the next hour's first, are all kept (48 h).
const H = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR;

async function ingest(key: string, points: [value: number, timestamp: number][]): Promise<string> {
  const accepted = await postJson(h.baseUrl, { points: points.map(([value, timestamp]) => ({ key, value, timestamp })) });
  expect(accepted.status).toBe(202);
  const batchId = String(accepted.body.batchId);
  expect((await waitForBatch(h.baseUrl, batchId)).status).toBe('completed');
  return batchId;
}

async function series(query: string): Promise<{ status: number; body: any }> {
  return getJson(h.baseUrl, `/api/data/series?${query}`);
}

describe('GET /api/data/series', () => {
  it('when points fall on both sides of a minute, an hour and a day edge, and late, then each lands in the bucket of its own timestamp', async () => {
    const key = 'series/edges';
    await ingest(key, [
      [1, H + 59 * MINUTE + 59_999],
      [3, H + 59 * MINUTE],
      [10, H + HOUR],
    ]);
    // Late and out of order: a point of the first minute arrives after the others.
    await ingest(key, [[-4, H + 5]]);

    const minutes = await series(`key=${encodeURIComponent(key)}&step=1m&from=${H}&to=${H + 2 * HOUR}`);
    expect(minutes.status).toBe(200);
    expect(minutes.body).toEqual({
      step: '1m',
      series: [
        {
          key,
          buckets: [
            { start: new Date(H).toISOString(), count: 1, sum: -4, avg: -4, min: -4, max: -4 },
            { start: new Date(H + 59 * MINUTE).toISOString(), count: 2, sum: 4, avg: 2, min: 1, max: 3 },
            { start: new Date(H + HOUR).toISOString(), count: 1, sum: 10, avg: 10, min: 10, max: 10 },
          ],
        },
      ],
    });

    const hours = await series(`key=${encodeURIComponent(key)}&step=1h&from=${H}&to=${H + HOUR}`);
    expect(hours.body.series[0].buckets).toEqual([
      { start: new Date(H).toISOString(), count: 3, sum: 0, avg: 0, min: -4, max: 3 },
      { start: new Date(H + HOUR).toISOString(), count: 1, sum: 10, avg: 10, min: 10, max: 10 },
    ]);

    const days = await series(`key=${encodeURIComponent(key)}&step=1d&from=${H}&to=${H + HOUR}`);
    const dayTotal = days.body.series[0].buckets.reduce((total: number, bucket: { count: number }) => total + bucket.count, 0);
    expect(dayTotal).toBe(4);
    for (const bucket of days.body.series[0].buckets) expect(new Date(bucket.start).getUTCHours()).toBe(0);
  });

  it('when several keys are asked, then each comes once in the order asked, an unknown one with no buckets', async () => {
    await ingest('series/b', [[2, H]]);
    await ingest('series/a', [[5, H]]);
    const answer = await series(`key=series/b&key=series/never&key=series/a&step=1h&from=${H}&to=${H}`);
    expect(answer.status).toBe(200);
    expect(answer.body.series.map((entry: { key: string }) => entry.key)).toEqual(['series/b', 'series/never', 'series/a']);
    expect(answer.body.series[0].buckets).toEqual([{ start: new Date(H).toISOString(), count: 1, sum: 2, avg: 2, min: 2, max: 2 }]);
    expect(answer.body.series[1].buckets).toEqual([]);
    expect(answer.body.series[2].buckets[0]).toMatchObject({ count: 1, sum: 5 });
  });

  it('when no window is given, then the last 60 steps up to now are answered', async () => {
    const key = 'series/default-window';
    const now = Date.now();
    await ingest(key, [
      [1, now],
      [2, now - 61 * MINUTE],
    ]);
    const answer = await series(`key=${key}`);
    expect(answer.status).toBe(200);
    expect(answer.body.step).toBe('1m');
    expect(answer.body.series[0].buckets).toEqual([
      { start: new Date(Math.floor(now / MINUTE) * MINUTE).toISOString(), count: 1, sum: 1, avg: 1, min: 1, max: 1 },
    ]);
    const hours = await series(`key=${key}&step=1h`);
    expect(hours.body.series[0].buckets.reduce((total: number, bucket: { count: number }) => total + bucket.count, 0)).toBe(2);
  });

  it('when a range starts before the step keeps its buckets, then 400 names the step to use', async () => {
    const threeDaysAgo = Date.now() - 3 * 24 * HOUR;
    const answer = await series(`key=k&step=1m&from=${threeDaysAgo}`);
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('INVALID_QUERY');
    expect(answer.body.error.message).toMatch(/1m buckets are kept 2 days.*use step=1h/);
  });

  it.each([
    ['no key', 'step=1m', /key/],
    ['eleven keys', Array.from({ length: 11 }, (_, i) => `key=k${i}`).join('&'), /at most 10/],
    ['a key twice', 'key=a&key=a', /same key twice/],
    ['an unknown step', 'key=a&step=5m', /1m, 1h or 1d/],
    ['from after to', 'key=a&from=2000&to=1000', /must not be after to/],
    ['a key as an object', 'key[x]=1', /key/],
    ['an unknown parameter', 'key=a&limit=5', /unknown parameter/],
  ])('when the query has %s, then 400 says what to fix', async (_what, query, message) => {
    const answer = await series(query);
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('INVALID_QUERY');
    expect(answer.body.error.message).toMatch(message);
  });
});

describe('rollups are counted exactly once', () => {
  // No Bull worker: this test runs the job itself, so the failing run is always the first.
  let alone: Harness;
  beforeAll(async () => {
    alone = await startHarness({}, { workers: 0 });
  });
  afterAll(async () => {
    await alone.close();
  });

  it('when a job fails after its buckets are written and runs again, then no bucket counts it twice', async () => {
    const key = 'series/rerun';
    const accepted = await postJson(alone.baseUrl, { points: [7, 8, 9].map((value, i) => ({ key, value, timestamp: H + i })) });
    const batchId = String(accepted.body.batchId);
    const job = await alone.api.queue.getJob(`${batchId}:0`);
    if (!job) throw new Error('the batch has no job');
    const failing = await alone.buildProcessor((deps) => {
      const history = Object.create(deps.history) as HistoryStore;
      history.insertJobs = () => Promise.reject(new Error('history down'));
      return { history };
    });
    await expect(failing.process({ id: String(job.id), data: job.data, attempt: 1 })).rejects.toThrow();
    const again = await alone.buildProcessor();
    await expect(again.process({ id: String(job.id), data: job.data, attempt: 2 })).resolves.toMatchObject({
      status: 'processed',
      adopted: true,
    });
    expect((await waitForBatch(alone.baseUrl, batchId)).status).toBe('completed');

    for (const step of STEPS) {
      const answer = await getJson(alone.baseUrl, `/api/data/series?key=${key}&step=${step}&from=${H}&to=${H}`);
      const start = new Date(bucketStart(H, step)).toISOString();
      expect(answer.body.series[0].buckets).toEqual([{ start, count: 3, sum: 24, avg: 8, min: 7, max: 9 }]);
    }
  });
});

describe('series:update', () => {
  it('when a subscribed key gets points, then its newest minute bucket arrives with stats:update and matches GET series', async () => {
    const key = 'series/live';
    const socket = await h.connect();
    expect((await socket.emitWithAck('subscribe', { keys: [key] })).ok).toBe(true);
    const stats: StatsUpdate[] = [];
    const buckets: SeriesUpdate[] = [];
    socket.on('stats:update', (update) => stats.push(update));
    socket.on('series:update', (update) => buckets.push(update));
    const now = Date.now();
    const batchId = await ingest(key, [
      [4, now],
      [6, now],
      [100, now - 10 * MINUTE],
    ]);
    const update = await waitFor(() => buckets.find((candidate) => candidate.key === key), 10_000, 'series:update');
    expect(update).toEqual({
      key,
      step: '1m',
      bucket: { start: new Date(Math.floor(now / MINUTE) * MINUTE).toISOString(), count: 2, sum: 10, avg: 5, min: 4, max: 6 },
    });
    expect(stats.some((candidate) => candidate.batchId === batchId)).toBe(true);
    const answer = await series(`key=${key}&step=1m`);
    expect(answer.body.series[0].buckets.at(-1)).toEqual(update.bucket);
    socket.disconnect();
  });
});
