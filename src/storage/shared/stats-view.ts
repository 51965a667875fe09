import type { StatsView } from '../../domain/stats';

/** One key's statistics as stored. `last` is `{t, v}` so that `$max` picks the value at the greatest timestamp, ties to the greater value. */
export interface KeyStats {
  count: number;
  sum: number;
  min: number;
  max: number;
  first: Date;
  lastTs: Date;
  last: { t: Date; v: number };
  updatedAt: Date;
}

/** The view of one key's statistics, or null when the key has none (yet). */
export function toStatsView(key: string, stats: Partial<KeyStats> | undefined | null): StatsView | null {
  if (!stats) return null;
  const { count, sum, min, max, first, lastTs, last, updatedAt } = stats;
  // All are set together by the first applied job's update.
  if (count === undefined || sum === undefined || min === undefined || max === undefined) return null;
  if (first === undefined || lastTs === undefined || last === undefined || updatedAt === undefined) return null;
  return {
    key,
    count,
    sum,
    avg: count > 0 ? sum / count : 0,
    min,
    max,
    firstTimestamp: first.toISOString(),
    lastTimestamp: lastTs.toISOString(),
    lastValue: last.v,
    updatedAt: updatedAt.toISOString(),
  };
}

/** An anchored, case-sensitive regex: MongoDB's indexed prefix match. */
export function prefixPattern(prefix: string): RegExp {
  return new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`);
}
