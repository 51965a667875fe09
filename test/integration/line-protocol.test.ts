import { gzipSync } from 'node:zlib';
import { InfluxDB, Point, setLogger } from '@influxdata/influxdb-client';
import { getJson, startHarness, waitFor, type Harness } from '../support/harness';
import { storedPoints } from '../support/stored-history';

const INGEST_KEY = 'lp-ingest-key';
const READ_KEY = 'lp-read-key';
const auth = { Authorization: `Bearer ${INGEST_KEY}` };

/** POSTs a line-protocol body to InfluxDB's v2 write endpoint of the service. */
async function write(
  h: Harness,
  body: string | Buffer,
  query = 'org=o&bucket=b&precision=ms',
  headers: Record<string, string> = { Authorization: `Token ${INGEST_KEY}` },
): Promise<{ status: number; text: string; json: any; headers: Headers }> {
  const response = await fetch(`${h.baseUrl}/api/v2/write?${query}`, { method: 'POST', headers, body });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, text, json, headers: response.headers };
}

async function statsOf(h: Harness, key: string): Promise<{ count: number; sum: number } | undefined> {
  const answer = await getJson(h.baseUrl, `/api/data/stats/${encodeURIComponent(key)}`, auth);
  return answer.status === 200 ? (answer.body as { count: number; sum: number }) : undefined;
}

/** Waits until the key counts `count` points. */
async function counted(h: Harness, key: string, count: number): Promise<{ count: number; sum: number }> {
  return waitFor(
    async () => {
      const stats = await statsOf(h, key);
      return stats && stats.count >= count ? stats : undefined;
    },
    20_000,
    `${key} counting ${count}`,
  );
}

// The client logs every retry it schedules; the assertions say what matters.
setLogger({ error: () => undefined, warn: () => undefined });

describe('InfluxDB line protocol in (POST /api/v2/write, POST /write)', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ INGEST_API_KEYS: INGEST_KEY, READ_API_KEYS: READ_KEY });
  });

  afterAll(async () => {
    await h.close();
  });

  it('when the official client writes points through its WriteApi, then statistics, series and history match what it sent, escapes included', async () => {
    const client = new InfluxDB({ url: h.baseUrl, token: INGEST_KEY });
    const writeApi = client.getWriteApi('acme', 'sensors', 'ms');
    const base = Date.now() - 60_000;
    const points = [
      new Point('air temp').tag('room', 'a,b=c').tag('floor', '1 2').floatField('celsius', 21.5).timestamp(new Date(base)),
      new Point('air temp')
        .tag('floor', '1 2')
        .tag('room', 'a,b=c')
        .floatField('celsius', 22.5)
        .timestamp(new Date(base + 1000)),
      new Point('air temp')
        .tag('room', 'a,b=c')
        .tag('floor', '1 2')
        .intField('fan rpm', 1200)
        .booleanField('on', true)
        .timestamp(new Date(base + 2000)),
    ];
    writeApi.writePoints(points);
    await writeApi.close();

    // Tags in sorted order, names escaped as line protocol escapes them.
    const celsius = 'air\\ temp,floor=1\\ 2,room=a\\,b\\=c/celsius';
    expect(await counted(h, celsius, 2)).toMatchObject({ count: 2, sum: 44, min: 21.5, max: 22.5 });
    expect(await counted(h, 'air\\ temp,floor=1\\ 2,room=a\\,b\\=c/fan\\ rpm', 1)).toMatchObject({ count: 1, sum: 1200 });
    expect(await counted(h, 'air\\ temp,floor=1\\ 2,room=a\\,b\\=c/on', 1)).toMatchObject({ count: 1, sum: 1 });

    const history = await getJson(h.baseUrl, `/api/data/history?key=${encodeURIComponent(celsius)}`, auth);
    expect(history.status).toBe(200);
    const items = (history.body as { items: { value: number; timestamp: string; meta: unknown }[] }).items;
    expect(items.map((item) => [item.value, Date.parse(item.timestamp)])).toEqual([
      [22.5, base + 1000],
      [21.5, base],
    ]);
    expect(items[0]?.meta).toMatchObject({ measurement: 'air temp', field: 'celsius' });

    const series = await getJson(
      h.baseUrl,
      `/api/data/series?key=${encodeURIComponent(celsius)}&step=1d&from=${base - 86_400_000}&to=${base + 86_400_000}`,
      auth,
    );
    const buckets = (series.body as { series: { buckets: { count: number; sum: number }[] }[] }).series[0]?.buckets ?? [];
    expect(buckets.reduce((total, bucket) => total + bucket.count, 0)).toBe(2);
    expect(buckets.reduce((total, bucket) => total + bucket.sum, 0)).toBe(44);
  });

  it('when every line is valid, then the answer is 204 with no body', async () => {
    const answer = await write(h, `lp_ok value=1 ${Date.now()}\nlp_ok value=2 ${Date.now() + 1}\n`);
    expect(answer.status).toBe(204);
    expect(answer.text).toBe('');
    expect(await counted(h, 'lp_ok/value', 2)).toMatchObject({ count: 2, sum: 3 });
  });

  it('when a line carries several fields, then each field is its own point in history, counted and listed once', async () => {
    const now = Date.now();
    expect((await write(h, `lp_multi usage=1,idle=2 ${now}\nlp_multi usage=3,idle=4 ${now + 1}\n`)).status).toBe(204);
    for (const [field, values] of [
      ['usage', [3, 1]],
      ['idle', [4, 2]],
    ] as const) {
      const key = `lp_multi/${field}`;
      expect(await counted(h, key, 2)).toMatchObject({ count: 2, sum: values[0] + values[1] });
      await waitFor(async () => ((await storedPoints(h.db, { key })) === 2 ? true : undefined));
      const history = await getJson(h.baseUrl, `/api/data/history?key=${encodeURIComponent(key)}`, auth);
      expect((history.body as { items: { value: number }[] }).items.map((item) => item.value)).toEqual(values);
    }
  });

  it('when no line is valid, then it is a 400 "invalid" naming the first bad line, and nothing is stored', async () => {
    const answer = await write(h, '# a comment\nlp_bad value="text"\nlp_bad value=\n');
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ code: 'invalid', line: 2 });
    expect(answer.json.message).toMatch(/^line 2: /);
    expect(await statsOf(h, 'lp_bad/value')).toBeUndefined();
  });

  it('when some lines are bad, then the good ones are stored and the 400 says how many points were accepted', async () => {
    const now = Date.now();
    const answer = await write(h, `lp_partial value=1 ${now}\nlp_partial value=oops ${now}\nlp_partial value=2 ${now + 1}\n`);
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ code: 'invalid', line: 2 });
    expect(answer.json.message).toMatch(/^partial write: 2 points accepted, 1 line refused; line 2: /);
    expect(await counted(h, 'lp_partial/value', 2)).toMatchObject({ count: 2, sum: 3 });
  });

  it('when an agent resends the same timestamped body without an Idempotency-Key, then it is answered again and counted once', async () => {
    const now = Date.now();
    const body = `lp_resend,host=a value=5 ${now}\nlp_resend,host=a value=7 ${now + 1}\n`;
    const first = await write(h, body);
    const again = await write(h, body);
    expect([first.status, again.status]).toEqual([204, 204]);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    await counted(h, 'lp_resend,host=a/value', 2);
    // A later, different body still counts.
    expect((await write(h, `lp_resend,host=a value=1 ${now + 2}\n`)).status).toBe(204);
    expect(await counted(h, 'lp_resend,host=a/value', 3)).toMatchObject({ count: 3, sum: 13 });
  });

  it('when a body has a line without a timestamp, then a resend is new points at the time of receipt', async () => {
    const body = 'lp_untimed value=1\n';
    expect((await write(h, body)).status).toBe(204);
    expect((await write(h, body)).status).toBe(204);
    expect(await counted(h, 'lp_untimed/value', 2)).toMatchObject({ count: 2 });
  });

  it('when the body is gzipped and sent to the v1 endpoint with precision s, then it is read alike', async () => {
    const seconds = Math.floor(Date.now() / 1000);
    const response = await fetch(`${h.baseUrl}/write?db=d&precision=s`, {
      method: 'POST',
      headers: { Authorization: `Token ${INGEST_KEY}`, 'Content-Encoding': 'gzip' },
      body: gzipSync(`lp_v1 value=3i ${seconds}\n`),
    });
    expect(response.status).toBe(204);
    const stats = (await counted(h, 'lp_v1/value', 1)) as unknown as { lastTimestamp: string };
    expect(Date.parse(stats.lastTimestamp)).toBe(seconds * 1000);
  });

  it.each([
    ['no key', {}, 401, 'unauthorized'],
    ['a read key', { Authorization: `Token ${READ_KEY}` }, 403, 'forbidden'],
  ])('when it comes with %s, then it is a %s in InfluxDB shape', async (_case, headers, status, code) => {
    const answer = await write(h, `lp_auth value=1 ${Date.now()}\n`, undefined, headers);
    expect(answer.status).toBe(status);
    expect(answer.json).toMatchObject({ code });
    expect(await statsOf(h, 'lp_auth/value')).toBeUndefined();
  });

  it('when precision is not one InfluxDB knows, then it is a 400 naming the choices', async () => {
    const answer = await write(h, 'lp_precision value=1 1\n', 'org=o&bucket=b&precision=minutes');
    expect(answer.status).toBe(400);
    expect(answer.json).toEqual({ code: 'invalid', message: 'precision must be one of ns, us, ms, s (default ns)' });
  });
});

describe('InfluxDB line protocol under back-pressure', () => {
  let h: Harness;

  beforeAll(async () => {
    // No worker at first, and a backlog limit one batch already fills.
    h = await startHarness({ MAX_QUEUE_BACKLOG: '1', JOB_CHUNK_SIZE: '1' }, { workers: 0 });
  });

  afterAll(async () => {
    await h.close();
  });

  it("when the service answers 503, then the official client's retry writes the points once after it drains", async () => {
    const filler = await fetch(`${h.baseUrl}/api/data/ingest`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        points: [
          { key: 'lp_fill', value: 1 },
          { key: 'lp_fill', value: 2 },
        ],
      }),
    });
    expect(filler.status).toBe(202);
    // The API reads the backlog at most every 250 ms.
    await new Promise((resolve) => setTimeout(resolve, 400));
    const refused = await write(h, `lp_retry value=4 ${Date.now()}\n`, undefined, {});
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).not.toBeNull();

    const failures: number[] = [];
    const writeApi = new InfluxDB({ url: h.baseUrl }).getWriteApi('o', 'b', 'ms', {
      // The client sends on its own timer and retries from its buffer, after Retry-After, as an agent would.
      flushInterval: 100,
      maxRetries: 20,
      minRetryDelay: 500,
      maxRetryDelay: 2000,
      retryJitter: 0,
      writeFailed: (error) => {
        failures.push((error as { statusCode?: number }).statusCode ?? 0);
        return undefined;
      },
    });
    writeApi.writePoint(new Point('lp_retry').floatField('value', 4).timestamp(new Date()));
    await waitFor(() => (failures.length > 0 ? true : undefined), 10_000, 'the first send');
    expect(failures[0]).toBe(503);
    // While the client waits to retry, a worker drains the backlog.
    await h.startWorker();
    expect(await counted(h, 'lp_retry/value', 1)).toMatchObject({ count: 1, sum: 4 });
    expect(failures.every((status) => status === 503)).toBe(true);
    await writeApi.close();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await statsOf(h, 'lp_retry/value')).toMatchObject({ count: 1, sum: 4 });
  });
});

describe('InfluxDB line protocol, hostile bodies', () => {
  let h: Harness;
  const MAX_BODY_BYTES = 2 * 1024 * 1024;

  beforeAll(async () => {
    h = await startHarness({ MAX_BODY_BYTES: String(MAX_BODY_BYTES) });
  });

  afterAll(async () => {
    await h.close();
  });

  const now = Date.now();
  it.each([
    ['an unterminated quote', `lp_h1 s="open,v=1 ${now}`, /line 1: .*unterminated/],
    ['a line of 1 MB', `lp_h2 v=1,pad="${'x'.repeat(1024 * 1024)}" ${now}`, /line 1: .*longer than/],
    [
      '100,000 fields on one line',
      `lp_h3 ${Array.from({ length: 100_000 }, (_, i) => `f${i}=1`).join(',')} ${now}`,
      /line 1: .*longer than/,
    ],
    [
      '2,000 fields on one line (64 KiB)',
      `lp_h3 ${Array.from({ length: 2000 }, (_, i) => `f${i}=1`).join(',')} ${now}`,
      /line 1: .*fields/,
    ],
    ['a NUL byte in a name', `lp_h4\u0000x v=1 ${now}`, /line 1: .*control character/],
    ['a timestamp past what a date holds', `lp_h5 v=1 99999999999999999999`, /line 1: .*timestamp/],
    ['a timestamp before 1970', `lp_h6 v=1 -5`, /line 1: .*before 1970/],
  ])('when the body holds %s, then it is a 400 naming the line, and nothing is stored', async (_case, body, message) => {
    const answer = await write(h, body, 'precision=ms', {});
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ code: 'invalid', line: 1 });
    expect(answer.json.message).toMatch(message);
    expect(await storedPoints(h.db)).toBe(0);
  });

  it('when a line is not valid UTF-8, then it is refused, not merged to U+FFFD', async () => {
    const body = Buffer.concat([Buffer.from('lp_h7,tag=a'), Buffer.from([0xff, 0xfe]), Buffer.from(` v=1 ${now}\n`)]);
    const answer = await write(h, body, 'precision=ms', {});
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ code: 'invalid', line: 1 });
    expect(answer.json.message).toMatch(/UTF-8/);
  });

  it('when a small gzip body inflates past MAX_BODY_BYTES, then it is a 413 and nothing is stored', async () => {
    const bomb = gzipSync(`lp_h8 v=1 ${now}\n`.repeat(Math.ceil((2 * MAX_BODY_BYTES) / 20)));
    expect(bomb.length).toBeLessThan(MAX_BODY_BYTES / 10);
    const answer = await write(h, bomb, 'precision=ms', { 'Content-Encoding': 'gzip' });
    expect(answer.status).toBe(413);
    expect(answer.json).toMatchObject({ code: 'request too large' });
    expect(await statsOf(h, 'lp_h8/v')).toBeUndefined();
  });

  it('when the gzip stream is corrupt, then it is a 400, not a 5xx', async () => {
    const answer = await write(h, Buffer.from('not gzip at all'), 'precision=ms', { 'Content-Encoding': 'gzip' });
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ code: 'invalid' });
  });
});
