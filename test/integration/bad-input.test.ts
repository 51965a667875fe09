import { request as httpRequest } from 'node:http';
import { createGzip, gzipSync } from 'node:zlib';
import { getJson, postJson, startHarness, waitFor, waitForBatch, type Harness } from '../support/harness';

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  body: any;
}

// Limits small enough to cross with a few points; JOB_CHUNK_SIZE 2 makes a streamed body store jobs before it is aborted.
const MAX_BODY_BYTES = 2000;
const MAX_POINTS = 5;

// What would betray the internals: stack frames, driver and library names, error class names.
const LEAKS = [/mongo/i, /ioredis/i, /\bbull\b/i, /node_modules/, /\n\s+at /, /\bat \S+ \(/, /\.[jt]s:\d+/, /\b[A-Z]\w*Error\b/];

describe('bad input, on real Redis and the MongoDB-compatible server', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ MAX_BODY_BYTES: String(MAX_BODY_BYTES), MAX_POINTS_PER_REQUEST: String(MAX_POINTS), JOB_CHUNK_SIZE: '2' });
  });

  afterAll(async () => {
    await h.close();
  });

  async function send(path: string, init: RequestInit = {}): Promise<Answer> {
    const response = await fetch(`${h.baseUrl}${path}`, init);
    const text = await response.text();
    let body: any;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: response.status, headers: response.headers, text, body };
  }

  function ingest(body: RequestInit['body'], headers: Record<string, string> = {}): Promise<Answer> {
    return send('/api/data/ingest', { method: 'POST', headers, body });
  }

  const ingestJson = (text: string, headers: Record<string, string> = {}): Promise<Answer> =>
    ingest(text, { 'content-type': 'application/json', ...headers });

  const ingestNdjson = (body: RequestInit['body'], headers: Record<string, string> = {}): Promise<Answer> =>
    ingest(body, { 'content-type': 'application/x-ndjson', ...headers });

  /** Sends `parts` as separate chunks of a streamed (chunked) body, a little apart, as a slow client would. */
  function streamed(parts: string[]): ReadableStream<Uint8Array> {
    const queue = [...parts];
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        const next = queue.shift();
        if (next === undefined) {
          controller.close();
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 30));
        controller.enqueue(new TextEncoder().encode(next));
      },
    });
  }

  function ingestStream(parts: string[], contentType: string): Promise<Answer> {
    return send('/api/data/ingest', {
      method: 'POST',
      headers: { 'content-type': contentType },
      body: streamed(parts),
      duplex: 'half',
    });
  }

  /** Runs `action` while watching the queue, to see whether a streamed body stored (delayed) jobs before it was cut. */
  async function watchDelayedJobs<T>(action: () => Promise<T>): Promise<{ result: T; mostDelayed: number }> {
    let mostDelayed = 0;
    const stop = new AbortController();
    const watcher = (async () => {
      while (!stop.signal.aborted) {
        mostDelayed = Math.max(mostDelayed, (await h.api.queue.getJobCounts()).delayed);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    try {
      const result = await action();
      return { result, mostDelayed };
    } finally {
      stop.abort();
      await watcher;
    }
  }

  async function expectQueueEmpty(): Promise<void> {
    const counts = await h.api.queue.getJobCounts();
    expect(counts).toEqual(Object.fromEntries(Object.keys(counts).map((state) => [state, 0])));
  }

  /** The contract's error body, with a message that says what to fix and nothing internal. */
  function expectError(answer: Answer, status: number, code: string, fix: RegExp): void {
    expect({ status: answer.status, code: answer.body?.error?.code }).toEqual({ status, code });
    expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
    expect(Object.keys(answer.body as object)).toEqual(['error']);
    const allowed = ['code', 'message', 'details'];
    expect(Object.keys(answer.body.error as object).filter((field) => !allowed.includes(field))).toEqual([]);
    expect(answer.body.error.message).toMatch(fix);
    for (const leak of LEAKS) expect(answer.text).not.toMatch(leak);
  }

  const point = (key: string, value: unknown = 1): Record<string, unknown> => ({ key, value });
  const ndjson = (...lines: unknown[]): string => lines.map((line) => (typeof line === 'string' ? line : JSON.stringify(line))).join('\n');

  describe('POST /api/data/ingest with a JSON body', () => {
    it.each(['{"points": [', '{points: []}', '[{"key": "bad/json", "value": 1},]', "{'points': []}", '\u0000'])(
      'when the body is malformed JSON (%p), then it is a 400 MALFORMED_JSON',
      async (text) => {
        expectError(await ingestJson(text), 400, 'MALFORMED_JSON', /not valid JSON/);
      },
    );

    it.each(['5', '"points"', 'null', 'true'])(
      'when the body is the JSON scalar %s, then it is a 400 asking for an object or array',
      async (text) => {
        const answer = await ingestJson(text);
        expect(['MALFORMED_JSON', 'MALFORMED_BODY']).toContain(answer.body?.error?.code);
        expectError(answer, 400, answer.body.error.code, /object or (an )?array/);
      },
    );

    it.each([
      ['empty', {}],
      ['a single point', point('bad/single')],
      ['"points" misspelt', { point: [point('bad/misspelt')] }],
      ['"points" not a list', { points: point('bad/not-a-list') }],
      ['"items" without a key', { items: [point('bad/items')] }],
    ])(
      'when the body is an object (%s) without a list of points, then it is a 400 MALFORMED_BODY showing the shapes',
      async (_case, body) => {
        expectError(await ingestJson(JSON.stringify(body)), 400, 'MALFORMED_BODY', /no list of points.*Send \{"points": \[\.\.\.\]\}/);
      },
    );

    it('when the body has an unknown field next to the points, then the 400 names that field', async () => {
      const answer = await ingestJson(JSON.stringify({ points: [point('bad/extra-field')], dryRun: true }));
      expectError(answer, 400, 'MALFORMED_BODY', /Unknown field\(s\): dryRun/);
    });

    it('when a request has no body, then it is a 400 MALFORMED_BODY', async () => {
      expectError(await ingest(undefined, { 'content-type': 'application/json' }), 400, 'MALFORMED_BODY', /Send \{"points"/);
    });

    it.each([
      ['{"points": []}', '{"points": []}'],
      ['a bare empty array', '[]'],
      ['the original form with no items', '{"key": "bad/legacy-empty", "items": []}'],
    ])('when the list is empty (%s), then it is a 400 NO_VALID_POINTS asking for at least one point', async (_case, text) => {
      const answer = await ingestJson(text);
      expectError(answer, 400, 'NO_VALID_POINTS', /send at least one/);
      expect(answer.body.error.details).toEqual([]);
    });

    it('when every point is invalid, then it is a 400 NO_VALID_POINTS whose details list every index with its problem', async () => {
      const answer = await ingestJson(
        JSON.stringify([
          { key: 'bad/all-1', value: 'one' },
          { key: '', value: 2 },
          { value: 3 },
          { key: 'bad/all-4', value: 4, timestamp: 'tomorrow' },
          'not a point',
        ]),
      );
      expectError(answer, 400, 'NO_VALID_POINTS', /No valid point in the batch; the first problem: point 0: value must be a number/);
      expect(answer.body.error.details).toEqual([
        { index: 0, message: 'value must be a number, not a string' },
        { index: 1, message: 'key must not be empty' },
        { index: 2, message: 'key is required' },
        { index: 3, message: expect.stringMatching(/^timestamp must be an ISO-8601/) },
        { index: 4, message: 'a point must be a JSON object' },
      ]);
    });

    it('when the body is over MAX_BODY_BYTES, then it is a 413 BODY_TOO_LARGE', async () => {
      const body = JSON.stringify({ points: [{ key: 'bad/big', value: 1, meta: { pad: 'x'.repeat(MAX_BODY_BYTES) } }] });
      expectError(await ingestJson(body), 413, 'BODY_TOO_LARGE', /over the size limit; send fewer points/);
    });

    it('when a body without Content-Length streams past MAX_BODY_BYTES, then it is a 413 BODY_TOO_LARGE', async () => {
      const pad = 'x'.repeat(400);
      const parts = [
        '{"points": [',
        ...Array.from(
          { length: 6 },
          (_, i) => `${i > 0 ? ',' : ''}{"key": "bad/chunked", "value": ${i}, "type": "${pad.slice(0, 60)}", "meta": {"p": "${pad}"}}`,
        ),
        ']}',
      ];
      expectError(await ingestStream(parts, 'application/json'), 413, 'BODY_TOO_LARGE', /over the size limit/);
    });

    it('when a small gzip body inflates past MAX_BODY_BYTES, then it is a 413 BODY_TOO_LARGE', async () => {
      const inflated = `[${' '.repeat(100 * MAX_BODY_BYTES)}]`;
      const answer = await ingest(gzipSync(inflated), { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      expectError(answer, 413, 'BODY_TOO_LARGE', /over the size limit/);
    });

    it('when a JSON body holds more than MAX_POINTS_PER_REQUEST points, then it is a 413 TOO_MANY_POINTS saying the limit', async () => {
      const points = Array.from({ length: MAX_POINTS + 1 }, (_, i) => point('bad/too-many-json', i));
      expectError(
        await ingestJson(JSON.stringify(points)),
        413,
        'TOO_MANY_POINTS',
        new RegExp(`at most ${MAX_POINTS} points; split the batch`),
      );
    });

    it.each([
      ['not gzip at all', Buffer.from('{"points": [{"key": "bad/gzip", "value": 1}]}'), 'gzip'],
      ['truncated gzip', gzipSync(JSON.stringify({ points: [point('bad/gzip-cut')] })).subarray(0, 20), 'gzip'],
      ['not deflate at all', Buffer.from('{"points": []}'), 'deflate'],
    ])('when a JSON body claims a compression it does not have (%s), then it is a 4xx, not a 500', async (_case, body, encoding) => {
      const answer = await ingest(body, { 'content-type': 'application/json', 'content-encoding': encoding });
      expectError(answer, 400, 'UNREADABLE_BODY', /could not be read; check its Content-Encoding/);
    });

    it.each(['latin1', 'utf-16le', '"UTF-16"'])(
      'when a JSON body declares the charset %s, then it is a 415 UNSUPPORTED_ENCODING',
      async (charset) => {
        const answer = await ingest(JSON.stringify([point('bad/latin1')]), { 'content-type': `application/json; charset=${charset}` });
        expectError(answer, 415, 'UNSUPPORTED_ENCODING', /Send the body as UTF-8/);
      },
    );

    it('when a JSON body holds bytes that are not UTF-8, then it is a 400 MALFORMED_JSON (not two keys merged under U+FFFD)', async () => {
      for (const byte of [0xff, 0xfe]) {
        const body = Buffer.concat([Buffer.from('[{"key":"bad/utf8-'), Buffer.from([byte]), Buffer.from('","value":1}]')]);
        expectError(await ingest(body, { 'content-type': 'application/json' }), 400, 'MALFORMED_JSON', /not valid UTF-8/);
      }
    });
  });

  describe('POST /api/data/ingest with other content types and headers', () => {
    it.each([
      ['text/plain', { 'content-type': 'text/plain' }],
      ['application/xml', { 'content-type': 'application/xml' }],
      ['no Content-Type', {}],
    ])('when the body is sent as %s, then it is a 415 UNSUPPORTED_MEDIA_TYPE naming the accepted types', async (_case, headers) => {
      const answer = await ingest(Buffer.from(JSON.stringify([point('bad/content-type')])), headers);
      expectError(answer, 415, 'UNSUPPORTED_MEDIA_TYPE', /Content-Type: application\/json or application\/x-ndjson/);
    });

    it('when the body is multipart form data, then it is a 415 UNSUPPORTED_MEDIA_TYPE', async () => {
      const form = new FormData();
      form.append('points', JSON.stringify([point('bad/multipart')]));
      expectError(await ingest(form), 415, 'UNSUPPORTED_MEDIA_TYPE', /application\/json or application\/x-ndjson/);
    });

    it.each([
      ['with a space', 'two words'],
      ['empty', ''],
      ['201 characters long', 'k'.repeat(201)],
      ['with a tab', 'a\tb'],
    ])('when the Idempotency-Key is %s, then it is a 400 INVALID_IDEMPOTENCY_KEY saying the format', async (_case, key) => {
      const answer = await ingestJson(JSON.stringify([point('bad/idempotency')]), { 'Idempotency-Key': key });
      expectError(answer, 400, 'INVALID_IDEMPOTENCY_KEY', /1-200 printable ASCII characters without spaces/);
    });
  });

  describe('POST /api/data/ingest with an NDJSON body', () => {
    it('when a streamed NDJSON body goes past MAX_POINTS_PER_REQUEST, then it is a 413 TOO_MANY_POINTS and the chunks it had stored are gone', async () => {
      const lines = Array.from({ length: MAX_POINTS + 1 }, (_, i) => `${JSON.stringify(point('bad/too-many-ndjson', i))}\n`);

      const { result, mostDelayed } = await watchDelayedJobs(() => ingestStream(lines, 'application/x-ndjson'));

      expectError(result, 413, 'TOO_MANY_POINTS', new RegExp(`at most ${MAX_POINTS} points`));
      // With JOB_CHUNK_SIZE 2 the first lines were stored as held-back jobs before the limit was crossed.
      expect(mostDelayed).toBeGreaterThan(0);
      await expectQueueEmpty();
    });

    it('when a client keeps streaming NDJSON long after the point limit, then it still gets the 413, not a reset connection', async () => {
      const lines = Array.from({ length: MAX_POINTS * 4 }, (_, i) => `${JSON.stringify(point('bad/too-many-ndjson-long', i))}\n`);
      expectError(await ingestStream(lines, 'application/x-ndjson'), 413, 'TOO_MANY_POINTS', /split the batch/);
      await expectQueueEmpty();
    });

    it('when an NDJSON body sent at once holds too many points, then it is a 413 TOO_MANY_POINTS', async () => {
      const lines = Array.from({ length: MAX_POINTS * 3 }, (_, i) => point('bad/too-many-ndjson-once', i));
      expectError(await ingestNdjson(ndjson(...lines)), 413, 'TOO_MANY_POINTS', /split the batch/);
    });

    it('when an NDJSON body streams past MAX_BODY_BYTES, then it is a 413 BODY_TOO_LARGE saying to split it, and nothing stays queued', async () => {
      const line = (i: number): string => `${JSON.stringify({ key: 'bad/ndjson-big', value: i, meta: { pad: 'x'.repeat(600) } })}\n`;

      const { result, mostDelayed } = await watchDelayedJobs(() =>
        ingestStream([line(0), line(1), line(2), line(3)], 'application/x-ndjson'),
      );

      expectError(result, 413, 'BODY_TOO_LARGE', new RegExp(`over ${MAX_BODY_BYTES} bytes; split it into several requests`));
      expect(mostDelayed).toBeGreaterThan(0);
      await expectQueueEmpty();
    });

    it('when an NDJSON body has only invalid lines, then it is a 400 NO_VALID_POINTS listing each line by index', async () => {
      const answer = await ingestNdjson(ndjson('{broken', point('bad/nd-1', 'NaN'), '', { key: 'bad/nd-2', value: 1, extra: 1 }, '5'));
      expectError(answer, 400, 'NO_VALID_POINTS', /No valid point/);
      expect(answer.body.error.details).toEqual([
        { index: 0, message: 'line is not valid JSON' },
        { index: 1, message: 'value must be a number, not a string' },
        { index: 3, message: 'unknown field(s): extra' },
        { index: 4, message: 'a point must be a JSON object' },
      ]);
    });

    it('when an NDJSON body is empty, then it is a 400 NO_VALID_POINTS', async () => {
      expectError(await ingestNdjson(''), 400, 'NO_VALID_POINTS', /send at least one/);
    });

    it.each(['br', 'compress', 'zstd', 'gzip, deflate'])(
      'when an NDJSON body has Content-Encoding %p, then it is a 415 UNSUPPORTED_ENCODING naming the supported ones',
      async (encoding) => {
        const answer = await ingestNdjson(ndjson(point('bad/encoding')), { 'content-encoding': encoding });
        expectError(answer, 415, 'UNSUPPORTED_ENCODING', /uncompressed or with Content-Encoding gzip or deflate/);
      },
    );

    it('when an NDJSON body declares a charset other than UTF-8, then it is a 415 UNSUPPORTED_ENCODING', async () => {
      const answer = await ingestNdjson(ndjson(point('bad/charset')), { 'content-type': 'application/x-ndjson; charset=latin1' });
      expectError(answer, 415, 'UNSUPPORTED_ENCODING', /Send NDJSON as UTF-8/);
    });

    it.each([
      ['not gzip at all', 'gzip'],
      ['not deflate at all', 'deflate'],
    ])('when an NDJSON body claims a compression it does not have (%s), then it is a 4xx, not a 500', async (_case, encoding) => {
      const answer = await ingestNdjson(Buffer.from(ndjson(point('bad/nd-gzip'))), { 'content-encoding': encoding });
      expect(answer.status).toBeGreaterThanOrEqual(400);
      expect(answer.status).toBeLessThan(500);
      expectError(answer, answer.status, answer.body?.error?.code, /Content-Encoding|compress|gzip|deflate/i);
    });
  });

  describe('points with dangerous or impossible values', () => {
    it.each([
      ['a "$"-prefixed meta field', '{"key": "bad/dollar", "value": 1, "meta": {"$where": "sleep(1000)"}}', '$where'],
      ['a nested "$" meta field', '{"key": "bad/dollar-deep", "value": 1, "meta": {"a": {"$gt": ""}}}', '$gt'],
      ['a "$" field in a meta array', '{"key": "bad/dollar-array", "value": 1, "meta": {"list": [{"$set": 1}]}}', '$set'],
      ['a dotted meta field', '{"key": "bad/dotted", "value": 1, "meta": {"a.b": 1}}', 'a.b'],
      ['a "__proto__" meta field', '{"key": "bad/proto", "value": 1, "meta": {"__proto__": {"isAdmin": true}}}', '__proto__'],
      ['a nested "__proto__" meta field', '{"key": "bad/proto-deep", "value": 1, "meta": {"a": {"__proto__": {"x": 1}}}}', '__proto__'],
      ['a "constructor" meta field', '{"key": "bad/constructor", "value": 1, "meta": {"constructor": {"prototype": {}}}}', 'constructor'],
    ])(
      'when a point has %s (raw JSON text), then it is a 400 naming the field and nothing reaches the database',
      async (_case, raw, field) => {
        const answer = await ingestJson(`{"points": [${raw}]}`);
        expectError(answer, 400, 'NO_VALID_POINTS', /No valid point/);
        expect(answer.body.error.details).toEqual([
          { index: 0, message: `meta field name "${field}" is not allowed (no leading "$", no ".", no __proto__/constructor/prototype)` },
        ]);
      },
    );

    it('when a point has a top-level "__proto__" field (raw JSON text), then it is rejected naming the field', async () => {
      const answer = await ingestJson('[{"key": "bad/top-proto", "value": 1, "__proto__": {"key": "other"}}]');
      expectError(answer, 400, 'NO_VALID_POINTS', /unknown field\(s\): __proto__/);
    });

    it.each([
      ['key', '{"key": {"$gt": ""}, "value": 1}', /^key must be a string/],
      ['value', '{"key": "bad/op-value", "value": {"$inc": 1}}', /^value must be a number/],
      ['timestamp', '{"key": "bad/op-ts", "value": 1, "timestamp": {"$gt": 0}}', /^timestamp must be an ISO-8601/],
    ])('when the %s is a MongoDB operator object, then the point is rejected', async (_field, raw, message) => {
      const answer = await ingestJson(`[${raw}]`);
      expectError(answer, 400, 'NO_VALID_POINTS', /No valid point/);
      expect(answer.body.error.details).toEqual([{ index: 0, message: expect.stringMatching(message) }]);
    });

    it.each(['NaN', 'Infinity', '-Infinity', '1e400'])(
      'when the value is the string %p, then it is rejected as not a number',
      async (value) => {
        const answer = await ingestJson(JSON.stringify([point('bad/nan-string', value)]));
        expectError(answer, 400, 'NO_VALID_POINTS', /value must be a number, not a string/);
      },
    );

    it.each(['1e400', '-1e400'])(
      'when the value is the JSON number %s (Infinity once parsed), then it is rejected as not finite',
      async (literal) => {
        const answer = await ingestJson(`[{"key": "bad/huge", "value": ${literal}}]`);
        expectError(answer, 400, 'NO_VALID_POINTS', /value must be a finite number/);
        expect(answer.body.error.details).toEqual([{ index: 0, message: 'value must be a finite number' }]);
      },
    );

    it('when an NDJSON line has the value 1e400, then that line is rejected as not finite', async () => {
      const answer = await ingestNdjson('{"key": "bad/nd-huge", "value": 1e400}\n');
      expectError(answer, 400, 'NO_VALID_POINTS', /value must be a finite number/);
    });

    it('when a timestamp is more than 24 h in the future, then it is rejected saying the limit', async () => {
      const answer = await ingestJson(JSON.stringify([{ key: 'bad/future', value: 1, timestamp: Date.now() + 25 * 3600 * 1000 }]));
      expectError(answer, 400, 'NO_VALID_POINTS', /not be more than 24 hours in the future/);
    });

    it('when meta is nested 5 levels deep, then it is a 400 saying the depth limit', async () => {
      const answer = await ingestJson(
        JSON.stringify([{ key: 'bad/meta-size', value: 1, meta: { nested: { a: { b: { c: { d: 1 } } } } } }]),
      );
      expectError(answer, 400, 'NO_VALID_POINTS', /meta must be nested at most 4 levels deep/);
    });
  });

  describe('queries', () => {
    it.each([
      ['GET', '/api/data/nothing-here'],
      ['GET', '/api/nope'],
      ['POST', '/api/data/stats'],
      ['DELETE', '/api/data/ingest'],
      ['PUT', '/api/data/batches/abc'],
    ])('when %s %s is requested, then it is a 404 NOT_FOUND pointing to the API reference', async (method, path) => {
      expectError(await send(path, { method }), 404, 'NOT_FOUND', /No route for .*; see the API reference/);
    });

    it('when the stats of a key never seen are asked, then it is a 404 naming the key, in both forms', async () => {
      expectError(await send('/api/data/stats/bad%2Fnever-seen'), 404, 'NOT_FOUND', /Key "bad\/never-seen" was not found/);
      expectError(await send('/api/data/stats?key=bad%2Fnever-seen'), 404, 'NOT_FOUND', /Key "bad\/never-seen" was not found/);
    });

    it('when the stats of a key over 200 characters are asked, then it is a 400 saying the limit, in both forms', async () => {
      const key = 'k'.repeat(201);
      expectError(await send(`/api/data/stats/${key}`), 400, 'INVALID_QUERY', /key must be at most 200 characters/);
      expectError(await send(`/api/data/stats?key=${key}`), 400, 'INVALID_QUERY', /key must be at most 200 characters/);
    });

    it('when the stats key holds a control character, then it is a 400 saying so', async () => {
      expectError(await send('/api/data/stats/a%00b'), 400, 'INVALID_QUERY', /key must not contain control characters/);
    });

    it('when the stats key is not valid percent-encoding, then it is a 400 about the URL, not about the body', async () => {
      const answer = await send('/api/data/stats/%E0%A4%A');
      expect(answer.status).toBe(400);
      for (const leak of LEAKS) expect(answer.text).not.toMatch(leak);
      expect(answer.body.error.message).toMatch(/URL|path|percent/i);
      expect(answer.body.error.message).not.toMatch(/request body/);
    });

    it.each([
      ['limit=0', /limit must be an integer from 1 to 1000/],
      ['limit=1001', /limit must be an integer from 1 to 1000/],
      ['limit=abc', /limit must be an integer from 1 to 1000/],
      ['sort=asc', /unknown parameter\(s\): sort/],
      ['from=2026-01-02&to=2026-01-01', /from must not be after to/],
      ['from=yesterday', /from must be an ISO-8601 date or epoch milliseconds/],
      ['batchId=%7B%22%24ne%22%3Anull%7D', /batchId must be a batch id as returned by ingest/],
      ['key=', /^Invalid query: key must not be empty\.$/],
      ['from=9999999999999999', /from must be an ISO-8601 date or epoch milliseconds/],
      ['cursor=', /cursor must not be empty/],
    ])('when history is asked with %s, then it is a 400 INVALID_QUERY saying what is wrong', async (query, fix) => {
      expectError(await send(`/api/data/history?${query}`), 400, 'INVALID_QUERY', fix);
    });

    it.each(['key=a&key=b', 'limit=1&limit=2', 'key[$ne]=x', 'key[]=a'])(
      'when a history parameter is repeated or nested (%s), then it is a 400 INVALID_QUERY',
      async (query) => {
        expectError(await send(`/api/data/history?${query}`), 400, 'INVALID_QUERY', /must be given once|unknown parameter/);
      },
    );

    it.each(['/api/data/history?__proto__=x', '/api/data/stats?__proto__=x', '/api/data/history?constructor=x&key=a'])(
      'when %s is asked (a parameter named like an object internal), then it is a 400 INVALID_QUERY naming it like any unknown one',
      async (path) => {
        expectError(await send(path), 400, 'INVALID_QUERY', /unknown parameter\(s\): (__proto__|constructor)/);
      },
    );

    it.each(['garbage', 'eyJ0IjoxfQ', Buffer.from('{"t":1,"id":{"$gt":""}}').toString('base64url')])(
      'when history is asked with the cursor %p, then it is a 400 INVALID_CURSOR saying to start again',
      async (cursor) => {
        expectError(await send(`/api/data/history?cursor=${cursor}`), 400, 'INVALID_CURSOR', /start again without it/);
      },
    );

    it.each([
      ['limit=0', 'INVALID_QUERY', /limit must be an integer from 1 to 1000/],
      ['prefix=a&prefix=b', 'INVALID_QUERY', /"prefix" must be given once/],
      ['order=desc', 'INVALID_QUERY', /unknown parameter\(s\): order/],
      ['cursor=garbage', 'INVALID_CURSOR', /start again without it/],
    ])('when the stats list is asked with %s, then it is a 400 %s', async (query, code, fix) => {
      expectError(await send(`/api/data/stats?${query}`), 400, code, fix);
    });

    it.each([
      ['an unknown id', 'lq1x2y3z0123456789abcdef'],
      ['an upper-case id', 'NOT-A-BATCH'],
      ['a very long id', 'a'.repeat(300)],
      ['an id with an operator', '%7B%22%24ne%22%3A1%7D'],
      ['an encoded path', '..%2F..%2Fetc'],
    ])('when the status of %s is asked, then it is a 404 NOT_FOUND', async (_case, id) => {
      expectError(await send(`/api/data/batches/${id}`), 404, 'NOT_FOUND', /This batch was not found/);
    });
  });

  describe('after every bad request above', () => {
    it('then nothing was queued, no batch is visible, and nothing reached the database or history', async () => {
      await expectQueueEmpty();

      const batchKeys = (await h.redis.keys(`${h.config.QUEUE_NAME}:batch:*`)).filter((key) => !key.endsWith(':done'));
      for (const key of batchKeys) {
        const batchId = key.slice(`${h.config.QUEUE_NAME}:batch:`.length);
        expect({ batchId, status: (await getJson(h.baseUrl, `/api/data/batches/${batchId}`)).status }).toEqual({ batchId, status: 404 });
      }

      for (const collection of ['stats', 'history', 'processedrecords']) {
        expect({ collection, documents: await h.db.collection(collection).countDocuments() }).toEqual({ collection, documents: 0 });
      }
      for (const { name } of await h.db.listCollections({ name: /^statshards/ }, { nameOnly: true }).toArray()) {
        expect({ name, withKeys: await h.db.collection(name).countDocuments({ k: { $exists: true } }) }).toEqual({ name, withKeys: 0 });
      }

      const history = await getJson(h.baseUrl, '/api/data/history?limit=1000');
      expect(history).toEqual({ status: 200, body: { items: [], nextCursor: null } });
      const stats = await getJson(h.baseUrl, '/api/data/stats');
      expect(stats).toEqual({ status: 200, body: { items: [], nextCursor: null } });
    });
  });

  describe('a batch that mixes valid and invalid points', () => {
    it('when a request with an Idempotency-Key was rejected, then the same key is free for the corrected request', async () => {
      const headers = { 'Idempotency-Key': `bad-input-retry-${Date.now()}` };
      const rejected = await ingestJson('{"points": [', headers);
      expect(rejected.status).toBe(400);

      const corrected = await postJson(h.baseUrl, [point('mixed/retried', 3)], headers);
      expect(corrected.status).toBe(202);
      expect(corrected.headers.get('idempotent-replayed')).toBeNull();
      await waitForBatch(h.baseUrl, corrected.body.batchId);
    });

    it('when valid and invalid points are sent together, then the valid ones are stored and exactly the invalid indices are rejected', async () => {
      const text = `[
        {"key": "mixed/ok", "value": 1, "timestamp": "2026-01-01T00:00:00Z"},
        {"key": "mixed/ok", "value": 2, "meta": {"$where": "1"}},
        {"key": "mixed/ok", "value": 3, "timestamp": 1767225601000, "meta": {"room": "a"}},
        {"key": "mixed/ok", "value": "NaN"},
        {"key": "mixed/ok", "value": 5, "meta": {"__proto__": {"x": 1}}}
      ]`;
      const answer = await ingestJson(text);
      expect(answer.status).toBe(202);
      expect(answer.body).toEqual({
        batchId: expect.any(String),
        accepted: 2,
        rejected: [
          { index: 1, message: expect.stringContaining('"$where" is not allowed') },
          { index: 3, message: 'value must be a number, not a string' },
          { index: 4, message: expect.stringContaining('"__proto__" is not allowed') },
        ],
      });

      const batch = await waitForBatch(h.baseUrl, answer.body.batchId);
      expect(batch).toMatchObject({ status: 'completed', points: 2, processedPoints: 2 });
      const history = await getJson(h.baseUrl, '/api/data/history?key=mixed%2Fok');
      expect(history.body.items.map((item: { value: number }) => item.value)).toEqual([3, 1]);
      expect(history.body.items[0].meta).toEqual({ room: 'a' });
      const stats = await getJson(h.baseUrl, '/api/data/stats/mixed%2Fok');
      expect(stats.body).toMatchObject({ count: 2, sum: 4, lastValue: 3 });
    });
  });
});

describe('a compressed NDJSON upload that the client aborts', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ JOB_CHUNK_SIZE: '2' });
  });

  afterAll(async () => {
    await h.close();
  });

  it('when the client goes away mid-body, then the request is cleaned up and its Idempotency-Key is free again', async () => {
    const idempotencyKey = `aborted-${Date.now()}`;
    const url = new URL(`${h.baseUrl}/api/data/ingest`);
    const gzip = createGzip();
    const request = httpRequest({
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip', 'idempotency-key': idempotencyKey },
    });
    request.on('error', () => undefined);
    gzip.pipe(request);
    for (let i = 0; i < 10; i += 1) gzip.write(`${JSON.stringify({ key: 'aborted', value: i })}\n`);
    gzip.flush();
    // Let the server read a part of the body and store its first chunks, then vanish.
    await new Promise((resolve) => setTimeout(resolve, 300));
    request.destroy();

    const retried = await waitFor(
      async () => {
        const answer = await postJson(h.baseUrl, [{ key: 'aborted', value: 1 }], { 'Idempotency-Key': idempotencyKey });
        return answer.status === 409 ? undefined : answer;
      },
      10_000,
      'the aborted request to release its Idempotency-Key',
    );
    expect(retried.status).toBe(202);
    await waitForBatch(h.baseUrl, retried.body.batchId);
    expect((await getJson(h.baseUrl, '/api/data/stats/aborted')).body).toMatchObject({ count: 1, sum: 1 });
  });
});
