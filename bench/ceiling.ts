import type { CommandStartedEvent } from 'mongodb';
import { compareTotals, expectedTotals, pointAt, type Mismatch, type StatsView as LoadStatsView } from '../load-test';
import { connectMongo } from '../src/composition';
import { validatePoint, type Point } from '../src/domain/point-schema';
import { chunk, groupByKey } from '../src/domain/stats';
import { createLogger } from '../src/logger';
import type { Config } from '../src/config/config';
import { createModels, ensureIndexes, type Models } from '../src/models';
import { AggregateRepository } from '../src/repositories/aggregate-repository';
import { HistoryRepository } from '../src/repositories/history-repository';
import { newBatchId } from '../src/services/ingest-service';
import { GUARD_RETENTION, LanePool } from '../src/services/lane-pool';
import { databaseUri, dropDatabase, loadOptions, log, withUriOption, type BenchContext } from './common';

const PROGRESS_MS = 5000;

export interface CeilingResult {
  points: number;
  jobs: number;
  /** Time spent in the writes only (building the points is not storage work). */
  seconds: number;
  pointsPerSecond: number;
  /** MongoDB commands sent per job, by command name (round trips). */
  commandsPerJob: Record<string, number>;
  historyInserted: number;
  exact: boolean;
  timedOut: boolean;
  mismatches: Mismatch[];
}

/** The request `index` of the load generator, as the API turns it into points (validated, indexed within the request). */
function requestPoints(ctx: BenchContext, size: number, index: number, receivedAt: number): Point[] {
  const options = loadOptions(ctx, size, '', 0);
  const points: Point[] = [];
  const end = Math.min(size, (index + 1) * ctx.batch);
  for (let i = index * ctx.batch; i < end; i += 1) {
    const raw = pointAt(i, options, ctx.baseTs);
    const result = validatePoint(raw, i - index * ctx.batch, receivedAt);
    if (!('point' in result)) throw new Error(`generated point ${i} is invalid: ${result.rejection.message}`);
    points.push(result.point);
  }
  return points;
}

interface JobWriter {
  aggregates: AggregateRepository;
  /** Writes one job as the worker does; returns the history records inserted. */
  write(batchId: string, points: readonly Point[], receivedAt: Date): Promise<number>;
}

/**
 * What the worker writes to MongoDB for one job, through the service's own
 * repositories, built from the same configuration (keep in step with
 * src/composition.ts and src/services/write-combiner.ts): new keys into the
 * key list, the job's deltas under a fresh lane sequence, its history.
 * Left out on purpose: Redis locks and claims, processed records, the batch
 * status and the publish, which are the service's bookkeeping, not storage.
 */
async function createJobWriter(models: Models, config: Config): Promise<JobWriter> {
  const aggregates = new AggregateRepository(models.aggregate, GUARD_RETENTION, config.AGGREGATE_WRITE_BATCH, config.AGGREGATE_SHARDS);
  const history = new HistoryRepository(models.dataPoint);
  await aggregates.prepare(new Date());
  const lanes = new LanePool();
  const knownKeys = new Set<string>();
  return {
    aggregates,
    async write(batchId, points, receivedAt) {
      const now = new Date();
      const deltas = groupByKey(points);
      const unknownKeys = deltas.map((delta) => delta.key).filter((key) => !knownKeys.has(key));
      if (unknownKeys.length > 0) {
        await aggregates.register(unknownKeys, now);
        for (const key of unknownKeys) knownKeys.add(key);
      }
      const guard = lanes.acquire(now.getTime());
      await aggregates.applyDeltas(deltas, guard, now);
      lanes.release(guard, true);
      return history.insertPoints(batchId, points, receivedAt, now);
    },
  };
}

/**
 * The storage ceiling: the same points, grouped into the same jobs as the
 * API would (one request of `batch` points, split into JOB_CHUNK_SIZE
 * chunks), written one job after the other (see createJobWriter). No HTTP,
 * no queue, no concurrency: what is left is what the store must do.
 */
export async function runCeiling(ctx: BenchContext, size: number, deadline: number): Promise<CeilingResult> {
  const dbName = `bench_${ctx.runId}_ceiling_${size}`;
  const logger = createLogger('warn', 'bench-ceiling');
  // monitorCommands in the URI: the driver reports every command sent, which counts the round trips per job.
  const connection = await connectMongo(withUriOption(databaseUri(ctx.mongoBase, dbName), 'monitorCommands=true'), logger, false);
  const commands = new Map<string, number>();
  const client = connection.getClient();
  const countCommand = (event: CommandStartedEvent): void => {
    commands.set(event.commandName, (commands.get(event.commandName) ?? 0) + 1);
  };
  try {
    const models = createModels(connection);
    await ensureIndexes(models, connection);
    const writer = await createJobWriter(models, ctx.config);
    client.on('commandStarted', countCommand);
    let seconds = 0;
    let jobs = 0;
    let points = 0;
    let historyInserted = 0;
    let timedOut = false;
    let lastLog = performance.now();
    const requests = Math.ceil(size / ctx.batch);
    for (let request = 0; request < requests && !timedOut; request += 1) {
      const receivedAt = Date.now();
      const batchId = newBatchId(receivedAt);
      for (const job of chunk(requestPoints(ctx, size, request, receivedAt), ctx.config.JOB_CHUNK_SIZE)) {
        const started = performance.now();
        historyInserted += await writer.write(batchId, job, new Date(receivedAt));
        seconds += (performance.now() - started) / 1000;
        jobs += 1;
        points += job.length;
      }
      timedOut = points < size && performance.now() >= deadline;
      if (performance.now() - lastLog > PROGRESS_MS) {
        lastLog = performance.now();
        log(`ceiling ${size}: ${points}/${size} points written, ${Math.round(points / seconds)} points/s`);
      }
    }
    client.off('commandStarted', countCommand);
    const mismatches = timedOut ? [] : await compareStored(ctx, size, writer.aggregates);
    if (!timedOut && historyInserted !== size) mismatches.push({ key: '(history)', problems: [`${historyInserted} of ${size} inserted`] });
    return {
      points,
      jobs,
      seconds,
      pointsPerSecond: points / seconds,
      commandsPerJob: Object.fromEntries([...commands].map(([name, count]) => [name, count / Math.max(jobs, 1)])),
      historyInserted,
      exact: !timedOut && mismatches.length === 0,
      timedOut,
      mismatches,
    };
  } finally {
    await connection.close().catch(() => undefined);
    await dropDatabase(ctx.mongoBase, dbName);
  }
}

async function compareStored(ctx: BenchContext, size: number, aggregates: AggregateRepository): Promise<Mismatch[]> {
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
