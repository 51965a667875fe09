import { gzipSync } from 'node:zlib';
import { getJson, postJson, startHarness, waitFor, waitForBatch, type Harness } from '../support/harness';
import type { StatsUpdate } from '../../src/sockets/socket-events';

// Small limits, so each edge is reached with a few bytes or points.
const MAX_BODY_BYTES = 8000;
const MAX_POINTS = 5;
const MAX_KEYS = 5;

interface Answer {
  status: number;
  body: any;
}

async function ingest(h: Harness, body: Buffer | string, headers: Record<string, string>): Promise<Answer> {
  const response = await fetch(`${h.baseUrl}/api/data/ingest`, { method: 'POST', headers, body });
  return { status: response.status, body: await response.json() };
}

/** `[point, ...]` padded with spaces to exactly `bytes` bytes: JSON allows whitespace, the limit counts it. */
function jsonArrayOfBytes(bytes: number, points: unknown[]): string {
  const text = JSON.stringify(points);
  const padded = `${text.slice(0, -1)}${' '.repeat(bytes - Buffer.byteLength(text))}]`;
  expect(Buffer.byteLength(padded)).toBe(bytes);
  return padded;
}

/** NDJSON lines followed by blank padding lines to exactly `bytes` bytes. */
function ndjsonOfBytes(bytes: number, points: unknown[]): string {
  const text = points.map((point) => `${JSON.stringify(point)}\n`).join('');
  const padded = `${text}${'\n'.repeat(bytes - Buffer.byteLength(text))}`;
  expect(Buffer.byteLength(padded)).toBe(bytes);
  return padded;
}

/** A meta object whose JSON text is exactly `bytes` long. */
function metaOfBytes(bytes: number): Record<string, string> {
  const meta = { pad: 'x'.repeat(bytes - Buffer.byteLength(JSON.stringify({ pad: '' }))) };
  expect(Buffer.byteLength(JSON.stringify(meta))).toBe(bytes);
  return meta;
}

const points = (key: string, count: number): { key: string; value: number }[] =>
  Array.from({ length: count }, (_, i) => ({ key, value: i + 1 }));
const JSON_TYPE = { 'content-type': 'application/json' };
const NDJSON_TYPE = { 'content-type': 'application/x-ndjson' };

describe('limits at the edge, with small configured limits', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({
      MAX_BODY_BYTES: String(MAX_BODY_BYTES),
      MAX_POINTS_PER_REQUEST: String(MAX_POINTS),
      MAX_KEYS_PER_SOCKET: String(MAX_KEYS),
      RATE_LIMIT_PER_MINUTE: '0',
    });
  });

  afterAll(async () => {
    await h.close();
  });

  describe('MAX_BODY_BYTES', () => {
    it.each([
      ['plain JSON', (bytes: number) => ingest(h, jsonArrayOfBytes(bytes, [{ key: 'edge/body-json', value: 1 }]), JSON_TYPE)],
      [
        'gzip JSON (counted decompressed)',
        (bytes: number) =>
          ingest(h, gzipSync(jsonArrayOfBytes(bytes, [{ key: 'edge/body-gzip', value: 1 }])), { ...JSON_TYPE, 'content-encoding': 'gzip' }),
      ],
      ['plain NDJSON', (bytes: number) => ingest(h, ndjsonOfBytes(bytes, [{ key: 'edge/body-ndjson', value: 1 }]), NDJSON_TYPE)],
      [
        'gzip NDJSON (counted decompressed)',
        (bytes: number) =>
          ingest(h, gzipSync(ndjsonOfBytes(bytes, [{ key: 'edge/body-ndgzip', value: 1 }])), {
            ...NDJSON_TYPE,
            'content-encoding': 'gzip',
          }),
      ],
    ])('when a %s body is exactly MAX_BODY_BYTES, then it is accepted; one byte more is a 413', async (_case, send) => {
      const atLimit = await send(MAX_BODY_BYTES);
      expect({ status: atLimit.status, accepted: atLimit.body.accepted }).toEqual({ status: 202, accepted: 1 });
      const over = await send(MAX_BODY_BYTES + 1);
      expect({ status: over.status, code: over.body.error?.code }).toEqual({ status: 413, code: 'BODY_TOO_LARGE' });
    });
  });

  describe('MAX_POINTS_PER_REQUEST', () => {
    it('when a JSON body holds exactly MAX_POINTS_PER_REQUEST points, then all are accepted', async () => {
      const answer = await postJson(h.baseUrl, points('edge/points-json', MAX_POINTS));
      expect({ status: answer.status, accepted: answer.body.accepted }).toEqual({ status: 202, accepted: MAX_POINTS });
    });

    it('when an NDJSON body holds exactly MAX_POINTS_PER_REQUEST lines (valid or not) and then blank lines, then it is accepted', async () => {
      const lines = [...points('edge/points-ndjson', MAX_POINTS - 1).map((point) => JSON.stringify(point)), '{broken', '', '', ''];
      const answer = await ingest(h, lines.join('\n'), NDJSON_TYPE);
      expect({ status: answer.status, accepted: answer.body.accepted, rejected: answer.body.rejected }).toEqual({
        status: 202,
        accepted: MAX_POINTS - 1,
        rejected: [{ index: MAX_POINTS - 1, message: 'line is not valid JSON' }],
      });
    });

    it('when an NDJSON body holds one line more than MAX_POINTS_PER_REQUEST, then it is a 413 even if that line is invalid', async () => {
      const lines = [...points('edge/points-ndjson-over', MAX_POINTS).map((point) => JSON.stringify(point)), '{broken'];
      const answer = await ingest(h, lines.join('\n'), NDJSON_TYPE);
      expect({ status: answer.status, code: answer.body.error?.code }).toEqual({ status: 413, code: 'TOO_MANY_POINTS' });
    });
  });

  describe('a point: key', () => {
    it('when a key is exactly 200 characters, then it is accepted and readable in both forms; 201 characters is rejected', async () => {
      const key = `edge/${'k'.repeat(195)}`;
      const answer = await postJson(h.baseUrl, [
        { key, value: 7 },
        { key: `${key}k`, value: 8 },
      ]);
      expect(answer.body.rejected).toEqual([{ index: 1, message: 'key must be at most 200 characters' }]);
      await waitForBatch(h.baseUrl, answer.body.batchId);
      expect(await getJson(h.baseUrl, `/api/data/stats/${encodeURIComponent(key)}`)).toMatchObject({
        status: 200,
        body: { key, count: 1 },
      });
      expect(await getJson(h.baseUrl, `/api/data/stats?key=${encodeURIComponent(key)}`)).toMatchObject({
        status: 200,
        body: { key, count: 1 },
      });
    });

    it('when two keys differ only by an unpaired surrogate, then both are rejected instead of being stored as one key', async () => {
      const answer = await postJson(
        h.baseUrl,
        '[{"key": "edge/\\ud800", "value": 1}, {"key": "edge/\\udbff", "value": 1}, {"key": "edge/ok", "value": 1}]',
      );
      expect(answer.body.rejected).toEqual([
        { index: 0, message: 'key must be valid Unicode (no unpaired UTF-16 surrogates)' },
        { index: 1, message: 'key must be valid Unicode (no unpaired UTF-16 surrogates)' },
      ]);
    });
  });

  describe('Socket.io: MAX_KEYS_PER_SOCKET', () => {
    const keys = (prefix: string, count: number): string[] => Array.from({ length: count }, (_, i) => `${prefix}/${i}`);

    it('when a socket subscribes to exactly MAX_KEYS_PER_SOCKET keys, then it is accepted; one more key is rejected', async () => {
      const socket = await h.connect();
      expect(await socket.emitWithAck('subscribe', { keys: keys('sock/exact', MAX_KEYS) })).toMatchObject({ ok: true });
      expect(await socket.emitWithAck('subscribe', { keys: ['sock/exact/one-more'] })).toMatchObject({
        ok: false,
        error: { code: 'INVALID_SUBSCRIPTION', message: `A connection may watch at most ${MAX_KEYS} keys; unsubscribe from some first.` },
      });
      const fresh = await h.connect();
      expect(await fresh.emitWithAck('subscribe', { keys: keys('sock/over', MAX_KEYS + 1) })).toMatchObject({ ok: false });
    });

    it('when keys are added over several subscribe calls, then the limit counts them all, repeats and duplicates once, and an unsubscribe frees room', async () => {
      const socket = await h.connect();
      expect(await socket.emitWithAck('subscribe', { keys: ['cum/a', 'cum/b', 'cum/a'] })).toMatchObject({ ok: true });
      expect(await socket.emitWithAck('subscribe', { keys: ['cum/b', 'cum/c', 'cum/d', 'cum/e', 'cum/e'] })).toMatchObject({ ok: true });
      expect(await socket.emitWithAck('subscribe', { keys: ['cum/a', 'cum/e'] })).toMatchObject({ ok: true });
      expect(await socket.emitWithAck('subscribe', { keys: ['cum/f'] })).toMatchObject({ ok: false });
      expect(await socket.emitWithAck('unsubscribe', { keys: ['cum/a'] })).toEqual({ ok: true });
      expect(await socket.emitWithAck('subscribe', { keys: ['cum/f'] })).toMatchObject({ ok: true });
    });

    it('when a subscription is rejected for the limit, then the socket gets updates of its earlier keys only', async () => {
      const socket = await h.connect();
      expect(await socket.emitWithAck('subscribe', { keys: keys('sock/kept', MAX_KEYS) })).toMatchObject({ ok: true });
      expect(await socket.emitWithAck('subscribe', { keys: ['sock/refused'] })).toMatchObject({ ok: false });
      const updates: StatsUpdate[] = [];
      socket.on('stats:update', (update) => updates.push(update));

      const { body } = await postJson(h.baseUrl, [
        { key: 'sock/refused', value: 1 },
        { key: 'sock/kept/0', value: 1 },
      ]);
      await waitFor(() => updates.find((update) => update.batchId === body.batchId && update.key === 'sock/kept/0'), 20_000, 'the update');
      // A round trip on the same connection: anything emitted to it before this ack has arrived.
      await socket.emitWithAck('unsubscribe', { keys: [] });
      expect(updates.map((update) => update.key)).toEqual(['sock/kept/0']);
    });

    it('when a client unsubscribes and subscribes without waiting in between, then the subscription sees the room freed', async () => {
      const socket = await h.connect();
      expect(await socket.emitWithAck('subscribe', { keys: keys('sock/first', MAX_KEYS) })).toMatchObject({ ok: true });
      const [left, joined] = await Promise.all([
        socket.emitWithAck('unsubscribe', { keys: keys('sock/first', MAX_KEYS) }),
        socket.emitWithAck('subscribe', { keys: keys('sock/second', MAX_KEYS) }),
      ]);
      expect({ left, joined: joined.ok }).toEqual({ left: { ok: true }, joined: true });
    });
  });
});

describe('page sizes at the edge, with the default limits', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ RATE_LIMIT_PER_MINUTE: '0' });
  });

  afterAll(async () => {
    await h.close();
  });

  it('when meta is exactly 4 KiB and 4 levels deep, then the point is stored with its meta intact; a byte or a level more is rejected', async () => {
    const deepest = { a: { b: { c: { d: 'leaf' } } } };
    const answer = await postJson(h.baseUrl, [
      { key: 'edge/meta', value: 1, meta: metaOfBytes(4096) },
      { key: 'edge/meta', value: 2, meta: deepest },
      { key: 'edge/meta', value: 3, meta: metaOfBytes(4097) },
      { key: 'edge/meta', value: 4, meta: { a: { b: { c: { d: { e: 'leaf' } } } } } },
    ]);
    expect(answer.status).toBe(202);
    expect(answer.body.rejected).toEqual([
      { index: 2, message: 'meta must be at most 4096 bytes when serialized' },
      { index: 3, message: 'meta must be nested at most 4 levels deep' },
    ]);
    await waitForBatch(h.baseUrl, answer.body.batchId);
    const history = await getJson(h.baseUrl, '/api/data/history?key=edge%2Fmeta');
    const metaByValue = new Map(history.body.items.map((item: { value: number; meta: unknown }) => [item.value, item.meta]));
    expect(metaByValue).toEqual(
      new Map<number, unknown>([
        [1, metaOfBytes(4096)],
        [2, deepest],
      ]),
    );
  });

  it('when meta is nested thousands of levels deep, then the point is a 400 saying the depth limit, not a 500', async () => {
    // 50 kB: under the NDJSON line limit, and twice the depth at which serializing meta used to overflow the stack.
    const levels = 10_000;
    const text = `[{"key": "edge/deep", "value": 1, "meta": ${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}}]`;
    for (const [body, headers] of [
      [text, JSON_TYPE],
      [text.slice(1, -1), NDJSON_TYPE],
    ] as const) {
      const answer = await ingest(h, body, headers);
      expect(answer.status).toBe(400);
      expect(answer.body.error.details).toEqual([{ index: 0, message: 'meta must be nested at most 4 levels deep' }]);
    }
  });

  it('when history holds 1001 records, then limit=1000 gives 1000 and a cursor to the last one; limit=1001 is a 400', async () => {
    const answer = await postJson(h.baseUrl, points('page/history', 1001));
    expect(answer.body.accepted).toBe(1001);
    await waitForBatch(h.baseUrl, answer.body.batchId);

    const first = await getJson(h.baseUrl, '/api/data/history?key=page%2Fhistory&limit=1000');
    expect({ status: first.status, items: first.body.items.length, more: typeof first.body.nextCursor }).toEqual({
      status: 200,
      items: 1000,
      more: 'string',
    });
    const second = await getJson(h.baseUrl, `/api/data/history?key=page%2Fhistory&limit=1000&cursor=${first.body.nextCursor}`);
    expect({ items: second.body.items.length, nextCursor: second.body.nextCursor }).toEqual({ items: 1, nextCursor: null });

    const over = await getJson(h.baseUrl, '/api/data/history?limit=1001');
    expect({ status: over.status, code: over.body.error?.code, message: over.body.error?.message }).toEqual({
      status: 400,
      code: 'INVALID_QUERY',
      message: 'Invalid query: limit must be an integer from 1 to 1000.',
    });
  });

  it('when the stats list is asked with limit=1000, then it is answered; limit=1001 is a 400 saying the range', async () => {
    expect((await getJson(h.baseUrl, '/api/data/stats?limit=1000')).status).toBe(200);
    const over = await getJson(h.baseUrl, '/api/data/stats?limit=1001');
    expect({ status: over.status, message: over.body.error?.message }).toEqual({
      status: 400,
      message: 'Invalid query: limit must be an integer from 1 to 1000.',
    });
  });
});
