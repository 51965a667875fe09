import type { Point } from './point-schema';

/** What one job adds to one key's aggregate. */
export interface KeyDelta {
  key: string;
  count: number;
  sum: number;
  min: number;
  max: number;
  firstTs: number;
  lastTs: number;
  /** The value at the greatest timestamp; ties go to the greater value, so the result never depends on order. */
  lastValue: number;
}

/** The aggregate of one key as users see it (REST, sockets). */
export interface StatsView {
  key: string;
  count: number;
  sum: number;
  avg: number;
  min: number;
  max: number;
  firstTimestamp: string;
  lastTimestamp: string;
  lastValue: number;
  updatedAt: string;
}

function deltaOf(point: Point): KeyDelta {
  return {
    key: point.key,
    count: 1,
    sum: point.value,
    min: point.value,
    max: point.value,
    firstTs: point.ts,
    lastTs: point.ts,
    lastValue: point.value,
  };
}

/**
 * Merges two deltas of the same key. Commutative and associative (but for
 * floating-point rounding of `sum`), which is what makes the final
 * aggregates independent of batch order and of the number of workers.
 */
export function mergeDeltas(a: KeyDelta, b: KeyDelta): KeyDelta {
  const bIsLater = b.lastTs > a.lastTs || (b.lastTs === a.lastTs && b.lastValue > a.lastValue);
  return {
    key: a.key,
    count: a.count + b.count,
    sum: a.sum + b.sum,
    min: Math.min(a.min, b.min),
    max: Math.max(a.max, b.max),
    firstTs: Math.min(a.firstTs, b.firstTs),
    lastTs: Math.max(a.lastTs, b.lastTs),
    lastValue: bIsLater ? b.lastValue : a.lastValue,
  };
}

/** Groups a job's points by key: one delta per key, in first-seen order. */
export function groupByKey(points: readonly Point[]): KeyDelta[] {
  const byKey = new Map<string, KeyDelta>();
  for (const point of points) {
    const current = byKey.get(point.key);
    byKey.set(point.key, current ? mergeDeltas(current, deltaOf(point)) : deltaOf(point));
  }
  return [...byKey.values()];
}

/** Splits a list into consecutive chunks of at most `size` items. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size));
  return chunks;
}
