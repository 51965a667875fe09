import type { Point } from './point-schema';

/** The rollup resolutions: buckets aligned to the UTC minute, hour and day. */
export const STEPS = ['1m', '1h', '1d'] as const;
export type Step = (typeof STEPS)[number];

export const STEP_MS: Record<Step, number> = { '1m': 60_000, '1h': 3_600_000, '1d': 86_400_000 };

/** How long each step's buckets are kept, by their start; null keeps them for good. */
export type SeriesRetention = Record<Step, number | null>;

/** The first millisecond of the bucket of `step` that holds `ms` (epoch time is UTC, so days start at 00:00Z). */
export function bucketStart(ms: number, step: Step): number {
  return Math.floor(ms / STEP_MS[step]) * STEP_MS[step];
}

/** A bucket's identity, `<step>|<start ms>|<key>` (the MongoDB profile's `_id`): the key last, so any key fits. */
export function bucketId(step: Step, start: number, key: string): string {
  return `${step}|${start}|${key}`;
}

/** What one job adds to one bucket of one key. */
export interface BucketDelta {
  key: string;
  step: Step;
  start: number;
  count: number;
  sum: number;
  min: number;
  max: number;
}

/** One bucket as users see it (REST, `series:update`). */
export interface BucketView {
  start: string;
  count: number;
  sum: number;
  avg: number;
  min: number;
  max: number;
}

export function toBucketView(bucket: { start: number; count: number; sum: number; min: number; max: number }): BucketView {
  return {
    start: new Date(bucket.start).toISOString(),
    count: bucket.count,
    sum: bucket.sum,
    avg: bucket.count > 0 ? bucket.sum / bucket.count : 0,
    min: bucket.min,
    max: bucket.max,
  };
}

/** Whether a bucket starting at `start` is still kept at `now` (a point landing past that is not rolled up in it). */
export function isRetained(start: number, step: Step, retention: SeriesRetention, now: number): boolean {
  const kept = retention[step];
  return kept === null || start + STEP_MS[step] > now - kept;
}

/**
 * A job's points as bucket deltas: one per key, step and bucket, by each point's own timestamp (late points land
 * in their bucket). Buckets already past their step's retention are left out: they would be deleted at once.
 */
export function bucketDeltas(points: readonly Point[], retention: SeriesRetention, now: number): BucketDelta[] {
  // This is the worker's hottest loop (three buckets a point): buckets are found by key, then by step and start as
  // numbers, which costs no string per point, and the deltas, its own, are added in place.
  const byKey = new Map<string, Map<number, BucketDelta>[]>();
  const deltas: BucketDelta[] = [];
  for (const point of points) {
    let steps = byKey.get(point.key);
    if (!steps) byKey.set(point.key, (steps = STEPS.map(() => new Map<number, BucketDelta>())));
    for (let s = 0; s < STEPS.length; s += 1) {
      const step = STEPS[s] as Step;
      const start = bucketStart(point.ts, step);
      if (!isRetained(start, step, retention, now)) continue;
      const buckets = steps[s] as Map<number, BucketDelta>;
      const current = buckets.get(start);
      if (current) {
        current.count += 1;
        current.sum += point.value;
        current.min = Math.min(current.min, point.value);
        current.max = Math.max(current.max, point.value);
      } else {
        const delta = { key: point.key, step, start, count: 1, sum: point.value, min: point.value, max: point.value };
        buckets.set(start, delta);
        deltas.push(delta);
      }
    }
  }
  return deltas;
}

/** Two deltas of the same key, step and bucket as one. */
export function mergeBucket(a: BucketDelta, b: BucketDelta): BucketDelta {
  return { ...a, count: a.count + b.count, sum: a.sum + b.sum, min: Math.min(a.min, b.min), max: Math.max(a.max, b.max) };
}

/** The newest 1-minute bucket of each key among a job's points: what `series:update` sends with `stats:update`. */
export function newestMinutes(buckets: readonly BucketDelta[]): Map<string, number> {
  const newest = new Map<string, number>();
  for (const bucket of buckets) {
    if (bucket.step !== '1m') continue;
    const current = newest.get(bucket.key);
    if (current === undefined || bucket.start > current) newest.set(bucket.key, bucket.start);
  }
  return newest;
}
