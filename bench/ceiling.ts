import { BSON, type CommandStartedEvent } from 'mongodb';
import {
  compareTotals,
  describe,
  expectedTotals,
  pointAt,
  secondsSince,
  type Mismatch,
  type StatsView as LoadStatsView,
} from '../load-test';
import { connectMongo } from '../src/storage/connect';
import { validatePoint, type Point } from '../src/domain/point-schema';
import { chunk } from '../src/domain/stats';
import { createLogger } from '../src/logger';
import type { Config } from '../src/config/config';
import Redis from 'ioredis';
import type { Connection } from 'mongoose';
import type { Logger } from 'pino';
import type { AggregateStore } from '../src/storage/contract';
import { createRepositories } from '../src/storage';
import { deleteRunKeys } from './redis-usage';
import { newBatchId } from '../src/services/ingest-service';
import { LanePool } from '../src/exactly-once/lane-pool';
import type { JobPayload } from '../src/domain/job-payload';
import { WriteCombiner } from '../src/services/write-combiner';
import { jobWrites } from '../src/services/job-processor';
import { databaseUri, dropDatabase, loadOptions, log, withUriOption, type BenchContext } from './common';

const PROGRESS_MS = 5000;

export interface CeilingResult {
  /** Jobs written together: 1 is one job after the other; more is what the worker's group commit does under load. */
  jobsPerWrite: number;
  points: number;
  jobs: number;
  /** Time spent in the writes only (building the points is not storage work). */
  seconds: number;
  pointsPerSecond: number;
  /** MongoDB commands sent per job, by command name (round trips). */
  commandsPerJob: Record<string, number>;
  /**
   * What the store is sent per 1,000 points, whatever the store: commands, documents written (inserted documents and
   * update statements) and command bytes (BSON). The MongoDB profile's cost can be read off these without a MongoDB.
   */
  per1000Points?: { commands: number; documents: number; bytes: number };
  /** Seconds spent in each store write, summed over the run: where the storage time goes. (Absent in older results.) */
  writeSeconds?: { statistics: number; series: number; history: number; processed?: number };
  historyInserted: number;
  exact: boolean;
  timedOut: boolean;
  error: string | null;
  mismatches: Mismatch[];
}

/** One job as the worker gets it: a chunk of one request. */
type Job = JobPayload;

/** The jobs of request `index` of the load generator, as the API makes them: validated points, indexed within the request, chunked. */
function requestJobs(ctx: BenchContext, size: number, index: number): Job[] {
  const options = loadOptions(ctx, size, '', 0);
  const receivedAt = Date.now();
  const points: Point[] = [];
  const end = Math.min(size, (index + 1) * ctx.batch);
  for (let i = index * ctx.batch; i < end; i += 1) {
    const raw = pointAt(i, options, ctx.baseTs);
    const result = validatePoint(raw, i - index * ctx.batch, receivedAt);
    if (!('point' in result)) throw new Error(`generated point ${i} is invalid: ${result.rejection.message}`);
    points.push(result.point);
  }
  const batchId = newBatchId(receivedAt);
  return chunk(points, ctx.config.JOB_CHUNK_SIZE).map((jobPoints, index) => ({
    batchId,
    chunk: index,
    points: jobPoints,
    receivedAt,
  }));
}

type WriteSeconds = NonNullable<CeilingResult['writeSeconds']>;

interface JobWriter {
  aggregates: AggregateStore;
  /** Writes these jobs together as the worker does, adding each write's seconds to `spent`; returns the history records inserted. */
  write(jobs: readonly Job[], spent: WriteSeconds): Promise<number>;
}

/**
 * What the worker writes to MongoDB for a group of jobs, through its own group commit (WriteCombiner) and the
 * service's repositories, built by the same factory (src/storage): statistics and rollup buckets under fresh lane
 * sequences (one lane per job, as a worker's concurrent jobs have), history, processed records. Left out: claims,
 * the batch status and the publishes, which are Redis bookkeeping, not storage.
 */
async function createJobWriter(connection: Connection, config: Config, redis: Redis, logger: Logger): Promise<JobWriter> {
  const { aggregates, history, series, processed } = await createRepositories({ connection, config, redis, logger });
  const lanes = new LanePool();
  let spent: WriteSeconds = { statistics: 0, series: 0, history: 0, processed: 0 };
  let inserted = 0;
  const combiner = new WriteCombiner({
    aggregates,
    series,
    processed,
    history: {
      insertJobs: async (...args) => {
        const count = await history.insertJobs(...args);
        inserted += count;
        return count;
      },
    },
    clock: Date.now,
    maxPoints: Number.POSITIVE_INFINITY,
    // The jobs of a write are handed over at once: no waiting for more.
    gatherMs: 0,
    observer: { group: () => undefined, storeWrite: (write, seconds) => (spent[write] = (spent[write] ?? 0) + seconds) },
  });
  return {
    aggregates,
    async write(jobs, into) {
      spent = into;
      inserted = 0;
      const startedAt = Date.now();
      const writes = jobs.map((job) => jobWrites(job, lanes.acquire(startedAt), 1, series.retention, startedAt));
      await Promise.all(writes.map((write) => combiner.write(write)));
      for (const write of writes) lanes.release(write.guard, true);
      return inserted;
    },
  };
}

/**
 * The storage ceiling: the same points, cut into the same jobs as the API
 * cuts them (requests of `batch` points, JOB_CHUNK_SIZE chunks), written
 * `jobsPerWrite` jobs at a time, one write after the other (see
 * createJobWriter). No HTTP, no queue, no concurrency: what is left is what
 * the store must do.
 */
export async function runCeiling(ctx: BenchContext, size: number, jobsPerWrite: number, deadline: number): Promise<CeilingResult> {
  const dbName = `bench_${ctx.runId}_ceiling_${size}_j${jobsPerWrite}_k${ctx.keys}`;
  const label = `ceiling ${size} over ${ctx.keys} keys, ${jobsPerWrite} job(s) per write`;
  const result: CeilingResult = {
    jobsPerWrite,
    points: 0,
    jobs: 0,
    seconds: 0,
    pointsPerSecond: 0,
    commandsPerJob: {},
    per1000Points: { commands: 0, documents: 0, bytes: 0 },
    writeSeconds: { statistics: 0, series: 0, history: 0, processed: 0 },
    historyInserted: 0,
    exact: false,
    timedOut: false,
    error: null,
    mismatches: [],
  };
  const logger = createLogger('warn', 'bench-ceiling');
  // monitorCommands in the URI: the driver reports every command sent, which counts the round trips per job.
  const connection = await connectMongo(withUriOption(databaseUri(ctx.mongoBase, dbName), 'monitorCommands=true'), logger, false);
  // Its own Redis namespace too (rollups and the history tier live there on FerretDB), deleted with the database.
  const queueName = `bench-${ctx.runId}-ceiling-${size}-j${jobsPerWrite}-k${ctx.keys}`;
  const config = { ...ctx.config, QUEUE_NAME: queueName };
  const redis = new Redis(ctx.config.REDIS_URL);
  const commands = new Map<string, number>();
  const client = connection.getClient();
  const sent = { commands: 0, documents: 0, bytes: 0 };
  const countCommand = (event: CommandStartedEvent): void => {
    commands.set(event.commandName, (commands.get(event.commandName) ?? 0) + 1);
    const command = event.command as { documents?: unknown[]; updates?: unknown[]; deletes?: unknown[] };
    sent.commands += 1;
    sent.documents += (command.documents?.length ?? 0) + (command.updates?.length ?? 0) + (command.deletes?.length ?? 0);
    sent.bytes += BSON.calculateObjectSize(event.command);
  };
  try {
    const writer = await createJobWriter(connection, config, redis, logger);
    client.on('commandStarted', countCommand);
    let lastLog = performance.now();
    let pending: Job[] = [];
    const write = async (jobs: Job[]): Promise<void> => {
      const started = performance.now();
      result.historyInserted += await writer.write(jobs, (result.writeSeconds ??= { statistics: 0, series: 0, history: 0, processed: 0 }));
      result.seconds += secondsSince(started);
      result.jobs += jobs.length;
      result.points += jobs.reduce((total, job) => total + job.points.length, 0);
    };
    const requests = Math.ceil(size / ctx.batch);
    for (let request = 0; request < requests && !result.timedOut; request += 1) {
      pending.push(...requestJobs(ctx, size, request));
      while (pending.length >= jobsPerWrite) {
        await write(pending.slice(0, jobsPerWrite));
        pending = pending.slice(jobsPerWrite);
      }
      result.timedOut = request < requests - 1 && performance.now() >= deadline;
      if (performance.now() - lastLog > PROGRESS_MS) {
        lastLog = performance.now();
        log(`${label}: ${result.points}/${size} points written, ${Math.round(result.points / result.seconds)} points/s`);
      }
    }
    if (pending.length > 0 && !result.timedOut) await write(pending);
    client.off('commandStarted', countCommand);
    result.pointsPerSecond = result.points / result.seconds;
    result.commandsPerJob = Object.fromEntries([...commands].map(([name, count]) => [name, count / Math.max(result.jobs, 1)]));
    const thousands = Math.max(result.points, 1) / 1000;
    result.per1000Points = {
      commands: sent.commands / thousands,
      documents: sent.documents / thousands,
      bytes: Math.round(sent.bytes / thousands),
    };
    log(
      `${label}: per 1,000 points ${result.per1000Points.commands.toFixed(2)} commands, ` +
        `${result.per1000Points.documents.toFixed(0)} documents, ${(result.per1000Points.bytes / 1024).toFixed(1)} KiB sent; ` +
        `seconds in statistics ${result.writeSeconds?.statistics.toFixed(1)}, series ${result.writeSeconds?.series.toFixed(1)}, history ${result.writeSeconds?.history.toFixed(1)}, processed records ${result.writeSeconds?.processed?.toFixed(1)}`,
    );
    if (!result.timedOut) {
      result.mismatches = await compareStored(ctx, size, writer.aggregates);
      if (result.historyInserted !== size)
        result.mismatches.push({ key: '(history)', problems: [`${result.historyInserted} of ${size} inserted`] });
      result.exact = result.mismatches.length === 0;
    }
  } catch (error) {
    result.error = describe(error);
  } finally {
    await connection.close().catch(() => undefined);
    redis.disconnect();
    await deleteRunKeys(ctx.redisUrl, queueName);
    await dropDatabase(ctx.mongoBase, dbName);
  }
  return result;
}

async function compareStored(ctx: BenchContext, size: number, aggregates: AggregateStore): Promise<Mismatch[]> {
  const stored = new Map<string, LoadStatsView>();
  let after: string | undefined;
  for (;;) {
    const page = await aggregates.list({ prefix: `${ctx.prefix}/`, limit: 1000, after });
    for (const view of page.items) stored.set(view.key, view);
    if (page.nextCursor === null) break;
    after = page.nextCursor;
  }
  return compareTotals(expectedTotals(loadOptions(ctx, size, '', 0), ctx.baseTs), stored);
}
