import { request as httpRequest, type OutgoingHttpHeaders } from 'node:http';
import { deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { getJson, postJson, startHarness, waitForBatch, type Harness } from '../support/harness';
import { hostileValueArb, labelledItemArb, propertySeed, toJsonText } from '../support/hostile-input';

const seed = propertySeed('random-requests');
const REQUESTS = 2000;
// Small, so that a random body crosses it now and then.
const MAX_BODY_BYTES = 64 * 1024;
const MAX_POINTS = 50;

// What would betray the internals in a response: stack frames, paths, driver and library names, error classes.
const LEAKS = [
  '    at ',
  'node_modules',
  '/src/',
  'Mongo',
  'mongoose',
  'Bull',
  'ioredis',
  'ECONNREFUSED',
  'TypeError',
  'RangeError',
  'SyntaxError',
];

interface RandomRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  body?: Buffer;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** One request on a connection of its own, so a request that breaks HTTP framing cannot spill into the next. */
function send({ method, path, headers, body }: RandomRequest, timeoutMs = 15_000, baseUrl: string): Promise<Answer> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      { host: url.hostname, port: url.port, method, path, headers: headers as OutgoingHttpHeaders, agent: false, timeout: timeoutMs },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          resolve({ status: response.statusCode ?? 0, headers: response.headers, text: Buffer.concat(chunks).toString('utf8') });
        });
        response.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.on('error', reject);
    request.end(body);
  });
}

const printable = (maxLength: number): fc.Arbitrary<string> =>
  fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code)), maxLength });

// Random text never spells a leak word itself, so an echo of the request cannot look like a leak.
const noLeakWord = (text: string): boolean => !LEAKS.some((word) => text.includes(word.trim()));

const percentGarbage = fc.constantFrom(
  '%',
  '%zz',
  '%E0%A4%A',
  '%00',
  '%2e%2e',
  '..',
  '%2F',
  '%C0%AF',
  '%ED%A0%80',
  '%FF',
  '%%',
  '%u0041',
  '+',
  '%20',
);
const segmentArb: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 20 }).filter(noLeakWord).map(encodeURIComponent),
  fc.string({ unit: 'grapheme', maxLength: 6 }).filter(noLeakWord).map(encodeURIComponent),
  percentGarbage,
  fc.array(percentGarbage, { minLength: 1, maxLength: 4 }).map((parts) => parts.join('x')),
  fc.integer({ min: 190, max: 6000 }).map((length) => 'k'.repeat(length)),
  fc.constantFrom('lq1x2y3z0123456789abcdef', 'sensor-7%2Ftemp', '__proto__', 'constructor', '%24where', '%7B%22%24ne%22%3A1%7D', ''),
);

const pathArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '/api/data/ingest',
    '/api/data/stats',
    '/api/data/history',
    '/healthz',
    '/readyz',
    '/metrics',
    '/test-socket.html',
    '/',
    '/api',
    '/api/data',
    '/api/data/',
    '/api/data/stats/',
    '//api/data/stats',
    '/API/DATA/STATS',
    '/api/data/ingest/',
    '/api/data/batches/',
    '/ws/',
  ),
  segmentArb.map((segment) => `/api/data/stats/${segment}`),
  segmentArb.map((segment) => `/api/data/batches/${segment}`),
  fc.array(segmentArb, { minLength: 1, maxLength: 4 }).map((segments) => `/${segments.join('/')}`),
  fc.array(segmentArb, { minLength: 1, maxLength: 2 }).map((segments) => `/api/data/${segments.join('/')}`),
);

const queryValueArb: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 20 }).filter(noLeakWord).map(encodeURIComponent),
  percentGarbage,
  fc.constantFrom('', '0', '1', '100', '1000', '1001', '-1', '1e3', '1.5', '9999999999999999', 'NaN', 'true', 'null'),
  fc.constantFrom('2026-01-01', '2026-02-30', '2026-01-01T00:00:00Z', '1700000000000', 'yesterday'),
  fc.constantFrom('eyJ0IjoxfQ', 'eyJrIjoiYSJ9', Buffer.from('{"t":1,"id":{"$gt":""}}').toString('base64url')),
  fc.integer({ min: 200, max: 9000 }).map((length) => 'x'.repeat(length)),
);

const queryNameArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('key', 'prefix', 'limit', 'cursor', 'from', 'to', 'batchId', 'jobs'),
  fc.constantFrom(
    'a[]',
    'a[b]',
    'key[]',
    'key[$ne]',
    'limit[]',
    'limit[0]',
    '__proto__',
    'constructor',
    '__proto__[x]',
    '$where',
    'a.b',
    '',
  ),
  fc.string({ maxLength: 10 }).filter(noLeakWord).map(encodeURIComponent),
);

const queryArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 2, arbitrary: fc.constant('') },
  {
    weight: 5,
    arbitrary: fc
      .array(fc.tuple(queryNameArb, queryValueArb, fc.constantFrom('=', '', '==')), { minLength: 1, maxLength: 5 })
      .map((pairs) => `?${pairs.map(([name, value, sign]) => `${name}${sign}${sign === '' ? '' : value}`).join('&')}`),
  },
  { weight: 1, arbitrary: fc.constantFrom('?', '?&&&', '?=', '?key=a&key=b', '?limit=1&limit=2', '?%', '?key=%E0%A4%A') },
);

const contentTypeArb = fc.constantFrom(
  'application/json',
  'application/json',
  'application/x-ndjson',
  'application/x-ndjson',
  'application/json; charset=utf-8',
  'application/json; charset=latin1',
  'application/x-ndjson; charset=utf-16',
  'application/json; ====',
  'APPLICATION/JSON',
  'application/vnd.api+json',
  'text/plain',
  'text/html',
  'multipart/form-data; boundary=x',
  'application/x-www-form-urlencoded',
  '*/*',
  '',
);

type BodyKind = 'json' | 'ndjson' | 'other';

/** A body, and how it should be encoded: some claim an encoding they do not have. */
const bodyArb: fc.Arbitrary<{ kind: BodyKind; bytes: Buffer }> = fc.oneof(
  fc.array(labelledItemArb(Date.now(), { slackMs: 3_600_000 }), { maxLength: 8 }).map((items) => ({
    kind: 'json' as const,
    bytes: Buffer.from(toJsonText({ points: items.map(({ raw }) => raw) })),
  })),
  fc.array(labelledItemArb(Date.now(), { slackMs: 3_600_000 }), { maxLength: 8 }).map((items) => ({
    kind: 'ndjson' as const,
    bytes: Buffer.from(items.map(({ raw }) => toJsonText(raw)).join('\n')),
  })),
  hostileValueArb.map((value) => ({ kind: 'json' as const, bytes: Buffer.from(toJsonText(value)) })),
  fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ kind: 'other' as const, bytes: Buffer.from(bytes) })),
  fc.string({ maxLength: 100 }).map((text) => ({ kind: 'other' as const, bytes: Buffer.from(text) })),
  fc.constantFrom(MAX_BODY_BYTES - 10, MAX_BODY_BYTES + 1, MAX_BODY_BYTES * 3).map((size) => ({
    kind: 'json' as const,
    bytes: Buffer.from(`[${' '.repeat(Math.max(0, size - 2))}]`),
  })),
  fc.constantFrom(MAX_POINTS, MAX_POINTS + 1).map((count) => ({
    kind: 'json' as const,
    bytes: Buffer.from(JSON.stringify(Array.from({ length: count }, (_, i) => ({ key: 'random/limit', value: i })))),
  })),
  fc.constant({ kind: 'other' as const, bytes: Buffer.alloc(0) }),
);

const encodingArb = fc.constantFrom('none', 'none', 'none', 'gzip', 'deflate', 'gzip-claimed', 'br-claimed', 'unknown', 'gzip, gzip');

const headerArb: fc.Arbitrary<[string, string]> = fc.oneof(
  fc.tuple(fc.constant('Idempotency-Key'), fc.oneof(printable(30), printable(250), fc.constantFrom('', 'two words', 'a\tb'))),
  fc.tuple(fc.constant('X-Request-Id'), fc.oneof(printable(20), fc.constant('x'.repeat(300)))),
  fc.tuple(fc.constant('Accept'), fc.constantFrom('*/*', 'text/html', 'application/xml', 'garbage', '')),
  fc.tuple(fc.constant('Range'), fc.constantFrom('bytes=0-10', 'bytes=999999-', 'bytes=garbage', 'bytes=5-1', 'lines=1-2')),
  fc.tuple(fc.constant('If-None-Match'), fc.constantFrom('*', '"x"', 'garbage')),
  fc.tuple(fc.constant('If-Match'), fc.constantFrom('*', '"x"', 'garbage')),
  fc.tuple(fc.constant('If-Modified-Since'), fc.constantFrom('garbage', 'Thu, 01 Jan 2099 00:00:00 GMT')),
  fc.tuple(fc.constant('Origin'), fc.constantFrom('http://evil.example', 'null', 'garbage')),
  fc.tuple(fc.constant('Authorization'), fc.constantFrom('Bearer x', 'Basic Zm9vOmJhcg==', 'garbage')),
  fc.tuple(fc.constant('X-API-Key'), printable(40)),
  fc.tuple(fc.constant('X-Forwarded-For'), fc.constantFrom('1.2.3.4', 'garbage, ::1', '')),
  fc.tuple(
    printable(15).filter((name) => /^[A-Za-z0-9-]+$/.test(name)),
    printable(50),
  ),
);

/** Content-Length values that a broken client may send; only values a server can finish reading (not more than the body). */
const contentLengthArb = fc.constantFrom('abc', '-1', '1.5', '0x10', '99999999999999999999', '1, 2', 'shorter', '0');

/** `arbitrary` once in `every` requests, otherwise nothing. */
const rarely = <T>(arbitrary: fc.Arbitrary<T>, every: number): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: every - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary });

const readPathArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('/api/data/stats', '/api/data/history', '/healthz', '/readyz', '/metrics', '/test-socket.html'),
  segmentArb.map((segment) => `/api/data/stats/${segment}`),
  segmentArb.map((segment) => `/api/data/batches/${segment}`),
);

/** Most requests use a route as intended (POST to ingest, GET elsewhere), so they get past routing; the rest are anything. */
const routeArb: fc.Arbitrary<{ method: string; path: string }> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ method: 'POST', path: '/api/data/ingest' }) },
  { weight: 3, arbitrary: fc.record({ method: fc.constantFrom('GET', 'GET', 'GET', 'HEAD'), path: readPathArb }) },
  {
    weight: 3,
    arbitrary: fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'PURGE'),
      path: pathArb,
    }),
  },
);

const requestArb: fc.Arbitrary<RandomRequest> = fc
  .record({
    route: routeArb,
    query: queryArb,
    contentType: fc.option(contentTypeArb, { nil: undefined }),
    body: fc.option(bodyArb, { nil: undefined, freq: 4 }),
    encoding: encodingArb,
    headers: fc.array(headerArb, { maxLength: 3 }),
    contentLength: rarely(contentLengthArb, 12),
    expect: rarely(fc.constantFrom('100-continue', 'garbage'), 40),
  })
  .map(({ route: { method, path }, query, contentType, body, encoding, headers, contentLength, expect: expectation }) => {
    const all: Record<string, string | string[]> = Object.fromEntries(headers);
    if (contentType !== undefined) all['Content-Type'] = contentType;
    else if (body?.kind === 'json') all['Content-Type'] = 'application/json';
    else if (body?.kind === 'ndjson') all['Content-Type'] = 'application/x-ndjson';
    let bytes = body?.bytes;
    if (bytes !== undefined && encoding !== 'none') {
      if (encoding === 'gzip') bytes = gzipSync(bytes);
      if (encoding === 'deflate') bytes = deflateSync(bytes);
      const names: Record<string, string> = {
        gzip: 'gzip',
        deflate: 'deflate',
        'gzip-claimed': 'gzip',
        'br-claimed': 'br',
        unknown: 'x-unknown',
      };
      all['Content-Encoding'] = names[encoding] ?? encoding;
    }
    if (contentLength !== undefined) {
      all['Content-Length'] = contentLength === 'shorter' ? String(Math.floor((bytes?.length ?? 0) / 2)) : contentLength;
    }
    if (expectation !== undefined) all.Expect = expectation;
    return { method, path: `${path}${query}`, headers: all, body: bytes };
  });

/** Error bodies must be the contract's {"error": {"code", "message", "details"?}}; returns what is wrong, if anything. */
function errorShapeProblem(text: string): string | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 'the error body is not JSON';
  }
  if (typeof body !== 'object' || body === null || Object.keys(body).join() !== 'error') return 'the body is not {"error": ...}';
  const { error } = body as { error: unknown };
  if (typeof error !== 'object' || error === null) return 'error is not an object';
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code !== 'string' || !/^[A-Z][A-Z0-9_]*$/.test(code)) return 'error.code is not UPPER_SNAKE';
  if (typeof message !== 'string' || message.length === 0) return 'error.message is not a sentence';
  const extra = Object.keys(error).filter((field) => !['code', 'message', 'details'].includes(field));
  return extra.length > 0 ? `error has unknown fields ${extra.join(', ')}` : undefined;
}

describe('random requests at the running API', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({
      MAX_BODY_BYTES: String(MAX_BODY_BYTES),
      MAX_POINTS_PER_REQUEST: String(MAX_POINTS),
      RATE_LIMIT_PER_MINUTE: '0',
    });
  });

  afterAll(async () => {
    await h.close();
  });

  it(`when ${REQUESTS} random requests hit every route with random methods, headers, queries and bodies, then none is a 5xx, every error has the contract's shape and nothing internal leaks`, async () => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(requestArb, async (request) => {
        const answer = await send(request, 15_000, h.baseUrl);
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        expect(answer.status).toBeLessThan(500);
        for (const word of LEAKS) expect(answer.text).not.toContain(word);
        // HEAD answers have no body; /ws belongs to Socket.io, whose handshake errors follow its own protocol.
        if (answer.status >= 400 && answer.status !== 429 && request.method !== 'HEAD' && !request.path.startsWith('/ws')) {
          expect({ status: answer.status, problem: errorShapeProblem(answer.text) }).toEqual({ status: answer.status, problem: undefined });
          expect(answer.headers['content-type']).toMatch(/^application\/json/);
        }
      }),
      // Shrinking a failure sends more requests; stop in time to report it within Jest's timeout.
      { seed, numRuns: REQUESTS, plugins: [fc.interruptAfterTimeLimit(50_000, { failOnInterrupt: true })] },
    );
    process.stderr.write(`[random-requests] statuses: ${JSON.stringify(Object.fromEntries([...statuses].sort(([a], [b]) => a - b)))}\n`);
    // The mix reached the API's main answers, not only its 404s.
    for (const status of [200, 202, 400, 404, 413, 415])
      expect({ status, seen: (statuses.get(status) ?? 0) > 0 }).toEqual({ status, seen: true });
  });

  it('when the random requests are over, then the process is healthy and a valid batch is accepted and counted', async () => {
    expect(await getJson(h.baseUrl, '/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
    expect((await getJson(h.baseUrl, '/readyz')).status).toBe(200);
    const key = `random/after-${seed}`;
    const answer = await postJson(h.baseUrl, [
      { key, value: 2 },
      { key, value: 3 },
    ]);
    expect(answer).toMatchObject({ status: 202, body: { accepted: 2, rejected: [] } });
    await waitForBatch(h.baseUrl, answer.body.batchId, 60_000);
    expect((await getJson(h.baseUrl, `/api/data/stats?key=${encodeURIComponent(key)}`)).body).toMatchObject({ count: 2, sum: 5 });
  });
});
