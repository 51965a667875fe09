import { setTimeout as sleep } from 'node:timers/promises';
import Queue from 'bull';
import { describe, readAllStats, run, secondsSince, type Mismatch } from '../load-test';
import { databaseUri, dropDatabase, loadOptions, log, percentile, type BenchContext } from './common';
import { latencyPrefix, measureLatency, type LatencyResult } from './latency';
import { BenchProcess, freePort, stopAll, waitForConsumers, waitForHttp } from './processes';
import { deleteRunKeys, readRedisUsage, RedisMemorySampler, type RedisUsage } from './redis-usage';

export interface ReadsResult {
  key: string;
  /** History records of all keys in the database when the reads ran. */
  historyRecords: number;
  /** Requests of each kind made (fewer than asked when a kind hit its time cap). */
  statsRequests: number;
  historyRequests: number;
  statsP50Ms: number | null;
  statsP95Ms: number | null;
  historyP50Ms: number | null;
  historyP95Ms: number | null;
  /** Why a kind stopped early (a failed or timed-out request), else null. */
  statsError: string | null;
  historyError: string | null;
  /** GET /api/data/series of the key, the last 24 h at 1m; keys: every key with statistics in the database. (Absent in results before series.) */
  keys?: number;
  seriesRequests?: number;
  seriesP50Ms?: number | null;
  seriesP95Ms?: number | null;
  seriesError?: string | null;
}

export interface ServiceResult {
  workers: number;
  points: number;
  countedPoints: number;
  acceptedPointsPerSecond: number;
  /** Until every point was counted, or until the phase was stopped (timedOut). */
  seconds: number;
  pointsPerSecond: number;
  exact: boolean;
  timedOut: boolean;
  error: string | null;
  mismatches: Mismatch[];
  latency: LatencyResult | null;
  reads: ReadsResult | null;
  apiPeakRssBytes: number | null;
  workerPeakRssBytes: (number | null)[];
  redis: RedisUsage | null;
  /** The whole server's used_memory before the run and at its highest during it (other users of Redis count too). */
  redisUsedMemory: { beforeBytes: number; peakBytes: number } | null;
  /** Wall-clock seconds of each step of this run. */
  phases: Record<string, number>;
}

export interface ServiceRunOptions {
  workers: number;
  /** performance.now() by which the throughput phase stops waiting. */
  deadline: number;
  latencySeconds: number;
  /** GET requests of each kind in the read phase; 0 skips it. */
  reads: number;
}

const START_TIMEOUT_MS = 60_000;
const DRAIN_TIMEOUT_MS = 60_000;
const HISTORY_LIMIT = 100;
// One request that takes longer is recorded as a failure: its p95 is "over a minute".
const READ_TIMEOUT_MS = 60_000;
// The read phase stops asking after this long per kind (at least one request each): on FerretDB one history
// page of a key among 1e6 records can take many seconds, and 200 of them would blow the bench's time budget.
const READS_SECONDS = { stats: 10, history: 30, series: 10 };

/** The service's variables for one run; the rest of the environment (JOB_CHUNK_SIZE, WORKER_CONCURRENCY, ...) passes through. */
export function serviceEnv(port: number, mongoUri: string, redisUrl: string, queueName: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PORT: String(port),
    MONGODB_URI: mongoUri,
    REDIS_URL: redisUrl,
    QUEUE_NAME: queueName,
    LOG_LEVEL: 'warn',
    RATE_LIMIT_PER_MINUTE: '0',
    // Several workers on one machine: one METRICS_PORT each would be needed.
    METRICS_PORT: '0',
    // Set and empty, so a developer's .env cannot close the API to the bench (dotenv never overrides a set variable).
    INGEST_API_KEYS: '',
    READ_API_KEYS: '',
  };
}

function assertRunning(processes: readonly BenchProcess[], phase: string): void {
  const dead = processes.find((process) => !process.running);
  if (dead) throw new Error(`${dead.name} exited during ${phase}.\n${dead.describe()}`);
}

/** After a stopped phase: drop the jobs still waiting and let the active ones finish, so later phases start unloaded. */
async function drainQueue(redisUrl: string, queueName: string): Promise<void> {
  const queue = new Queue(queueName, redisUrl);
  try {
    await queue.empty();
    const deadline = performance.now() + DRAIN_TIMEOUT_MS;
    while ((await queue.getActiveCount()) > 0 && performance.now() < deadline) await sleep(250);
  } finally {
    await queue.close();
  }
}

async function timeGet(url: string): Promise<{ ms: number; body: unknown }> {
  const started = performance.now();
  const response = await fetch(url, { signal: AbortSignal.timeout(READ_TIMEOUT_MS) });
  const text = await response.text();
  const ms = performance.now() - started;
  if (response.status !== 200) throw new Error(`GET ${url} answered ${response.status}: ${text.slice(0, 500)}`);
  return { ms, body: JSON.parse(text) as unknown };
}

/** Points counted under `prefix/`: what history holds for them. */
async function countedUnder(ctx: BenchContext, url: string, prefix: string): Promise<Map<string, number>> {
  const stats = await readAllStats({ ...loadOptions(ctx, 0, url, 0), prefix }, READ_TIMEOUT_MS);
  return new Map([...stats].map(([key, view]) => [key, view.count]));
}

/** Times `url` one request at a time until `requests` answered or `seconds` passed (at least one); stops at the first failure. */
async function timeRequests(
  url: string,
  requests: number,
  seconds: number,
  check: (body: unknown) => void,
): Promise<{ samples: number[]; error: string | null }> {
  const samples: number[] = [];
  const until = performance.now() + seconds * 1000;
  try {
    while (samples.length < requests && (samples.length === 0 || performance.now() < until)) {
      const { ms, body } = await timeGet(url);
      check(body);
      samples.push(ms);
    }
    return { samples, error: null };
  } catch (error) {
    return { samples, error: describe(error) };
  }
}

/** One key's stats, its newest 100 history records and its last 24 h of minutes, `requests` times each, one at a time. */
async function measureReads(ctx: BenchContext, url: string, requests: number): Promise<ReadsResult> {
  const key = `${ctx.prefix}/0`;
  // Everything this database holds: the run's points (all that were counted) and the latency phase's.
  const main = await countedUnder(ctx, url, ctx.prefix);
  const counts = [...main.values(), ...(await countedUnder(ctx, url, latencyPrefix(ctx))).values()];
  const expectedItems = Math.min(HISTORY_LIMIT, main.get(key) ?? 0);
  const stats = await timeRequests(`${url}/api/data/stats/${encodeURIComponent(key)}`, requests, READS_SECONDS.stats, () => undefined);
  const history = await timeRequests(
    `${url}/api/data/history?key=${encodeURIComponent(key)}&limit=${HISTORY_LIMIT}`,
    requests,
    READS_SECONDS.history,
    (body) => {
      const items = typeof body === 'object' && body !== null && 'items' in body && Array.isArray(body.items) ? body.items.length : -1;
      if (items !== expectedItems) throw new Error(`history answered ${items} records where ${expectedItems} were expected`);
    },
  );
  const series = await timeRequests(
    `${url}/api/data/series?key=${encodeURIComponent(key)}&step=1m&from=${Date.now() - 24 * 3_600_000}`,
    requests,
    READS_SECONDS.series,
    (body) => {
      const buckets = (body as { series?: { buckets?: { count: number }[] }[] }).series?.[0]?.buckets ?? [];
      const points = buckets.reduce((total, bucket) => total + bucket.count, 0);
      if (points !== (main.get(key) ?? 0)) throw new Error(`series buckets hold ${points} points where ${main.get(key) ?? 0} were counted`);
    },
  );
  return {
    key,
    keys: counts.length,
    seriesRequests: series.samples.length,
    seriesP50Ms: percentile(series.samples, 50),
    seriesP95Ms: percentile(series.samples, 95),
    seriesError: series.error,
    historyRecords: counts.reduce((total, count) => total + count, 0),
    statsRequests: stats.samples.length,
    historyRequests: history.samples.length,
    statsP50Ms: percentile(stats.samples, 50),
    statsP95Ms: percentile(stats.samples, 95),
    historyP50Ms: percentile(history.samples, 50),
    historyP95Ms: percentile(history.samples, 95),
    statsError: stats.error,
    historyError: history.error,
  };
}

/**
 * The built service: one API and `workers` worker processes with a fresh
 * database and queue, fed over HTTP by the load generator until every point
 * is counted (or the deadline passes); then the latency phase at half the
 * rate reached, the read phase, memory figures, and a clean teardown.
 */
export async function runService(ctx: BenchContext, size: number, options: ServiceRunOptions): Promise<ServiceResult> {
  const label = `${size}-w${options.workers}-k${ctx.keys}`;
  const dbName = `bench_${ctx.runId}_service_${label}`;
  const queueName = `bench-${ctx.runId}-service-${label}`;
  const phases: Record<string, number> = {};
  const result: ServiceResult = {
    workers: options.workers,
    points: size,
    countedPoints: 0,
    acceptedPointsPerSecond: 0,
    seconds: 0,
    pointsPerSecond: 0,
    exact: false,
    timedOut: false,
    error: null,
    mismatches: [],
    latency: null,
    reads: null,
    apiPeakRssBytes: null,
    workerPeakRssBytes: [],
    redis: null,
    redisUsedMemory: null,
    phases,
  };
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = serviceEnv(port, databaseUri(ctx.mongoBase, dbName), ctx.redisUrl, queueName);
  const processes: BenchProcess[] = [];
  let step = performance.now();
  const lap = (name: string): void => {
    phases[name] = secondsSince(step);
    step = performance.now();
  };
  const sampler = new RedisMemorySampler(ctx.redisUrl);
  try {
    await sampler.start();
    const api = BenchProcess.start('api', ['dist/server.js'], env);
    processes.push(api);
    const workers = Array.from({ length: options.workers }, (_, index) =>
      BenchProcess.start(`worker ${index + 1}`, ['dist/worker.js'], env),
    );
    processes.push(...workers);
    await waitForHttp(`${url}/readyz`, api, START_TIMEOUT_MS);
    await waitForConsumers(ctx.redisUrl, queueName, workers, START_TIMEOUT_MS);
    lap('start');

    const timeoutSeconds = Math.max(1, Math.ceil((options.deadline - performance.now()) / 1000));
    const started = performance.now();
    const summary = await run(loadOptions(ctx, size, url, timeoutSeconds), ctx.baseTs);
    result.seconds = summary.endToEndSeconds ?? secondsSince(started);
    result.countedPoints = summary.countedPoints;
    result.acceptedPointsPerSecond = summary.acceptedPointsPerSecond;
    result.pointsPerSecond = summary.countedPoints / result.seconds;
    result.timedOut = summary.timedOut;
    result.exact = summary.exact;
    result.mismatches = summary.mismatches;
    lap('throughput');
    assertRunning(processes, 'the throughput phase');
    if (result.timedOut) {
      log(
        `service ${label}: stopped after ${Math.round(result.seconds)} s with ${result.countedPoints}/${size} points counted; dropping the backlog`,
      );
      await drainQueue(ctx.redisUrl, queueName);
      lap('drain');
    }

    if (options.latencySeconds > 0 && result.pointsPerSecond > 0) {
      log(`service ${label}: latency phase at ${Math.round(result.pointsPerSecond / 2)} points/s for ${options.latencySeconds} s`);
      result.latency = await measureLatency(ctx, url, result.pointsPerSecond / 2, options.latencySeconds);
      lap('latency');
      assertRunning(processes, 'the latency phase');
    }
    if (options.reads > 0) {
      log(`service ${label}: read phase (${options.reads} stats and ${options.reads} history requests)`);
      result.reads = await measureReads(ctx, url, options.reads);
      lap('reads');
    }
    assertRunning(processes, 'the run');
    result.apiPeakRssBytes = api.peakRssBytes();
    result.workerPeakRssBytes = workers.map((worker) => worker.peakRssBytes());
    result.redis = await readRedisUsage(ctx.redisUrl, queueName);
    result.redisUsedMemory = sampler.stop();
  } catch (error) {
    result.error = describe(error);
    result.exact = false;
  } finally {
    sampler.stop();
    await stopAll(processes);
    await deleteRunKeys(ctx.redisUrl, queueName);
    await dropDatabase(ctx.mongoBase, dbName);
    lap('teardown');
  }
  return result;
}
