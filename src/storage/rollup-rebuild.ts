import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { bucketDeltas, STEP_MS, STEPS, type Step } from '../domain/series';
import type { Point } from '../domain/point-schema';
import { slotOf } from '../exactly-once/guard';
import type { RebuildableSeries, SeriesStore } from './contract';
import { fromDocument } from './shared/history-repository';
import type { Models } from './shared/models';
import type { HistoryBucketDocument } from './shared/models/history-bucket-model';

/*
 * The FerretDB profile keeps its rollups in Redis (docs/storage.md, "Rollups"). A Redis that lost its data (no AOF,
 * a flush, a new instance) loses them while statistics and history stay in the database: GET /api/data/series
 * would miss every point before the loss. Each process checks at start and says so; `npm run rollups:rebuild`
 * recomputes them from history. The MongoDB profile keeps rollups in the database and needs neither.
 */

// Points per rollup write of a rebuild: one Lua call each, about as large as a worker's busiest group.
const REBUILD_GROUP_POINTS = 5000;

/**
 * Warns when the rollups in Redis may lack stored points. A database that never processed a job (no history, no
 * processed record) starts them complete.
 */
export async function checkRollups(series: SeriesStore, models: Models, logger: Logger): Promise<void> {
  const rollups = series.rebuildable();
  if (!rollups || (await rollups.isComplete())) return;
  const [history, processed] = await Promise.all([models.history.exists({}), models.processedRecord.exists({})]);
  if (history === null && processed === null) {
    await rollups.markComplete();
    return;
  }
  logger.warn(
    'the rollups in Redis may lack points stored before (Redis lost its data, or they were written before this check): GET /api/data/series can show less than the statistics; see `npm run rollups:rebuild` (docs/storage.md, "Rollups")',
  );
}

export interface RebuildReport {
  /** History records read. */
  records: number;
  /** Buckets deleted before the rebuild. */
  cleared: number;
  /** Per step, the first bucket start rebuilt: older buckets hold points history no longer has, and are kept. */
  from: Record<Step, number>;
}

/**
 * Recomputes the Redis rollups from history: deletes the buckets history can fill again (all of them, or with
 * HISTORY_RETENTION only those starting within it), adds every point of history's buckets there under a lane of its
 * own, then marks the rollups complete. The caller makes sure no job is processed meanwhile (see
 * scripts/rebuild-rollups.ts): a job applied during the rebuild would be in both the history read and its own
 * rollup write, or in neither.
 */
export async function rebuildRollups(series: SeriesStore, models: Models, options: RebuildOptions): Promise<RebuildReport> {
  const rollups = series.rebuildable();
  if (!rollups) throw new Error('this database keeps its rollups in the database (MongoDB profile): nothing to rebuild');
  return rollups.withRebuildLock(() => rebuild(series, rollups, models, options));
}

export interface RebuildOptions {
  /** HISTORY_RETENTION. */
  historyRetentionMs: number | null;
  groupPoints?: number;
  progress?: (records: number) => void;
}

async function rebuild(series: SeriesStore, rollups: RebuildableSeries, models: Models, options: RebuildOptions): Promise<RebuildReport> {
  const now = Date.now();
  const from = rebuildFrom(options.historyRetentionMs, now);
  // Unmarked first: a rebuild that dies half-way leaves rollups that processes warn about.
  await rollups.unmarkComplete();
  const cleared = await rollups.clearBuckets(from);
  const guard = { slot: slotOf(now), lane: `rebuild${randomBytes(6).toString('hex')}`, seq: 0 };
  const groupPoints = options.groupPoints ?? REBUILD_GROUP_POINTS;
  let points: Point[] = [];
  let records = 0;
  const flush = async (): Promise<void> => {
    if (points.length === 0) return;
    guard.seq += 1;
    // Buckets before `from` were kept: records history still holds for them (a sweep lags) are there already.
    const buckets = bucketDeltas(points, series.retention, now).filter((bucket) => bucket.start >= from[bucket.step]);
    await series.applyGroup([{ guard: { ...guard }, buckets }], new Date(now));
    records += points.length;
    points = [];
    options.progress?.(records);
  };
  const cursor = models.history.collection.find<HistoryBucketDocument>({}, { projection: { y: 0, m: 0 }, batchSize: 500 });
  for await (const doc of cursor) {
    const bucket = fromDocument(doc);
    for (let j = 0; j < bucket.n; j++) points.push({ i: 0, key: bucket.key, value: bucket.v[j] as number, ts: bucket.t[j] as number });
    if (points.length >= groupPoints) await flush();
  }
  await flush();
  await rollups.markComplete();
  return { records, cleared, from };
}

/** Per step, the first bucket whose every point history still holds: all (-1) when history is kept for good. */
function rebuildFrom(historyRetentionMs: number | null, now: number): Record<Step, number> {
  const from = { '1m': -1, '1h': -1, '1d': -1 };
  if (historyRetentionMs === null) return from;
  for (const step of STEPS) from[step] = Math.ceil((now - historyRetentionMs) / STEP_MS[step]) * STEP_MS[step];
  return from;
}
