import { request as httpRequest, type ClientRequest } from 'node:http';
import { connect as tcpConnect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { io as connectSocket } from 'socket.io-client';
import { createApiComponents } from '../../src/composition';
import { createLogger } from '../../src/logger';
import { postJson, startHarness, waitFor, waitForBatch, type Harness, type TestSocket } from '../support/harness';

const INGEST_KEY = 'ingest-key-0123456789abcdef';
const OTHER_INGEST_KEY = 'ingest-key-fedcba9876543210';
const READ_KEY = 'read-key-0123456789abcdef';

const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });

async function get(baseUrl: string, path: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${baseUrl}${path}`, { headers });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text.startsWith('{') ? JSON.parse(text) : text };
}

/** Connects a Socket.io client and resolves with it, or rejects with the server's refusal. */
function openSocket(baseUrl: string, options: { token?: string; headers?: Record<string, string> }): Promise<TestSocket> {
  const socket: TestSocket = connectSocket(baseUrl, {
    path: '/ws',
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    auth: options.token === undefined ? {} : { token: options.token },
    extraHeaders: options.headers,
  });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (error) => {
      socket.disconnect();
      reject(error);
    });
  });
}

/** Starts an NDJSON upload and leaves it open: the request stays in flight until `finish`. */
function openUpload(baseUrl: string, headers: Record<string, string>, firstLines: string) {
  const url = new URL('/api/data/ingest', baseUrl);
  let req: ClientRequest;
  const response = new Promise<{ status: number; body: any }>((resolve, reject) => {
    req = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.write(firstLines);
  });
  return { response, finish: (rest: string) => req.end(rest) };
}

describe('API keys', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({
      INGEST_API_KEYS: `${INGEST_KEY}, ${OTHER_INGEST_KEY}`,
      READ_API_KEYS: READ_KEY,
      RATE_LIMIT_PER_MINUTE: '0',
    });
  });

  afterAll(async () => {
    await h.close();
  });

  const points = (key: string, ...values: number[]) => ({ points: values.map((value) => ({ key, value })) });

  it('when ingest has no key, then it is a 401 that says how to send one, with WWW-Authenticate, and nothing is queued', async () => {
    const answer = await postJson(h.baseUrl, points('auth/none', 1));
    expect(answer.status).toBe(401);
    expect(answer.headers.get('www-authenticate')).toBe('Bearer');
    expect(answer.body.error).toEqual({
      code: 'UNAUTHORIZED',
      message: expect.stringMatching(/Authorization: Bearer <key> \(or Token <key>\) or X-API-Key/),
    });
    expect(await h.api.queue.count()).toBe(0);
  });

  it.each(['/api/data/INGEST', '/api/data/ingest/', '/api/data/Ingest/'])(
    'when ingest is reached as %s with a read key, then it still needs an ingest key (403) and nothing is queued',
    async (route) => {
      const answer = await fetch(`${h.baseUrl}${route}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...bearer(READ_KEY) },
        body: JSON.stringify(points('auth/spelling', 1)),
      });
      expect(answer.status).toBe(403);
      expect(await h.api.queue.count()).toBe(0);
    },
  );

  it.each([
    ['an unknown key', 'not-a-key'],
    ['a prefix of a real key', INGEST_KEY.slice(0, -1)],
    ['a real key with a character more', `${INGEST_KEY}0`],
    ['a real key in another case', INGEST_KEY.toUpperCase()],
  ])('when ingest sends %s, then it is a 401 saying the key is not valid', async (_what, key) => {
    const answer = await postJson(h.baseUrl, points('auth/wrong', 1), bearer(key));
    expect(answer.status).toBe(401);
    expect(answer.body.error).toEqual({ code: 'UNAUTHORIZED', message: 'The API key is not valid; check it, or ask for a new one.' });
  });

  it('when ingest sends an ingest key as Bearer (any case of the scheme) or as X-API-Key, then each batch is accepted and counted', async () => {
    const answers = [
      await postJson(h.baseUrl, points('auth/ok', 1), bearer(INGEST_KEY)),
      await postJson(h.baseUrl, points('auth/ok', 2), { authorization: `bearer ${OTHER_INGEST_KEY}` }),
      await postJson(h.baseUrl, points('auth/ok', 4), { 'x-api-key': INGEST_KEY }),
    ];
    expect(answers.map((answer) => answer.status)).toEqual([202, 202, 202]);
    for (const answer of answers) await waitForBatch(h.baseUrl, answer.body.batchId, 30_000, bearer(READ_KEY));
    expect((await get(h.baseUrl, '/api/data/stats/auth%2Fok', bearer(READ_KEY))).body).toMatchObject({ count: 3, sum: 7 });
  });

  it('when ingest sends a read key, then it is a 403 saying the key may only read', async () => {
    const answer = await postJson(h.baseUrl, points('auth/read-only', 1), bearer(READ_KEY));
    expect(answer.status).toBe(403);
    expect(answer.body.error).toEqual({ code: 'FORBIDDEN', message: expect.stringMatching(/may only read/) });
  });

  it.each([
    '/api/data/stats/auth%2Fok',
    '/api/data/stats?key=auth%2Fok',
    '/api/data/stats',
    '/api/data/history?key=auth%2Fok',
    '/api/data/batches/none',
  ])('when %s is read without a key, then it is a 401; with a read key or an ingest key it answers', async (path) => {
    expect((await get(h.baseUrl, path)).status).toBe(401);
    expect((await get(h.baseUrl, path, bearer('wrong'))).status).toBe(401);
    for (const key of [READ_KEY, INGEST_KEY]) expect([200, 404]).toContain((await get(h.baseUrl, path, { 'x-api-key': key })).status);
  });

  it('when health, readiness and metrics are probed without a key, then they answer (they hold no data)', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics']) expect((await get(h.baseUrl, path)).status).toBe(200);
  });

  it('when a socket connects without a token or with a wrong one, then the handshake is refused with the reason', async () => {
    await expect(openSocket(h.baseUrl, {})).rejects.toMatchObject({ message: expect.stringMatching(/needs an API key/) });
    await expect(openSocket(h.baseUrl, { token: 'wrong' })).rejects.toMatchObject({
      message: expect.stringMatching(/not valid/),
      data: { code: 'UNAUTHORIZED' },
    });
  });

  it('when a socket connects with a read key (auth token or Authorization header), then it can subscribe and gets the live update', async () => {
    const byToken = await openSocket(h.baseUrl, { token: READ_KEY });
    const byHeader = await openSocket(h.baseUrl, { headers: bearer(INGEST_KEY) });
    try {
      for (const socket of [byToken, byHeader]) {
        const ack = await socket.emitWithAck('subscribe', { keys: ['auth/live'] });
        expect(ack).toEqual({ ok: true, snapshot: { 'auth/live': null } });
      }
      const updates = [byToken, byHeader].map(
        (socket) => new Promise<unknown>((resolve) => socket.once('stats:update', (update) => resolve(update))),
      );
      expect((await postJson(h.baseUrl, points('auth/live', 5), bearer(INGEST_KEY))).status).toBe(202);
      for (const update of await Promise.all(updates)) expect(update).toMatchObject({ key: 'auth/live', stats: { count: 1, sum: 5 } });
    } finally {
      byToken.disconnect();
      byHeader.disconnect();
    }
  });

  describe('Idempotency-Key', () => {
    it('when two API keys send the same Idempotency-Key, then each gets a batch of its own and both are counted', async () => {
      const body = points('idem/scoped', 10);
      const first = await postJson(h.baseUrl, body, { ...bearer(INGEST_KEY), 'idempotency-key': 'shared-key' });
      const second = await postJson(h.baseUrl, body, { ...bearer(OTHER_INGEST_KEY), 'idempotency-key': 'shared-key' });
      expect([first.status, second.status]).toEqual([202, 202]);
      expect(second.headers.get('idempotent-replayed')).toBeNull();
      expect(second.body.batchId).not.toBe(first.body.batchId);
      await waitForBatch(h.baseUrl, second.body.batchId, 30_000, bearer(READ_KEY));
      await waitForBatch(h.baseUrl, first.body.batchId, 30_000, bearer(READ_KEY));
      expect((await get(h.baseUrl, '/api/data/stats/idem%2Fscoped', bearer(READ_KEY))).body).toMatchObject({ count: 2, sum: 20 });
    });

    it('when a key is replayed with the same body, then the first answer comes back and nothing new is counted; with another body, a 422', async () => {
      const headers = { ...bearer(INGEST_KEY), 'idempotency-key': 'replay-1' };
      const first = await postJson(h.baseUrl, points('idem/replay', 3), headers);
      const replay = await postJson(h.baseUrl, points('idem/replay', 3), headers);
      expect(replay.status).toBe(202);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect(replay.body).toEqual(first.body);

      const changed = await postJson(h.baseUrl, points('idem/replay', 4), headers);
      expect(changed.status).toBe(422);
      expect(changed.body.error).toEqual({
        code: 'IDEMPOTENCY_KEY_REUSED',
        message: expect.stringMatching(/different body; use a new key/),
      });

      await waitForBatch(h.baseUrl, first.body.batchId, 30_000, bearer(READ_KEY));
      // The 422 did not free the key: the original body still replays.
      expect((await postJson(h.baseUrl, points('idem/replay', 3), headers)).body).toEqual(first.body);
      expect((await get(h.baseUrl, '/api/data/stats/idem%2Freplay', bearer(READ_KEY))).body).toMatchObject({ count: 1, sum: 3 });
    });

    it('when a key is reused while its first request is still uploading, then it is a 409 with Retry-After; afterwards the same NDJSON, even gzipped, replays', async () => {
      const headers = { ...bearer(INGEST_KEY), 'idempotency-key': 'in-flight-1' };
      const [firstLine, ...otherLines] = [1, 2, 3].map((value) => `${JSON.stringify({ key: 'idem/in-flight', value })}\n`);
      const upload = openUpload(h.baseUrl, headers, firstLine ?? '');
      // The upload has reserved its key once the server saw its headers.
      await waitFor(async () => ((await h.redis.keys(`${h.config.QUEUE_NAME}:idem:*:in-flight-1`)).length > 0 ? true : undefined));
      const concurrent = await postJson(h.baseUrl, points('idem/in-flight', 100), headers);
      expect(concurrent.status).toBe(409);
      expect(concurrent.headers.get('retry-after')).toBe('1');
      expect(concurrent.body.error.code).toBe('IDEMPOTENCY_IN_FLIGHT');

      upload.finish(otherLines.join(''));
      const first = await upload.response;
      expect(first.status).toBe(202);
      expect(first.body.accepted).toBe(3);

      const replay = await fetch(`${h.baseUrl}/api/data/ingest`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' },
        body: gzipSync([firstLine, ...otherLines].join('')),
      });
      expect(replay.status).toBe(202);
      expect(await replay.json()).toEqual(first.body);
      await waitForBatch(h.baseUrl, first.body.batchId, 30_000, bearer(READ_KEY));
      expect((await get(h.baseUrl, '/api/data/stats/idem%2Fin-flight', bearer(READ_KEY))).body).toMatchObject({ count: 3, sum: 6 });
    });

    it('when a stored batch is sent again under its key after the answer was lost (a 503 freed the key), then it is the same batch and counts once', async () => {
      const headers = { ...bearer(INGEST_KEY), 'idempotency-key': 'lost-answer-1' };
      const first = await postJson(h.baseUrl, points('idem/lost-answer', 7, 8), headers);
      expect(first.status).toBe(202);
      await waitForBatch(h.baseUrl, first.body.batchId, 30_000, bearer(READ_KEY));
      // What a Redis crash between storing the jobs and answering leaves: the jobs stored, the key released.
      for (const key of await h.redis.keys(`${h.config.QUEUE_NAME}:idem:*:lost-answer-1`)) await h.redis.del(key);

      const resent = await postJson(h.baseUrl, points('idem/lost-answer', 7, 8), headers);
      expect(resent.status).toBe(202);
      expect(resent.body.batchId).toBe(first.body.batchId);
      const other = await postJson(h.baseUrl, points('idem/lost-answer', 7, 8), {
        ...bearer(OTHER_INGEST_KEY),
        'idempotency-key': 'lost-answer-1',
      });
      expect(other.body.batchId).not.toBe(first.body.batchId);
      await waitForBatch(h.baseUrl, other.body.batchId, 30_000, bearer(READ_KEY));
      expect(await waitForBatch(h.baseUrl, first.body.batchId, 30_000, bearer(READ_KEY))).toMatchObject({
        status: 'completed',
        processedPoints: 2,
      });
      // Once from the first attempt (its resend added nothing), once from the other API key.
      expect((await get(h.baseUrl, '/api/data/stats/idem%2Flost-answer', bearer(READ_KEY))).body).toMatchObject({ count: 4, sum: 30 });
    });

    it('when a key has been used, then it is remembered for 24 h and no longer', async () => {
      await postJson(h.baseUrl, points('idem/ttl', 1), { ...bearer(INGEST_KEY), 'idempotency-key': 'ttl-1' });
      const [stored] = await h.redis.keys(`${h.config.QUEUE_NAME}:idem:*:ttl-1`);
      expect(stored).toBeDefined();
      const ttl = stored === undefined ? -2 : await h.redis.ttl(stored);
      expect(ttl).toBeGreaterThan(24 * 3600 - 60);
      expect(ttl).toBeLessThanOrEqual(24 * 3600);
    });
  });
});

describe('rate limits', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(
      { INGEST_API_KEYS: `${INGEST_KEY},${OTHER_INGEST_KEY}`, RATE_LIMIT_PER_MINUTE: '5', TRUST_PROXY: 'true' },
      { workers: 0 },
    );
  });

  afterAll(async () => {
    await h.close();
  });

  const statusesOf = async (count: number, headers: Record<string, string>) => {
    const statuses: number[] = [];
    for (let i = 0; i < count; i += 1) statuses.push((await get(h.baseUrl, '/api/data/stats/rate', headers)).status);
    return statuses;
  };

  it('when a key makes one request more than RATE_LIMIT_PER_MINUTE, then that one is a 429 with Retry-After, on every API instance; other keys go on', async () => {
    expect(await statusesOf(4, bearer(INGEST_KEY))).toEqual([404, 404, 404, 404]);
    const fifth = await get(h.baseUrl, '/api/data/stats/rate', bearer(INGEST_KEY));
    expect(fifth.status).toBe(404);
    expect(fifth.headers.get('ratelimit-limit')).toBe('5');
    expect(fifth.headers.get('ratelimit-remaining')).toBe('0');

    // A second API instance on the same Redis shares the count.
    const second = await createApiComponents(h.config, createLogger('silent', 'test'));
    try {
      const port = await second.listen(0);
      const limited = await get(`http://127.0.0.1:${port}`, '/api/data/stats/rate', bearer(INGEST_KEY));
      expect(limited.status).toBe(429);
      expect(limited.body.error).toEqual({ code: 'RATE_LIMITED', message: expect.stringMatching(/at most 5 per minute; retry in \d+ s/) });
      const retryAfter = Number(limited.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
    } finally {
      await second.close();
    }
    expect((await postJson(h.baseUrl, { points: [{ key: 'rate', value: 1 }] }, bearer(INGEST_KEY))).status).toBe(429);
    expect((await get(h.baseUrl, '/api/data/stats/rate', bearer(OTHER_INGEST_KEY))).status).toBe(404);
  });

  it('when callers send no key, then each client IP (from X-Forwarded-For with TRUST_PROXY) has a limit of its own', async () => {
    expect(await statusesOf(6, { 'x-forwarded-for': '203.0.113.7' })).toEqual([404, 404, 404, 404, 404, 429]);
    expect(await statusesOf(1, { 'x-forwarded-for': '203.0.113.8' })).toEqual([404]);
  });

  it('when a client guesses API keys, then its wrong keys count against its IP and are answered 429 past the limit', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i += 1) {
      const answer = await postJson(
        h.baseUrl,
        { points: [{ key: 'rate', value: 1 }] },
        { ...bearer(`guess-${i}`), 'x-forwarded-for': '203.0.113.9' },
      );
      statuses.push(answer.status);
    }
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429]);
  });

  it('when health is probed past the limit, then it still answers (probes are not rate limited)', async () => {
    for (let i = 0; i < 8; i += 1) expect((await get(h.baseUrl, '/healthz', { 'x-forwarded-for': '203.0.113.7' })).status).toBe(200);
  });
});

describe('HTTP and socket hardening', () => {
  let h: Harness;
  const ALLOWED = 'https://dashboard.example';

  beforeAll(async () => {
    h = await startHarness({ CORS_ORIGINS: ALLOWED, REQUEST_TIMEOUT_MS: '1000' }, { workers: 0 });
  });

  afterAll(async () => {
    await h.close();
  });

  it('when any response is sent, then it has no X-Powered-By and carries helmet headers', async () => {
    const answer = await get(h.baseUrl, '/api/data/stats/none');
    expect(answer.headers.get('x-powered-by')).toBeNull();
    expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
    expect(answer.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
  });

  it('when the live page is served, then its CSP runs scripts from this origin only (no inline script)', async () => {
    const answer = await get(h.baseUrl, '/test-socket.html');
    const policy = answer.headers.get('content-security-policy') ?? '';
    expect(policy.split(';')).toContain("script-src 'self'");
    expect(policy.split(';').filter((directive) => directive.startsWith('script-src'))).toEqual([
      "script-src 'self'",
      "script-src-attr 'none'",
    ]);
  });

  it('when / is opened, then it redirects to the live page', async () => {
    const answer = await fetch(`${h.baseUrl}/`, { redirect: 'manual' });
    expect(answer.status).toBe(302);
    expect(answer.headers.get('location')).toBe('/test-socket.html');
  });

  it('when a page from an allowed origin calls the API, then CORS allows it; from any other origin, it does not', async () => {
    expect((await get(h.baseUrl, '/api/data/stats/none', { origin: ALLOWED })).headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(
      (await get(h.baseUrl, '/api/data/stats/none', { origin: 'https://evil.example' })).headers.get('access-control-allow-origin'),
    ).toBeNull();
    const preflight = await fetch(`${h.baseUrl}/api/data/ingest`, {
      method: 'OPTIONS',
      headers: { origin: ALLOWED, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(ALLOWED);
  });

  it('when a browser socket comes from another origin, then the handshake is refused; from the allowed one or the service itself, it connects', async () => {
    await expect(openSocket(h.baseUrl, { headers: { origin: 'https://evil.example' } })).rejects.toThrow();
    const allowed = await openSocket(h.baseUrl, { headers: { origin: ALLOWED } });
    const own = await openSocket(h.baseUrl, { headers: { origin: h.baseUrl } });
    expect([allowed.connected, own.connected]).toEqual([true, true]);
    allowed.disconnect();
    own.disconnect();
  });

  it('when one socket floods acknowledged events, then past its budget they are answered RATE_LIMITED, it is cut off, and other sockets go on', async () => {
    const flooder = await openSocket(h.baseUrl, {});
    const closed = new Promise<void>((resolve) => flooder.once('disconnect', () => resolve()));
    const codes = new Map<string, number>();
    // 40 is the burst at the default 20 events a second; each event would otherwise be parsed and answered.
    for (let i = 0; i < 1000; i += 1) {
      flooder.emit('subscribe', { keys: 'not a list' } as never, (reply: { ok: boolean; error?: { code: string } }) => {
        const code = reply.error?.code ?? 'OK';
        codes.set(code, (codes.get(code) ?? 0) + 1);
      });
    }
    await closed;
    const rateLimited = codes.get('RATE_LIMITED') ?? 0;
    const read = [...codes.entries()].filter(([code]) => code !== 'RATE_LIMITED').reduce((sum, [, count]) => sum + count, 0);
    expect(read).toBeGreaterThan(0);
    // The burst (40), and what refills while the flood arrives on a busy machine.
    expect(read).toBeLessThanOrEqual(60);
    expect(rateLimited).toBeGreaterThan(0);
    expect([...codes.values()].reduce((a, b) => a + b, 0)).toBeLessThan(1000);

    const other = await openSocket(h.baseUrl, {});
    const reply = await other.emitWithAck('subscribe', { keys: ['flood/other'] });
    expect(reply.ok).toBe(true);
    other.disconnect();
  });

  it('when a client stops sending its body, then the request is cut off with 408 after REQUEST_TIMEOUT_MS and nothing is queued', async () => {
    const { port } = new URL(h.baseUrl);
    const connection = tcpConnect(Number(port), '127.0.0.1');
    let received = '';
    connection.setEncoding('utf8');
    connection.on('data', (chunk: string) => (received += chunk));
    const closed = new Promise<void>((resolve) => connection.on('close', () => resolve()));
    connection.write(
      'POST /api/data/ingest HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"points": [',
    );
    await closed;
    expect(received).toMatch(/^HTTP\/1\.1 408/);
    expect(await h.api.queue.count()).toBe(0);
  });
});

describe('the queue dashboard (/admin/queues)', () => {
  it('when no ADMIN_API_KEYS are set, then it is closed: a 404 that says how to open it', async () => {
    const h = await startHarness({}, { workers: 0 });
    try {
      const answer = await get(h.baseUrl, '/admin/queues');
      expect(answer.status).toBe(404);
      expect(answer.body.error.message).toMatch(/set ADMIN_API_KEYS to open it/);
    } finally {
      await h.close();
    }
  });

  it('when admin keys are set, then it asks a browser for one (Basic), refuses a wrong or non-admin key, and opens with an admin key', async () => {
    const h = await startHarness({ ADMIN_API_KEYS: 'the-admin-key', INGEST_API_KEYS: INGEST_KEY }, { workers: 0 });
    try {
      const none = await get(h.baseUrl, '/admin/queues');
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toMatch(/^Basic realm="queue dashboard"/);
      expect((await get(h.baseUrl, '/admin/queues', bearer(INGEST_KEY))).status).toBe(401);
      const basic = { authorization: `Basic ${Buffer.from('anyone:the-admin-key').toString('base64')}` };
      const page = await fetch(`${h.baseUrl}/admin/queues`, { headers: basic });
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('__UI_CONFIG__');
      expect((await fetch(`${h.baseUrl}/admin/queues/api/queues`, { headers: bearer('the-admin-key') })).status).toBe(200);
    } finally {
      await h.close();
    }
  });
});
