/**
 * `npm run bench:history`: history reads among a large history. Fills a fresh database with N points over K keys,
 * written as the worker writes them (no HTTP, no queue), starts the built API on it and times, one request at a time,
 * the history pages users ask for (a key's newest, a recent batch's, a key's last hour, a key's deep pages, an old
 * batch's whose status is gone), with stats and series beside them. Every 200 answer is checked against the points
 * written. See `--help`.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { MongoClient } from 'mongodb';
import type { Connection } from 'mongoose';
import { describe, secondsSince } from '../load-test';
import { DEFAULT_MONGODB_URI, DEFAULT_REDIS_URL } from '../scripts/stack/endpoints';
import { ensureStack } from '../scripts/stack/services';
import { loadConfig, type Config } from '../src/config/config';
import { jobIdOf, type JobPayload } from '../src/domain/job-payload';
import type { Point } from '../src/domain/point-schema';
import { chunk } from '../src/domain/stats';
import { BatchStore } from '../src/exactly-once/batch-store';
import { LanePool } from '../src/exactly-once/lane-pool';
import { createLogger } from '../src/logger';
import { newBatchId } from '../src/services/ingest-service';
import { jobWrites } from '../src/services/job-processor';
import { WriteCombiner, type StoreWrite } from '../src/services/write-combiner';
import { createRepositories } from '../src/storage';
import { connectMongo } from '../src/storage/connect';
import { databaseUri, dropDatabase, log, newRunId, percentile, withoutDatabase } from './common';
import { commandOptions, parseCommandLine, UsageError } from '../scripts/cli';
import { BenchProcess, freePort, ROOT, waitForHttp } from './processes';
import { serviceEnv } from './service-run';
import { deleteRunKeys, readRedisUsage, redisVersion, type RedisUsage } from './redis-usage';

const HELP = `Usage: npm run bench:history -- [options]

Fills a fresh database (on the server of MONGODB_URI, else the default
stack's, started if needed) with N points over K keys, written as the worker
writes them without HTTP or queue: requests of 1,000 points cut into jobs of
JOB_CHUNK_SIZE, each batch's status created first, WORKER_CONCURRENCY jobs
per write; keys round-robin, timestamps spread evenly over the 7 days up to
the start of the fill. Then starts the built API on it and times, one request
at a time: a key's newest history page, a recent batch's page, a key's last
hour, a key's deep pages (following cursors), stats, series, and an old
batch's page once its status is gone. Prints a Markdown table, writes a
results JSON, and drops the database and the run's Redis keys at the end.

Options:
  --points N     points to write (default 1e7)
  --keys N       distinct keys (default 100)
  --requests N   requests of each kind (default 200; the old batch's page: 3)
  --no-build     use dist/ as it is (default: npm run build first)
  --out FILE     results JSON (default bench/results/<date>-history-reads.json)
  -h, --help     show this help
`;

interface Options {
  points: number;
  keys: number;
  requests: number;
  build: boolean;
  out: string | undefined;
  argv: string[];
}

// Points per request, as the load generator and the bench send them.
const REQUEST_POINTS = 1000;
const SPAN_MS = 7 * 86_400_000;
const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;
const PAGE_LIMIT = 100;
// Pages followed past a key's newest: twice HISTORY_RECENT_PER_KEY's default, so the walk leaves the recent tier.
const DEEP_PAGES = 20;
// Recent batches are drawn from the newest tenth of them.
const RECENT_SHARE = 0.1;
// A batch page without a status reads the store: on FerretDB up to HISTORY_QUERY_TIMEOUT_MS each, so only a few.
const OLD_BATCH_REQUESTS = 3;
const START_TIMEOUT_MS = 60_000;
// A request gets the API's own query timeout and this much more before the bench gives up on it.
const REQUEST_MARGIN_MS = 50_000;
const PROGRESS_MS = 5000;
// Sanity failures kept per kind in the results; the count has them all.
const PROBLEMS_KEPT = 5;

function count(name: string, text: string, min: number): number {
  const value = Number(text);
  if (!/^\d+(?:e\d+)?$/i.test(text.trim()) || !Number.isSafeInteger(value) || value < min) {
    throw new UsageError(`--${name} must be a whole number of at least ${min} (got "${text}")`);
  }
  return value;
}

/** The options, or null when `--help` was asked for. */
function parseOptions(argv: string[]): Options | null {
  const values = parseCommandLine(argv, {
    points: { type: 'string', default: '1e7' },
    keys: { type: 'string', default: '100' },
    requests: { type: 'string', default: '200' },
    'no-build': { type: 'boolean', default: false },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) return null;
  const points = count('points', values.points, 1);
  // One millisecond apart at least: every point of a key has its own timestamp, so a page's order is known.
  if (points > SPAN_MS) throw new UsageError(`--points must be at most ${SPAN_MS} (one per millisecond of 7 days)`);
  return {
    points,
    keys: count('keys', values.keys, 1),
    requests: count('requests', values.requests, 1),
    build: !values['no-build'],
    out: values.out,
    argv,
  };
}

/**
 * The points written, as a function of their index g: key `g mod K`, value `g mod 1000`, timestamps `spacing` ms
 * apart ending at `end`. Every page, statistic and bucket a request may answer is computed from here.
 */
class Dataset {
  readonly spacing: number;
  /** The batch ids in the order written: batch b holds points [b × 1000, (b + 1) × 1000). */
  readonly batchIds: string[] = [];

  constructor(
    readonly points: number,
    readonly keys: number,
    readonly end: number,
  ) {
    this.spacing = Math.floor(SPAN_MS / points);
  }

  get batches(): number {
    return Math.ceil(this.points / REQUEST_POINTS);
  }

  keyOf(g: number): string {
    return `history/${g % this.keys}`;
  }

  tsOf(g: number): number {
    return this.end - (this.points - 1 - g) * this.spacing;
  }

  valueOf(g: number): number {
    return g % 1000;
  }

  /** Point g as the API validates it: its index within its request. */
  pointOf(g: number): Point {
    return { i: g % REQUEST_POINTS, key: this.keyOf(g), value: this.valueOf(g), ts: this.tsOf(g) };
  }

  batchOf(g: number): string {
    return this.batchIds[Math.floor(g / REQUEST_POINTS)] ?? '?';
  }

  /** Key k's points at or below index `x`. */
  private keyPointsUpTo(k: number, x: number): number {
    return x < k ? 0 : Math.floor((x - k) / this.keys) + 1;
  }

  /** Key k's points with a timestamp in [from, to). */
  countIn(k: number, from: number, to: number): number {
    const lowest = Math.max(0, this.points - 1 - Math.floor((this.end - from) / this.spacing));
    const highest = to > this.end ? this.points - 1 : this.points - 2 - Math.floor((this.end - to) / this.spacing);
    return highest < lowest ? 0 : this.keyPointsUpTo(k, highest) - this.keyPointsUpTo(k, lowest - 1);
  }

  countOf(k: number): number {
    return this.keyPointsUpTo(k, this.points - 1);
  }

  sumOf(k: number): number {
    let sum = 0;
    for (let g = k; g < this.points; g += this.keys) sum += this.valueOf(g);
    return sum;
  }

  /** Key k's points newest first, skipping `skip`, at most `limit`, none older than `from`. */
  keyPage(k: number, skip: number, limit: number, from = -Infinity): number[] {
    const page: number[] = [];
    const newest = k + this.keys * (this.countOf(k) - 1);
    for (let g = newest - skip * this.keys; g >= 0 && page.length < limit && this.tsOf(g) >= from; g -= this.keys) page.push(g);
    return page;
  }

  /** Batch b's newest `limit` points. */
  batchPage(b: number, limit: number): number[] {
    const page: number[] = [];
    for (let g = Math.min(this.points, (b + 1) * REQUEST_POINTS) - 1; g >= b * REQUEST_POINTS && page.length < limit; g -= 1) page.push(g);
    return page;
  }
}

/** Stops the run at the next request or write: the first Ctrl-C cleans up, a second one leaves at once. */
const stop = new AbortController();

interface FillResult {
  points: number;
  jobs: number;
  seconds: number;
  pointsPerSecond: number;
  /** Seconds in each store write, summed over the fill. */
  writeSeconds: Record<StoreWrite, number>;
}

/**
 * Writes the dataset as the worker does (see bench/ceiling.ts): each request's batch status created first as the API
 * does, its jobs cut by JOB_CHUNK_SIZE, WORKER_CONCURRENCY jobs handed to the worker's group commit at once under
 * lanes of their own, and each chunk marked done in its batch status afterwards.
 */
async function fill(data: Dataset, connection: Connection, config: Config, redis: Redis): Promise<FillResult> {
  const logger = createLogger('warn', 'bench-history');
  const { history, aggregates, series, processed } = await createRepositories({ connection, config, redis, logger });
  const batches = new BatchStore(redis, config.QUEUE_NAME);
  const lanes = new LanePool();
  const writeSeconds: Record<StoreWrite, number> = { statistics: 0, series: 0, history: 0, processed: 0 };
  const combiner = new WriteCombiner({
    aggregates,
    series,
    processed,
    history,
    clock: Date.now,
    maxPoints: config.WORKER_GROUP_POINTS,
    // The jobs of a write are handed over at once: no waiting for more.
    gatherMs: 0,
    observer: { group: () => undefined, storeWrite: (write, seconds) => (writeSeconds[write] += seconds) },
  });
  const started = performance.now();
  let lastLog = started;
  let written = 0;
  let jobs = 0;
  let pending: JobPayload[] = [];
  const write = async (group: JobPayload[]): Promise<void> => {
    const startedAt = Date.now();
    const writes = group.map((job) => jobWrites(job, lanes.acquire(startedAt), 1, series.retention, startedAt));
    await Promise.all(writes.map((each) => combiner.write(each)));
    for (const each of writes) lanes.release(each.guard, true);
    for (const job of group)
      await batches.finishJob(jobIdOf(job.batchId, job.chunk), job.batchId, job.chunk, job.points.length, Date.now());
    written += group.reduce((total, job) => total + job.points.length, 0);
    jobs += group.length;
  };
  for (let b = 0; b < data.batches; b += 1) {
    stop.signal.throwIfAborted();
    const receivedAt = Date.now();
    const batchId = newBatchId(receivedAt);
    data.batchIds.push(batchId);
    const points: Point[] = [];
    for (let g = b * REQUEST_POINTS; g < Math.min(data.points, (b + 1) * REQUEST_POINTS); g += 1) points.push(data.pointOf(g));
    const chunks = chunk(points, config.JOB_CHUNK_SIZE);
    const keys = new Set(points.map((point) => point.key)).size;
    await batches.create(batchId, { points: points.length, chunks: chunks.length, keys, receivedAt });
    pending.push(...chunks.map((jobPoints, index) => ({ batchId, chunk: index, points: jobPoints, receivedAt })));
    while (pending.length >= config.WORKER_CONCURRENCY) {
      await write(pending.slice(0, config.WORKER_CONCURRENCY));
      pending = pending.slice(config.WORKER_CONCURRENCY);
    }
    if (performance.now() - lastLog > PROGRESS_MS) {
      lastLog = performance.now();
      const rate = written / secondsSince(started);
      const left = (data.points - written) / rate;
      log(`fill: ${written}/${data.points} points, ${Math.round(rate)} points/s, about ${Math.round(left)} s left`);
    }
  }
  if (pending.length > 0) await write(pending);
  const seconds = secondsSince(started);
  return { points: written, jobs, seconds, pointsPerSecond: written / seconds, writeSeconds };
}

interface Answer {
  /** The HTTP status, or `timeout` / `error` when none came. */
  status: string;
  ms: number;
  body: unknown;
}

async function get(url: string, timeoutMs: number): Promise<Answer> {
  const started = performance.now();
  try {
    const response = await fetch(url, { signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), stop.signal]) });
    const text = await response.text();
    const ms = performance.now() - started;
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: kept as text for the problem report.
    }
    return { status: String(response.status), ms, body };
  } catch (error) {
    stop.signal.throwIfAborted();
    const timedOut = error instanceof Error && error.name === 'TimeoutError';
    return { status: timedOut ? 'timeout' : 'error', ms: performance.now() - started, body: describe(error) };
  }
}

/** What a history page must hold: these points, in this order (newest first). */
function checkPage(data: Dataset, body: any, expected: readonly number[]): string | null {
  const items: any[] = Array.isArray(body?.items) ? body.items : [];
  if (items.length !== expected.length) return `${items.length} items where ${expected.length} were expected`;
  for (const [index, g] of expected.entries()) {
    const item = items[index];
    const want = { key: data.keyOf(g), value: data.valueOf(g), timestamp: new Date(data.tsOf(g)).toISOString(), batchId: data.batchOf(g) };
    const got = { key: item?.key, value: item?.value, timestamp: item?.timestamp, batchId: item?.batchId };
    if (JSON.stringify(got) !== JSON.stringify(want)) return `item ${index} is ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`;
  }
  return null;
}

/** One kind of request: what was asked, how it answered, how long it took. */
interface ReadResult {
  name: string;
  request: string;
  requests: number;
  statuses: Record<string, number>;
  p50Ms: number | null;
  p95Ms: number | null;
  maxMs: number | null;
  /** 200 answers whose content was not what was written. */
  wrong: number;
  problems: string[];
  /** Deep pages only: the median by page number (2 is the first page after the newest). */
  p50MsByPage?: Record<string, number | null>;
}

class ReadTimer {
  private readonly samples: number[] = [];
  private readonly statuses: Record<string, number> = {};
  private readonly problems: string[] = [];
  private wrong = 0;

  constructor(
    readonly name: string,
    readonly request: string,
  ) {}

  get count(): number {
    return this.samples.length;
  }

  /** Records an answer; `check` runs on 200 answers and names what is wrong with one. */
  add(answer: Answer, check: (body: any) => string | null): void {
    this.samples.push(answer.ms);
    this.statuses[answer.status] = (this.statuses[answer.status] ?? 0) + 1;
    const problem = answer.status === '200' ? check(answer.body) : null;
    if (problem !== null) this.wrong += 1;
    const said = answer.status === '200' ? problem : `${answer.status}: ${JSON.stringify(answer.body).slice(0, 300)}`;
    if (said !== null && this.problems.length < PROBLEMS_KEPT) this.problems.push(said);
  }

  result(): ReadResult {
    return {
      name: this.name,
      request: this.request,
      requests: this.samples.length,
      statuses: this.statuses,
      p50Ms: percentile(this.samples, 50),
      p95Ms: percentile(this.samples, 95),
      maxMs: percentile(this.samples, 100),
      wrong: this.wrong,
      problems: this.problems,
    };
  }
}

const randomInt = (below: number): number => Math.floor(Math.random() * below);

/** The read phase: each kind `requests` times, one request at a time, against the API at `url`. */
async function measureReads(data: Dataset, url: string, requests: number, config: Config, redis: Redis): Promise<ReadResult[]> {
  const timeoutMs = config.HISTORY_QUERY_TIMEOUT_MS + REQUEST_MARGIN_MS;
  const history = `${url}/api/data/history`;
  const results: ReadResult[] = [];
  const repeat = async (timer: ReadTimer, times: number, once: () => Promise<void>): Promise<void> => {
    log(`reads: ${timer.name}`);
    while (timer.count < times) await once();
    results.push(timer.result());
  };

  const newest = new ReadTimer("a key's newest 100", 'GET /history?key=<random key>&limit=100');
  await repeat(newest, requests, async () => {
    const k = randomInt(data.keys);
    const answer = await get(`${history}?key=${encodeURIComponent(`history/${k}`)}&limit=${PAGE_LIMIT}`, timeoutMs);
    newest.add(answer, (body) => checkPage(data, body, data.keyPage(k, 0, PAGE_LIMIT)));
  });

  const recentFrom = Math.max(0, data.batches - Math.ceil(data.batches * RECENT_SHARE));
  const recent = new ReadTimer('a recent batch (newest 10%)', 'GET /history?batchId=<random batch of the newest 10%>&limit=100');
  await repeat(recent, requests, async () => {
    const b = recentFrom + randomInt(data.batches - recentFrom);
    const answer = await get(`${history}?batchId=${data.batchIds[b] ?? ''}&limit=${PAGE_LIMIT}`, timeoutMs);
    recent.add(answer, (body) => checkPage(data, body, data.batchPage(b, PAGE_LIMIT)));
  });

  const hour = new ReadTimer("a key's last hour", 'GET /history?key=<random key>&from=<now - 1 h>&limit=100');
  await repeat(hour, requests, async () => {
    const k = randomInt(data.keys);
    const from = Date.now() - HOUR_MS;
    const query = `key=${encodeURIComponent(`history/${k}`)}&from=${new Date(from).toISOString()}&limit=${PAGE_LIMIT}`;
    const answer = await get(`${history}?${query}`, timeoutMs);
    hour.add(answer, (body) => checkPage(data, body, data.keyPage(k, 0, PAGE_LIMIT, from)));
  });

  // A walk starts at a random key's newest page (not timed here) and follows its cursors; a failed page ends it.
  const deep = new ReadTimer(`a key's pages 2-${DEEP_PAGES + 1}`, 'GET /history?key=<key>&limit=100&cursor=<next cursor>');
  const byPage = new Map<number, number[]>();
  await repeat(deep, requests, async () => {
    const k = randomInt(data.keys);
    const key = encodeURIComponent(`history/${k}`);
    let answer = await get(`${history}?key=${key}&limit=${PAGE_LIMIT}`, timeoutMs);
    for (let page = 2; page <= DEEP_PAGES + 1 && deep.count < requests; page += 1) {
      const cursor: unknown = (answer.body as any)?.nextCursor;
      if (answer.status !== '200' || typeof cursor !== 'string') return;
      answer = await get(`${history}?key=${key}&limit=${PAGE_LIMIT}&cursor=${cursor}`, timeoutMs);
      deep.add(answer, (body) => checkPage(data, body, data.keyPage(k, (page - 1) * PAGE_LIMIT, PAGE_LIMIT)));
      byPage.set(page, [...(byPage.get(page) ?? []), answer.ms]);
    }
  });
  const deepResult = results[results.length - 1] as ReadResult;
  deepResult.p50MsByPage = Object.fromEntries([...byPage].map(([page, samples]) => [String(page), percentile(samples, 50)]));

  const stats = new ReadTimer("a key's stats", 'GET /stats/<random key>');
  await repeat(stats, requests, async () => {
    const k = randomInt(data.keys);
    const answer = await get(`${url}/api/data/stats/${encodeURIComponent(`history/${k}`)}`, timeoutMs);
    stats.add(answer, (body) => {
      const want = { count: data.countOf(k), sum: data.sumOf(k) };
      return body?.count === want.count && body?.sum === want.sum
        ? null
        : `count ${body?.count} and sum ${body?.sum}, expected ${JSON.stringify(want)}`;
    });
  });

  const series = new ReadTimer("a key's series", 'GET /series?key=<random key>&step=1m (the last 60 minutes)');
  await repeat(series, requests, async () => {
    const k = randomInt(data.keys);
    const answer = await get(`${url}/api/data/series?key=${encodeURIComponent(`history/${k}`)}&step=1m`, timeoutMs);
    series.add(answer, (body) => {
      const buckets: any[] = body?.series?.[0]?.buckets ?? [];
      for (const bucket of buckets) {
        const start = Date.parse(bucket?.start);
        const want = data.countIn(k, start, start + MINUTE_MS);
        if (bucket?.count !== want) return `bucket ${bucket?.start} counts ${bucket?.count}, expected ${want}`;
      }
      return null;
    });
  });

  // The oldest batches, their statuses deleted first: the recent tier cannot answer, the store must.
  const batches = new BatchStore(redis, config.QUEUE_NAME);
  const old = new ReadTimer('an old batch without a status', 'GET /history?batchId=<one of the oldest batches, status deleted>&limit=100');
  await repeat(old, Math.min(OLD_BATCH_REQUESTS, data.batches), async () => {
    const b = old.count;
    await batches.discard(data.batchIds[b] ?? '');
    const answer = await get(`${history}?batchId=${data.batchIds[b] ?? ''}&limit=${PAGE_LIMIT}`, timeoutMs);
    old.add(answer, (body) => checkPage(data, body, data.batchPage(b, PAGE_LIMIT)));
  });
  return results;
}

/**
 * The history collection's documents and the points they hold, in one pass of a cursor: on FerretDB an aggregate
 * over every document is one command that can outlast the driver's socket timeout.
 */
async function countHistory(connection: Connection): Promise<{ documents: number; points: number }> {
  if (!connection.db) throw new Error('the MongoDB connection is not open');
  let documents = 0;
  let points = 0;
  for await (const bucket of connection.db.collection<{ n: number }>('history').find({}, { projection: { _id: 0, n: 1 } })) {
    stop.signal.throwIfAborted();
    documents += 1;
    points += bucket.n;
  }
  return { documents, points };
}

async function describeStore(mongoBase: string): Promise<string> {
  const client = await MongoClient.connect(mongoBase, { serverSelectionTimeoutMS: 5000 });
  try {
    const info = await client.db('admin').command({ buildInfo: 1 });
    return typeof info.ferretdbVersion === 'string' ? `FerretDB ${info.ferretdbVersion}` : `MongoDB ${String(info.version)}`;
  } finally {
    await client.close();
  }
}

function build(): void {
  const result = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.status !== 0) throw new Error(`npm run build failed:\n${result.stdout}${result.stderr}`);
}

interface HistoryReadsResults {
  schema: 1;
  startedAt: string;
  finishedAt: string;
  command: string;
  machine: { cpu: string; cores: number; memoryBytes: number; node: string };
  store: string;
  redis: { version: string };
  settings: { points: number; keys: number; requests: number; service: Record<string, number> };
  fill: FillResult | null;
  history: { documents: number; points: number } | null;
  /** The run's Redis keys after the reads: batch statuses, the recent tier, rollups, locks. */
  redisUsage: RedisUsage | null;
  reads: ReadResult[];
  error: string | null;
  totalSeconds: number;
}

// The service's settings that shape what is stored and how pages are read, recorded with the results.
const SERVICE_SETTINGS = [
  'JOB_CHUNK_SIZE',
  'WORKER_CONCURRENCY',
  'WORKER_GROUP_POINTS',
  'HISTORY_RECENT_PER_KEY',
  'HISTORY_QUERY_TIMEOUT_MS',
] as const;

async function run(options: Options, results: HistoryReadsResults): Promise<void> {
  const stack = await ensureStack({
    redisUrl: process.env.REDIS_URL ?? DEFAULT_REDIS_URL,
    mongoUri: process.env.MONGODB_URI ?? DEFAULT_MONGODB_URI,
    log: (message) => log(`stack: ${message}`),
  });
  if (options.build) {
    log('npm run build');
    build();
  }
  const runId = newRunId();
  const mongoBase = withoutDatabase(stack.mongoUri);
  const dbName = `bench_history_${runId}`;
  const queueName = `bench-history-${runId}`;
  const config = loadConfig({
    ...process.env,
    MONGODB_URI: databaseUri(mongoBase, dbName),
    REDIS_URL: stack.redisUrl,
    QUEUE_NAME: queueName,
  });
  results.settings.service = Object.fromEntries(SERVICE_SETTINGS.map((name) => [name, config[name]]));
  [results.store, results.redis.version] = await Promise.all([describeStore(mongoBase), redisVersion(stack.redisUrl)]);
  log(`run ${runId}: ${results.store}, ${options.points} points over ${options.keys} keys, database ${dbName}`);

  const redis = new Redis(stack.redisUrl);
  let connection: Connection | undefined;
  let api: BenchProcess | undefined;
  try {
    connection = await connectMongo(config.MONGODB_URI, createLogger('warn', 'bench-history'), false);
    const data = new Dataset(options.points, options.keys, Date.now());
    results.fill = await fill(data, connection, config, redis);
    log(
      `fill: ${results.fill.points} points in ${results.fill.seconds.toFixed(1)} s, ${Math.round(results.fill.pointsPerSecond)} points/s`,
    );
    const counting = performance.now();
    results.history = await countHistory(connection);
    const took = secondsSince(counting).toFixed(1);
    log(`history: ${results.history.documents} documents holding ${results.history.points} points (counted in ${took} s)`);

    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    api = BenchProcess.start('api', ['dist/server.js'], serviceEnv(port, config.MONGODB_URI, stack.redisUrl, queueName));
    await waitForHttp(`${url}/readyz`, api, START_TIMEOUT_MS);
    results.reads = await measureReads(data, url, options.requests, config, redis);
    if (!api.running) throw new Error(`the API exited during the reads.\n${api.describe()}`);
    results.redisUsage = await readRedisUsage(stack.redisUrl, queueName);
  } finally {
    log('cleaning up: the API, the database, the Redis keys');
    await api?.stop();
    await connection?.close().catch(() => undefined);
    redis.disconnect();
    await deleteRunKeys(stack.redisUrl, queueName);
    await dropDatabase(mongoBase, dbName);
  }
}

const round = (ms: number | null): string => (ms === null ? '-' : ms < 10 ? ms.toFixed(1) : String(Math.round(ms)));
const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

function formatReport(results: HistoryReadsResults): string {
  const lines = [`\`${results.command}\` on ${results.store}, Redis ${results.redis.version}, ${results.machine.cores} cores`, ''];
  if (results.fill) {
    const { fill } = results;
    const spent = Object.entries(fill.writeSeconds)
      .map(([write, seconds]) => `${write} ${seconds.toFixed(0)} s`)
      .join(', ');
    lines.push(
      `Fill: ${fill.points} points in ${fill.jobs} jobs, ${fill.seconds.toFixed(0)} s, ${Math.round(fill.pointsPerSecond)} points/s (store writes: ${spent})`,
    );
  }
  if (results.history) lines.push(`History: ${results.history.documents} documents, ${results.history.points} points`);
  if (results.redisUsage) {
    const kinds = Object.entries(results.redisUsage.byKind)
      .sort(([, a], [, b]) => b.bytes - a.bytes)
      .map(([kind, { keys, bytes }]) => `${kind} ${mib(bytes)} in ${keys} keys`)
      .join(', ');
    lines.push(`Redis: the run's ${results.redisUsage.runKeys} keys hold ${mib(results.redisUsage.runKeysBytes)} (${kinds})`);
  }
  lines.push('', '| read | requests | statuses | p50 ms | p95 ms | max ms | wrong answers |', '|---|--:|---|--:|--:|--:|--:|');
  for (const read of results.reads) {
    const statuses = Object.entries(read.statuses)
      .map(([status, times]) => `${status}×${times}`)
      .join(' ');
    lines.push(
      `| ${read.name} | ${read.requests} | ${statuses} | ${round(read.p50Ms)} | ${round(read.p95Ms)} | ${round(read.maxMs)} | ${read.wrong} |`,
    );
  }
  for (const read of results.reads) {
    if (read.p50MsByPage) {
      const pages = Object.entries(read.p50MsByPage).map(([page, ms]) => `${page}: ${round(ms)}`);
      lines.push('', `${read.name}, p50 ms by page: ${pages.join(', ')}`);
    }
    for (const problem of read.problems) lines.push(`- ${read.name}: ${problem}`);
  }
  if (results.error) lines.push('', `Error: ${results.error}`);
  return `${lines.join('\n')}\n`;
}

function resultsPath(options: Options, startedAt: Date): string {
  if (options.out) return path.resolve(options.out);
  return path.join(ROOT, 'bench', 'results', `${startedAt.toISOString().slice(0, 10)}-history-reads.json`);
}

async function main(): Promise<number> {
  const options = commandOptions('bench:history', HELP, parseOptions);
  if (typeof options === 'number') return options;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stop.signal.aborted) process.exit(130);
      log(`${signal}: stopping after the current write or request, then cleaning up (again to leave at once)`);
      stop.abort(new Error(`stopped by ${signal}`));
    });
  }
  const startedAt = new Date();
  const started = performance.now();
  const cpus = os.cpus();
  const results: HistoryReadsResults = {
    schema: 1,
    startedAt: startedAt.toISOString(),
    finishedAt: '',
    command: `npm run bench:history${options.argv.length > 0 ? ` -- ${options.argv.join(' ')}` : ''}`,
    machine: { cpu: cpus[0]?.model.trim() ?? 'unknown', cores: cpus.length, memoryBytes: os.totalmem(), node: process.version },
    store: 'unknown',
    redis: { version: 'unknown' },
    settings: { points: options.points, keys: options.keys, requests: options.requests, service: {} },
    fill: null,
    history: null,
    redisUsage: null,
    reads: [],
    error: null,
    totalSeconds: 0,
  };
  try {
    await run(options, results);
  } catch (error) {
    results.error = describe(error);
  }
  results.finishedAt = new Date().toISOString();
  results.totalSeconds = secondsSince(started);
  const file = resultsPath(options, startedAt);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\n${formatReport(results)}\nresults: ${path.relative(process.cwd(), file)}\n`);
  return results.error === null && results.reads.every((read) => read.wrong === 0) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench:history failed: ${describe(error)}\n`);
    process.exit(1);
  },
);
