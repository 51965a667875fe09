/*
 * History in buckets (docs/storage.md, "History"; ADR 0008): what a bucket is, which buckets a job makes, and how a
 * page is merged back out of buckets that overlap in time. Both the database (history-repository.ts) and the FerretDB
 * profile's recent tier (../ferretdb/recent-history.ts) store these buckets and read pages with this merge.
 */
import type { Point } from '../../domain/point-schema';
import type { HistoryJob, HistoryPage, HistoryQuery, HistoryRecord } from '../contract';

/** Every bucket holds points whose timestamps fall in one aligned window of this span. */
export const HISTORY_BUCKET_SPAN_MS = 60_000;

/**
 * Most points with `meta` in one bucket: a meta of 4 KiB of JSON (MAX_META_BYTES) can take ~26 KB as BSON, and 256
 * of them stay far below MongoDB's 16 MiB document limit; points without meta take ~40 bytes each.
 */
export const MAX_BUCKET_METAS = 256;

/** The points of one key that one job carries within one window, as parallel arrays (index j is one point). */
export interface HistoryBucket {
  /** `<batchId>:<i of its first point>`: fixed by the job's own points. */
  id: string;
  key: string;
  batchId: string;
  /** The oldest and newest timestamp of its points (epoch ms). */
  min: number;
  max: number;
  n: number;
  /** Each point's index in its batch: with the batch id, its record id. */
  i: number[];
  t: number[];
  v: number[];
  /** Present only when a point has a type or meta (null for the others). */
  y?: (string | null)[];
  m?: (Record<string, unknown> | null)[];
  receivedAt: number;
  processedAt: number;
}

/** A point's record id: its batch and its index there (the cursor's tie-break). */
export function historyId(batchId: string, index: number): string {
  return `${batchId}:${index}`;
}

/** The query without points past HISTORY_RETENTION (`retentionMs`, null when history is kept): `from` raised to it. */
export function withinRetention<Q extends HistoryQuery>(query: Q, retentionMs: number | null, now: number): Q {
  if (retentionMs === null) return query;
  return { ...query, from: Math.max(query.from ?? -Infinity, now - retentionMs) };
}

/** The first window end after `t`: a bucket holding a point at or before `t` has its `max` below it. */
export function windowEnd(t: number): number {
  return (Math.floor(t / HISTORY_BUCKET_SPAN_MS) + 1) * HISTORY_BUCKET_SPAN_MS;
}

/**
 * A job's buckets: its points grouped by key and window (a new bucket after MAX_BUCKET_METAS points with meta), each
 * bucket named by its first point. The names depend only on the job's own points, in their order, so a job run
 * again (alone, in another group, after a crash) makes the same buckets.
 */
export function bucketsOf(job: HistoryJob, processedAt: Date): HistoryBucket[] {
  // By key, then by window as a number: no string is built per point (the worker runs this for every point).
  type Group = { points: Point[]; metas: number };
  const open = new Map<string, Map<number, Group>>();
  const groups: Point[][] = [];
  for (const point of job.points) {
    const window = Math.floor(point.ts / HISTORY_BUCKET_SPAN_MS);
    let windows = open.get(point.key);
    if (!windows) open.set(point.key, (windows = new Map<number, Group>()));
    let group = windows.get(window);
    if (!group || (point.meta !== undefined && group.metas === MAX_BUCKET_METAS)) {
      windows.set(window, (group = { points: [], metas: 0 }));
      groups.push(group.points);
    }
    group.points.push(point);
    if (point.meta !== undefined) group.metas += 1;
  }
  const receivedAt = job.receivedAt.getTime();
  const processed = processedAt.getTime();
  const buckets: HistoryBucket[] = [];
  for (const points of groups) {
    const first = points[0] as Point;
    let min = first.ts;
    let max = first.ts;
    for (const point of points) {
      if (point.ts < min) min = point.ts;
      if (point.ts > max) max = point.ts;
    }
    const bucket: HistoryBucket = {
      id: historyId(job.batchId, first.i),
      key: first.key,
      batchId: job.batchId,
      min,
      max,
      n: points.length,
      i: points.map((point) => point.i),
      t: points.map((point) => point.ts),
      v: points.map((point) => point.value),
      receivedAt,
      processedAt: processed,
    };
    if (points.some((point) => point.type !== undefined)) bucket.y = points.map((point) => point.type ?? null);
    if (points.some((point) => point.meta !== undefined)) bucket.m = points.map((point) => point.meta ?? null);
    buckets.push(bucket);
  }
  return buckets;
}

/** A point of a bucket read for a page: where it sorts, and where its fields are. */
interface Candidate {
  t: number;
  id: string;
  bucket: HistoryBucket;
  j: number;
}

/** Newest first: timestamp descending, then record id descending (bytewise, as the cursor compares). */
function newestFirst(a: Candidate, b: Candidate): number {
  return b.t - a.t || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

/** What a merge ends with: the page, and how far down its records reach (for the recent tier's floor). */
export interface MergedPage {
  page: HistoryPage;
  /** The timestamp of the oldest record it had to consider: the one after the page, or the page's last. */
  reach: number | null;
  /** Whether it found more records than the page holds (the page is followed by another). */
  full: boolean;
}

/**
 * One page merged from buckets fed newest `max` first. A bucket whose `max` is older than the page's last record so
 * far cannot change the page: `add` answers false there, and the caller stops reading.
 */
export class PageMerge {
  /** The newest timestamp a record of the page may have, and the oldest. */
  readonly upper: number;
  readonly lower: number;
  private pool: Candidate[] = [];
  private floor = -Infinity;
  private sorted = true;
  private readonly want: number;

  constructor(private readonly query: HistoryQuery) {
    this.upper = Math.min(query.to ?? Infinity, query.after?.t ?? Infinity);
    this.lower = query.from ?? -Infinity;
    this.want = query.limit + 1;
  }

  /** Whether no record can match (an empty window). */
  get empty(): boolean {
    return this.upper < this.lower;
  }

  add(bucket: HistoryBucket): boolean {
    if (!this.sorted && this.pool.length >= this.want) {
      this.pool.sort(newestFirst);
      this.pool.length = this.want;
      this.floor = (this.pool[this.want - 1] as Candidate).t;
      this.sorted = true;
    }
    if (bucket.max < this.floor) return false;
    const after = this.query.after;
    for (let j = 0; j < bucket.n; j++) {
      const t = bucket.t[j] as number;
      if (t > this.upper || t < this.lower || t < this.floor) continue;
      const id = historyId(bucket.batchId, bucket.i[j] as number);
      if (after && t === after.t && !(id < after.id)) continue;
      this.pool.push({ t, id, bucket, j });
      this.sorted = false;
    }
    return true;
  }

  finish(): MergedPage {
    const pool = this.pool.sort(newestFirst).slice(0, this.want);
    const page = pool.slice(0, this.query.limit);
    const last = page[page.length - 1];
    const full = pool.length > this.query.limit;
    return {
      page: { items: page.map(toRecord), next: full && last ? { t: last.t, id: last.id } : null },
      reach: pool[pool.length - 1]?.t ?? null,
      full,
    };
  }
}

function toRecord({ bucket, j, t }: Candidate): HistoryRecord {
  return {
    key: bucket.key,
    value: bucket.v[j] as number,
    timestamp: new Date(t).toISOString(),
    type: bucket.y?.[j] ?? null,
    meta: bucket.m?.[j] ?? null,
    batchId: bucket.batchId,
    receivedAt: new Date(bucket.receivedAt).toISOString(),
    processedAt: new Date(bucket.processedAt).toISOString(),
  };
}
