import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { bucketDeltas } from '../domain/series';
import type { Point } from '../domain/point-schema';
import { slotOf } from '../exactly-once/guard';
import type { DataPointModel } from '../models/data-point-model';
import { RedisSeries } from '../repositories/redis-series';
import type { SeriesStore } from '../repositories/series-store';

/*
 * The FerretDB profile keeps its rollups in Redis (docs/storage.md, "Rollups"). A Redis that lost its data (no AOF,
 * a flush, a new instance) loses them while statistics and history stay in the database: GET /api/data/series
 * would miss every point before the loss. Each process checks at start and says so; `npm run rollups:rebuild`
 * recomputes them from history. The MongoDB profile keeps rollups in the database and needs neither.
 */

/** Warns when the rollups in Redis may lack stored points; a database without history starts them complete. */
export async function checkRollups(series: SeriesStore, history: DataPointModel, logger: Logger): Promise<void> {
  if (!(series instanceof RedisSeries) || (await series.isComplete())) return;
  if ((await history.exists({})) === null) {
    await series.markComplete();
    return;
  }
  logger.warn(
    'the rollups in Redis may lack points stored before (Redis lost its data, or they predate this check): GET /api/data/series can show less than the statistics; stop the workers and the API and run `npm run rollups:rebuild`',
  );
}

export interface RebuildReport {
  /** History records read. */
  records: number;
  /** Bucket sets deleted before the rebuild. */
  cleared: number;
}

/**
 * Recomputes the Redis rollups from history: deletes the bucket sets, adds every history record's buckets (within
 * SERIES_RETENTION_*) in groups of `groupPoints`, each under a lane of its own, then marks them complete. Run it only
 * while no worker writes and no job waits: a job applied meanwhile would be in both the history read and its own
 * rollup write, or in neither.
 */
export async function rebuildRollups(
  series: SeriesStore,
  history: DataPointModel,
  options: { groupPoints: number; now?: number; progress?: (records: number) => void },
): Promise<RebuildReport> {
  if (!(series instanceof RedisSeries))
    throw new Error('this database keeps its rollups in the database (MongoDB profile): nothing to rebuild');
  const now = options.now ?? Date.now();
  const cleared = await series.clearBuckets();
  const guard = { slot: slotOf(now), lane: `rebuild${randomBytes(6).toString('hex')}`, seq: 0 };
  let points: Point[] = [];
  let records = 0;
  const flush = async (): Promise<void> => {
    if (points.length === 0) return;
    guard.seq += 1;
    await series.applyGroup([{ guard: { ...guard }, buckets: bucketDeltas(points, series.retention, now) }], new Date(now));
    records += points.length;
    points = [];
    options.progress?.(records);
  };
  const cursor = history.collection.find({}, { projection: { _id: 0, key: 1, value: 1, timestamp: 1 }, batchSize: 5000 });
  for await (const record of cursor) {
    points.push({ i: 0, key: String(record.key), value: Number(record.value), ts: (record.timestamp as Date).getTime() });
    if (points.length >= options.groupPoints) await flush();
  }
  await flush();
  await series.markComplete();
  return { records, cleared };
}
