import { bucketDeltas, bucketStart, isRetained, mergeBucket, newestMinutes, type SeriesRetention } from '../../src/domain/series';
import type { Point } from '../../src/domain/point-schema';

const DAY = 86_400_000;
const KEEP_ALL: SeriesRetention = { '1m': null, '1h': null, '1d': null };
const point = (key: string, value: number, ts: number, i = 0): Point => ({ key, value, ts, i });

describe('rollup buckets', () => {
  it('when a timestamp is the last millisecond of a minute, an hour or a day, then it stays in that bucket; the next one starts the next', () => {
    const midnight = Date.UTC(2026, 10, 30);
    expect(bucketStart(midnight - 1, '1m')).toBe(midnight - 60_000);
    expect(bucketStart(midnight - 1, '1h')).toBe(midnight - 3_600_000);
    expect(bucketStart(midnight - 1, '1d')).toBe(midnight - DAY);
    for (const step of ['1m', '1h', '1d'] as const) expect(bucketStart(midnight, step)).toBe(midnight);
  });

  it('when a job holds points of two keys in two minutes, then it has one delta per key, step and bucket with their totals', () => {
    const t = Date.UTC(2026, 10, 30, 12, 0, 30);
    const deltas = bucketDeltas([point('a', 1, t), point('a', 5, t + 10), point('a', -2, t + 60_000), point('b', 7, t)], KEEP_ALL, t);
    const minuteOfA = deltas.filter((delta) => delta.key === 'a' && delta.step === '1m');
    expect(minuteOfA).toEqual([
      { key: 'a', step: '1m', start: Date.UTC(2026, 10, 30, 12, 0), count: 2, sum: 6, min: 1, max: 5 },
      { key: 'a', step: '1m', start: Date.UTC(2026, 10, 30, 12, 1), count: 1, sum: -2, min: -2, max: -2 },
    ]);
    expect(deltas.find((delta) => delta.key === 'a' && delta.step === '1h')).toMatchObject({ count: 3, sum: 4, min: -2, max: 5 });
    expect(deltas.filter((delta) => delta.key === 'b')).toHaveLength(3);
  });

  it('when a point is older than a step keeps its buckets, then it is rolled up only in the steps that keep it', () => {
    const now = Date.UTC(2026, 10, 30, 12);
    const retention: SeriesRetention = { '1m': 2 * DAY, '1h': 90 * DAY, '1d': null };
    const old = now - 3 * DAY;
    expect(bucketDeltas([point('k', 1, old)], retention, now).map((delta) => delta.step)).toEqual(['1h', '1d']);
    // The minute that ends exactly at the retention's edge is gone; the one after it is kept.
    expect(isRetained(now - 2 * DAY - 60_000, '1m', retention, now)).toBe(false);
    expect(isRetained(now - 2 * DAY - 59_999, '1m', retention, now)).toBe(true);
  });

  it('when buckets of several jobs are merged, then the same bucket is summed and the newest minute per key is found', () => {
    const t = Date.UTC(2026, 10, 30, 12);
    const first = bucketDeltas([point('k', 2, t)], KEEP_ALL, t);
    const second = bucketDeltas([point('k', 8, t + 1), point('k', 1, t + 120_000)], KEEP_ALL, t);
    const hourOf = (buckets: typeof first): (typeof first)[number] => {
      const hour = buckets.find((bucket) => bucket.step === '1h');
      if (!hour) throw new Error('no hour bucket');
      return hour;
    };
    expect(mergeBucket(hourOf(first), hourOf(second))).toMatchObject({ count: 3, sum: 11, min: 1, max: 8 });
    expect(newestMinutes(second).get('k')).toBe(t + 120_000);
  });
});
