import { getJson, postJson, startHarness, waitFor, waitForBatch, type Harness } from '../support/harness';
import type { StatsUpdate } from '../../src/sockets/socket-events';
import type { BatchDone } from '../../src/exactly-once/batch-store';

describe('the ingest pipeline, end to end on real Redis and the MongoDB-compatible server', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ JOB_CHUNK_SIZE: '100' });
  });

  afterAll(async () => {
    await h.close();
  });

  it('when a batch is posted, then it is answered 202 and its points are counted, stored as history and reported done', async () => {
    const points = [
      { key: 'pipe/temp', value: 10, timestamp: '2026-01-01T00:00:00.000Z', type: 'temp', meta: { room: 'a' } },
      { key: 'pipe/temp', value: 30, timestamp: '2026-01-01T00:00:02.000Z' },
      { key: 'pipe/temp', value: 20, timestamp: 1767225601000 },
      { key: 'pipe/other', value: -5 },
    ];
    const { status, body } = await postJson(h.baseUrl, { points });
    expect(status).toBe(202);
    expect(body).toEqual({ batchId: expect.any(String), accepted: 4, rejected: [] });

    const batch = await waitForBatch(h.baseUrl, body.batchId);
    expect(batch).toMatchObject({ batchId: body.batchId, status: 'completed', points: 4, processedPoints: 4 });
    expect(typeof batch.completedAt).toBe('string');

    const stats = await getJson(h.baseUrl, `/api/data/stats/${encodeURIComponent('pipe/temp')}`);
    expect(stats.status).toBe(200);
    expect(stats.body).toMatchObject({
      key: 'pipe/temp',
      count: 3,
      sum: 60,
      avg: 20,
      min: 10,
      max: 30,
      firstTimestamp: '2026-01-01T00:00:00.000Z',
      lastTimestamp: '2026-01-01T00:00:02.000Z',
      lastValue: 30,
    });
    const legacy = await getJson(h.baseUrl, `/api/data/stats?key=${encodeURIComponent('pipe/temp')}`);
    expect(legacy.body).toEqual(stats.body);

    const history = await getJson(h.baseUrl, `/api/data/history?key=${encodeURIComponent('pipe/temp')}`);
    expect(history.status).toBe(200);
    expect(history.body.nextCursor).toBeNull();
    expect(history.body.items.map((item: { value: number }) => item.value)).toEqual([30, 20, 10]);
    expect(history.body.items[2]).toMatchObject({ key: 'pipe/temp', type: 'temp', meta: { room: 'a' }, batchId: body.batchId });
  });

  it('when the original {key, items} form is posted, then the batch key applies to items without one', async () => {
    const { status, body } = await postJson(h.baseUrl, {
      key: 'legacy',
      items: [{ value: 1, meta: {} }, { value: 2 }, { key: 'legacy-own', value: 3 }],
    });
    expect(status).toBe(202);
    expect(body.accepted).toBe(3);
    await waitForBatch(h.baseUrl, body.batchId);
    expect((await getJson(h.baseUrl, '/api/data/stats/legacy')).body).toMatchObject({ count: 2, sum: 3 });
    expect((await getJson(h.baseUrl, '/api/data/stats/legacy-own')).body).toMatchObject({ count: 1, sum: 3 });
  });

  it('when a bare array mixes valid and invalid points, then the valid ones are counted and the invalid indices are listed', async () => {
    const { status, body } = await postJson(h.baseUrl, [
      { key: 'mixed', value: 1 },
      { key: 'mixed', value: '2' },
      { key: 'mixed', value: 3, extra: true },
      { key: 'mixed', value: 4 },
    ]);
    expect(status).toBe(202);
    expect(body.accepted).toBe(2);
    expect(body.rejected.map((r: { index: number }) => r.index)).toEqual([1, 2]);
    expect(body.rejected[0].message).toMatch(/value/);
    expect(body.rejected[1].message).toMatch(/extra/);
    await waitForBatch(h.baseUrl, body.batchId);
    expect((await getJson(h.baseUrl, '/api/data/stats/mixed')).body).toMatchObject({ count: 2, sum: 5 });
  });

  it('when NDJSON is streamed in many chunks, then every valid line is counted and bad lines are rejected by line number', async () => {
    const lines: string[] = [];
    for (let i = 0; i < 450; i += 1) lines.push(JSON.stringify({ key: 'nd', value: i }));
    lines.splice(10, 0, '{not json');
    lines.splice(20, 0, '');
    const response = await fetch(`${h.baseUrl}/api/data/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: lines.join('\n'),
    });
    const body: any = await response.json();
    expect(response.status).toBe(202);
    expect(body.accepted).toBe(450);
    expect(body.rejected).toEqual([{ index: 10, message: 'line is not valid JSON' }]);
    const batch = await waitForBatch(h.baseUrl, body.batchId);
    expect(batch).toMatchObject({ status: 'completed', points: 450, processedPoints: 450 });
    expect((await getJson(h.baseUrl, '/api/data/stats/nd')).body).toMatchObject({ count: 450, sum: (449 * 450) / 2 });
  });

  it('when one job touches more keys than fit in one write command, then every key is counted', async () => {
    // 100 distinct keys per job (JOB_CHUNK_SIZE is 100 here): FerretDB 1.24 hangs on a command of 100 updates.
    const points = Array.from({ length: 300 }, (_, i) => ({ key: `wide/${i % 150}`, value: i }));
    const first = await postJson(h.baseUrl, points);
    await waitForBatch(h.baseUrl, first.body.batchId);
    const second = await postJson(h.baseUrl, points);
    expect(await waitForBatch(h.baseUrl, second.body.batchId)).toMatchObject({ status: 'completed', processedPoints: 300 });
    const page = await getJson(h.baseUrl, '/api/data/stats?prefix=wide/&limit=1000');
    expect(page.body.items).toHaveLength(150);
    expect(page.body.items.reduce((total: number, item: { count: number }) => total + item.count, 0)).toBe(600);
    expect((await getJson(h.baseUrl, '/api/data/stats/wide%2F7')).body).toMatchObject({ count: 4, sum: 2 * (7 + 157) });
  });

  it('when a request is repeated with the same Idempotency-Key, then the first answer is returned and nothing new is enqueued', async () => {
    const headers = { 'Idempotency-Key': `idem-${Date.now()}` };
    const first = await postJson(h.baseUrl, { points: [{ key: 'idem', value: 7 }] }, headers);
    const second = await postJson(h.baseUrl, { points: [{ key: 'idem', value: 7 }] }, headers);
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    expect(second.body).toEqual(first.body);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    await waitForBatch(h.baseUrl, first.body.batchId);
    expect((await getJson(h.baseUrl, '/api/data/stats/idem')).body).toMatchObject({ count: 1, sum: 7 });
  });

  it('when history is read page by page while new points arrive, then no record is skipped or repeated', async () => {
    const points = Array.from({ length: 25 }, (_, i) => ({ key: 'pages', value: i, timestamp: 1_700_000_000_000 + (i % 5) * 1000 }));
    const { body } = await postJson(h.baseUrl, points);
    await waitForBatch(h.baseUrl, body.batchId);

    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `/api/data/history?key=pages&limit=7${cursor ? `&cursor=${cursor}` : ''}`;
      const page = await getJson(h.baseUrl, query);
      expect(page.status).toBe(200);
      seen.push(...page.body.items.map((item: { value: number }) => item.value));
      cursor = page.body.nextCursor;
      if (pages === 0) {
        // Newer points arrive between the first and second page.
        const late = await postJson(h.baseUrl, [{ key: 'pages', value: 1000 }]);
        await waitForBatch(h.baseUrl, late.body.batchId);
      }
      pages += 1;
    } while (cursor !== null);
    expect(pages).toBe(4);
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => i));
  });

  it('when aggregates are listed with a prefix, then pages follow the cursor in key order', async () => {
    const { body } = await postJson(
      h.baseUrl,
      ['list/a', 'list/b', 'list/c', 'other'].map((key) => ({ key, value: 1 })),
    );
    await waitForBatch(h.baseUrl, body.batchId);
    const first = await getJson(h.baseUrl, '/api/data/stats?prefix=list/&limit=2');
    expect(first.body.items.map((item: { key: string }) => item.key)).toEqual(['list/a', 'list/b']);
    const second = await getJson(h.baseUrl, `/api/data/stats?prefix=list/&limit=2&cursor=${first.body.nextCursor}`);
    expect(second.body.items.map((item: { key: string }) => item.key)).toEqual(['list/c']);
    expect(second.body.nextCursor).toBeNull();
  });

  it('when a socket subscribes to a key, then it gets the snapshot at once and stats:update for that key only', async () => {
    const seed = await postJson(h.baseUrl, [{ key: 'live/a', value: 1 }]);
    await waitForBatch(h.baseUrl, seed.body.batchId);

    const watcher = await h.connect();
    const bystander = await h.connect();
    const ack = await watcher.emitWithAck('subscribe', { keys: ['live/a', 'live/never'], jobs: true });
    expect(ack).toMatchObject({ ok: true, snapshot: { 'live/a': { key: 'live/a', count: 1 }, 'live/never': null } });
    expect((await bystander.emitWithAck('subscribe', { keys: ['live/b'] })).ok).toBe(true);

    const updates: StatsUpdate[] = [];
    const done: BatchDone[] = [];
    const bystanderUpdates: StatsUpdate[] = [];
    watcher.on('stats:update', (update) => updates.push(update));
    watcher.on('batch:done', (event) => done.push(event));
    bystander.on('stats:update', (update) => bystanderUpdates.push(update));

    const { body } = await postJson(h.baseUrl, [
      { key: 'live/a', value: 5 },
      { key: 'live/c', value: 9 },
    ]);
    const update = await waitFor(() => updates.find((u) => u.batchId === body.batchId), 20_000, 'stats:update');
    expect(update).toMatchObject({ key: 'live/a', stats: { key: 'live/a', count: 2, sum: 6 } });
    await waitFor(() => done.find((d) => d.batchId === body.batchId), 20_000, 'batch:done');
    expect(done.find((d) => d.batchId === body.batchId)).toMatchObject({ status: 'completed', points: 2, keys: 2 });
    expect(updates.every((u) => u.key === 'live/a')).toBe(true);
    expect(bystanderUpdates).toEqual([]);
  });

  it('when a socket sends an invalid or oversized subscription, then it gets ok:false and joins nothing', async () => {
    const socket = await h.connect();
    const bad = await socket.emitWithAck('subscribe', { keys: 'not-a-list' } as never);
    expect(bad).toMatchObject({ ok: false, error: { code: 'INVALID_SUBSCRIPTION' } });
    const tooMany = Array.from({ length: h.config.MAX_KEYS_PER_SOCKET + 1 }, (_, i) => `k${i}`);
    const over = await socket.emitWithAck('subscribe', { keys: tooMany });
    expect(over).toMatchObject({ ok: false, error: { code: 'INVALID_SUBSCRIPTION' } });
    expect((await socket.emitWithAck('unsubscribe', { keys: ['k1'] })).ok).toBe(true);
  });

  it('when the service is probed, then health, readiness and metrics answer', async () => {
    expect((await getJson(h.baseUrl, '/healthz')).body).toEqual({ status: 'ok' });
    expect(await getJson(h.baseUrl, '/readyz')).toEqual({ status: 200, body: { status: 'ready', checks: { mongodb: 'up', redis: 'up' } } });
    const metrics = await (await fetch(`${h.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/ingest_points_accepted_total \d+/);
    expect(metrics).toMatch(/queue_jobs\{state="waiting"\} \d+/);
    expect(metrics).toMatch(/ingest_points_processed [1-9]\d*/);
    const openApi = await getJson(h.baseUrl, '/openapi.json');
    expect(openApi.status).toBe(200);
    expect(openApi.body.openapi).toBe('3.1.0');
    expect(Object.keys(openApi.body.paths)).toContain('/api/data/ingest');
  });
});
