import { setTimeout as sleep } from 'node:timers/promises';
import Redis from 'ioredis';
import { MongoClient } from 'mongodb';
import { describe, expectedTotals, secondsSince, sendAll, type Mismatch, type SendCounters } from '../load-test';
import { compareCore, databaseUri, dropDatabase, loadOptions, log, type BenchContext, type CoreTotals } from './common';
import { BenchProcess, freePort, stopAll, waitForConsumers, waitForHttp } from './processes';
import { deleteRunKeys, readRedisUsage, type RedisUsage } from './redis-usage';

export interface NaiveResult {
  /** The sample: the first `points` points of the bench's data. */
  points: number;
  countedPoints: number;
  acceptedPointsPerSecond: number;
  /** Until the last point of the sample is counted. */
  seconds: number;
  pointsPerSecond: number;
  apiPeakRssBytes: number | null;
  workerPeakRssBytes: number | null;
  redis: RedisUsage | null;
  exact: boolean;
  /** Every job of the sample was processed (counted or not): the design can lose counts, so this ends the run too. */
  settled: boolean;
  timedOut: boolean;
  error: string | null;
  mismatches: Mismatch[];
}

const START_TIMEOUT_MS = 60_000;
const POLL_MS = 250;

/** Every stats document of the naive design, by key. */
async function readNaiveStats(client: MongoClient, dbName: string): Promise<Map<string, CoreTotals>> {
  const docs = await client
    .db(dbName)
    .collection<CoreTotals & { key: string }>('stats')
    .find({}, { projection: { _id: 0, key: 1, count: 1, sum: 1, min: 1, max: 1 } })
    .toArray();
  return new Map(docs.map((doc) => [doc.key, { count: doc.count, sum: doc.sum, min: doc.min, max: doc.max }]));
}

/** No job of the queue is waiting, running or delayed: every point was processed. */
async function queueIdle(redis: Redis, queueName: string): Promise<boolean> {
  const prefix = `bull:${queueName}`;
  const [waiting, active, paused, delayed] = await Promise.all([
    redis.llen(`${prefix}:wait`),
    redis.llen(`${prefix}:active`),
    redis.llen(`${prefix}:paused`),
    redis.zcard(`${prefix}:delayed`),
  ]);
  return waiting + active + paused + delayed === 0;
}

const countOf = (stats: Map<string, CoreTotals>): number => [...stats.values()].reduce((total, stats) => total + stats.count, 0);

/**
 * The original design (bench/naive/), fed by the same load generator over
 * HTTP, until every point of the sample is counted. Its stats keep no
 * order-independent last value, so count, sum, min and max are checked.
 */
export async function runNaive(ctx: BenchContext, sample: number, deadline: number): Promise<NaiveResult> {
  const dbName = `bench_${ctx.runId}_naive`;
  const queueName = `bench-${ctx.runId}-naive`;
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    MONGODB_URI: databaseUri(ctx.mongoBase, dbName),
    REDIS_URL: ctx.redisUrl,
    QUEUE_NAME: queueName,
  };
  const tsx = ['--import', 'tsx'];
  const api = BenchProcess.start('naive api', [...tsx, 'bench/naive/server.ts'], env);
  const worker = BenchProcess.start('naive worker', [...tsx, 'bench/naive/worker.ts'], env);
  const client = await MongoClient.connect(ctx.mongoBase);
  const redis = new Redis(ctx.redisUrl);
  const url = `http://127.0.0.1:${port}`;
  const result: NaiveResult = {
    points: sample,
    countedPoints: 0,
    acceptedPointsPerSecond: 0,
    seconds: 0,
    pointsPerSecond: 0,
    apiPeakRssBytes: null,
    workerPeakRssBytes: null,
    redis: null,
    exact: false,
    settled: false,
    timedOut: false,
    error: null,
    mismatches: [],
  };
  try {
    await waitForHttp(`${url}/healthz`, api, START_TIMEOUT_MS);
    await waitForConsumers(ctx.redisUrl, queueName, [worker], START_TIMEOUT_MS);
    const options = loadOptions(ctx, sample, url, 0);
    const counters: SendCounters = { requests: 0, retries: 0, sentPoints: 0, acceptedPoints: 0 };
    const started = performance.now();
    await sendAll(options, ctx.baseTs, counters);
    result.acceptedPointsPerSecond = counters.acceptedPoints / secondsSince(started);
    let stats = new Map<string, CoreTotals>();
    let lastLog = performance.now();
    let idlePolls = 0;
    for (;;) {
      // Idle first, then the stats: a count read after the queue went idle is final.
      idlePolls = (await queueIdle(redis, queueName)) ? idlePolls + 1 : 0;
      stats = await readNaiveStats(client, dbName);
      result.countedPoints = countOf(stats);
      // Twice idle in a row: no job between two of Bull's list moves. The original design on FerretDB loses
      // concurrent `$inc`s, so its count may never reach the sample.
      if (result.countedPoints >= sample || idlePolls >= 2) {
        result.settled = true;
        break;
      }
      if (!worker.running) throw new Error(`the naive worker exited.\n${worker.describe()}`);
      if (performance.now() >= deadline) {
        result.timedOut = true;
        break;
      }
      if (performance.now() - lastLog > 5000) {
        lastLog = performance.now();
        log(
          `naive: ${result.countedPoints}/${sample} points counted, ${Math.round(result.countedPoints / secondsSince(started))} points/s`,
        );
      }
      await sleep(POLL_MS);
    }
    result.seconds = secondsSince(started);
    // Settled: every point was processed, whether its count survived or not.
    result.pointsPerSecond = (result.settled ? sample : result.countedPoints) / result.seconds;
    if (!result.timedOut) {
      result.mismatches = compareCore(expectedTotals(options, ctx.baseTs), stats);
      result.exact = result.mismatches.length === 0;
    }
    result.apiPeakRssBytes = api.peakRssBytes();
    result.workerPeakRssBytes = worker.peakRssBytes();
    result.redis = await readRedisUsage(ctx.redisUrl, queueName);
  } catch (error) {
    result.error = describe(error);
  } finally {
    await stopAll([api, worker]);
    await client.close();
    redis.disconnect();
    await deleteRunKeys(ctx.redisUrl, queueName);
    await dropDatabase(ctx.mongoBase, dbName);
  }
  return result;
}
