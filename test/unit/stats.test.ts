import type { Point } from '../../src/domain/point-schema';
import { chunk, groupByKey, mergeDeltas, type KeyDelta } from '../../src/domain/stats';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');

function point(key: string, value: number, ts: number, i = 0): Point {
  return { i, key, value, ts };
}

/** mulberry32: a tiny seeded generator, so a failing case can be replayed from its seed. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomInt(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const copy = [...items];
  for (let index = copy.length - 1; index > 0; index -= 1) {
    const other = randomInt(random, 0, index);
    [copy[index], copy[other]] = [copy[other] as T, copy[index] as T];
  }
  return copy;
}

/** Few keys, few timestamps and integer values, so ties on the last timestamp are common and sums are exact. */
function randomPoints(random: () => number): Point[] {
  const count = randomInt(random, 1, 40);
  return Array.from({ length: count }, (_, i) =>
    point(`k${randomInt(random, 0, 3)}`, randomInt(random, -50, 50), T0 + randomInt(random, 0, 5) * 1000, i),
  );
}

/** Cuts a list into 1..n consecutive non-empty parts at random places. */
function randomSplit<T>(items: readonly T[], random: () => number): T[][] {
  const parts: T[][] = [];
  let start = 0;
  while (start < items.length) {
    const size = randomInt(random, 1, items.length - start);
    parts.push(items.slice(start, start + size));
    start += size;
  }
  return parts;
}

/** The aggregate computed the obvious way, independently of the code under test. */
function expectedAggregate(points: readonly Point[], key: string): KeyDelta {
  const own = points.filter((p) => p.key === key);
  const values = own.map((p) => p.value);
  const lastTs = Math.max(...own.map((p) => p.ts));
  return {
    key,
    count: own.length,
    sum: values.reduce((a, b) => a + b, 0),
    min: Math.min(...values),
    max: Math.max(...values),
    firstTs: Math.min(...own.map((p) => p.ts)),
    lastTs,
    lastValue: Math.max(...own.filter((p) => p.ts === lastTs).map((p) => p.value)),
  };
}

function byKey(deltas: readonly KeyDelta[]): Record<string, KeyDelta> {
  return Object.fromEntries(deltas.map((delta) => [delta.key, delta]));
}

describe('groupByKey', () => {
  it('when a job holds points of several keys, then there is one delta per key in first-seen order with exact statistics', () => {
    const deltas = groupByKey([
      point('b', 5, T0 + 2000),
      point('a', 10, T0 + 1000),
      point('b', -3, T0),
      point('a', 30, T0 + 3000),
      point('b', 8, T0 + 1000),
    ]);
    expect(deltas).toEqual([
      { key: 'b', count: 3, sum: 10, min: -3, max: 8, firstTs: T0, lastTs: T0 + 2000, lastValue: 5 },
      { key: 'a', count: 2, sum: 40, min: 10, max: 30, firstTs: T0 + 1000, lastTs: T0 + 3000, lastValue: 30 },
    ]);
  });

  it('when a job holds one point, then its delta is that point alone', () => {
    expect(groupByKey([point('solo', 7.5, T0)])).toEqual([
      { key: 'solo', count: 1, sum: 7.5, min: 7.5, max: 7.5, firstTs: T0, lastTs: T0, lastValue: 7.5 },
    ]);
  });

  it('when the newest point comes first in the list, then lastValue is still the value at the greatest timestamp', () => {
    const [delta] = groupByKey([point('k', 99, T0 + 5000), point('k', 1, T0), point('k', 2, T0 + 1000)]);
    expect(delta?.lastValue).toBe(99);
    expect(delta?.lastTs).toBe(T0 + 5000);
  });

  it('when two points share the greatest timestamp, then lastValue is the greater value whatever their order', () => {
    const early = point('k', 100, T0);
    const tieLow = point('k', 3, T0 + 1000);
    const tieHigh = point('k', 4, T0 + 1000);
    expect(groupByKey([early, tieLow, tieHigh])[0]?.lastValue).toBe(4);
    expect(groupByKey([early, tieHigh, tieLow])[0]?.lastValue).toBe(4);
    expect(groupByKey([tieHigh, tieLow, early])[0]?.lastValue).toBe(4);
  });

  it('when there are no points, then there are no deltas', () => {
    expect(groupByKey([])).toEqual([]);
  });
});

describe('mergeDeltas', () => {
  const earlier: KeyDelta = { key: 'k', count: 2, sum: 10, min: 1, max: 9, firstTs: T0, lastTs: T0 + 1000, lastValue: 9 };
  const later: KeyDelta = { key: 'k', count: 3, sum: -6, min: -5, max: 2, firstTs: T0 + 500, lastTs: T0 + 2000, lastValue: -5 };

  it('when two deltas of a key are merged, then counts and sums add up and the extremes span both', () => {
    expect(mergeDeltas(earlier, later)).toEqual({
      key: 'k',
      count: 5,
      sum: 4,
      min: -5,
      max: 9,
      firstTs: T0,
      lastTs: T0 + 2000,
      lastValue: -5,
    });
  });

  it('when the arguments are swapped, then the result is the same', () => {
    expect(mergeDeltas(later, earlier)).toEqual(mergeDeltas(earlier, later));
  });

  it('when both deltas end at the same timestamp, then the greater last value wins in either order', () => {
    const a = { ...earlier, lastTs: T0 + 2000, lastValue: 1 };
    const b = { ...later, lastTs: T0 + 2000, lastValue: 2 };
    expect(mergeDeltas(a, b).lastValue).toBe(2);
    expect(mergeDeltas(b, a).lastValue).toBe(2);
  });

  it('when a delta is merged with the delta of one older point, then that point is counted once and the last value stays', () => {
    const [single] = groupByKey([point('k', 50, T0 - 1000)]);
    expect(mergeDeltas(earlier, single as KeyDelta)).toMatchObject({ count: 3, sum: 60, max: 50, firstTs: T0 - 1000, lastValue: 9 });
  });
});

describe('order independence of the aggregates', () => {
  const RUNS = 300;

  it('when random points are split into random jobs, processed in any order and merged, then the result equals grouping all at once', () => {
    for (let seed = 1; seed <= RUNS; seed += 1) {
      const random = seededRandom(seed);
      const points = randomPoints(random);
      const allAtOnce = byKey(groupByKey(points));

      const jobs = randomSplit(shuffled(points, random), random);
      const merged = new Map<string, KeyDelta>();
      for (const job of shuffled(jobs, random)) {
        for (const delta of shuffled(groupByKey(job), random)) {
          const current = merged.get(delta.key);
          merged.set(delta.key, current ? mergeDeltas(current, delta) : delta);
        }
      }

      expect({ seed, result: byKey([...merged.values()]) }).toEqual({ seed, result: allAtOnce });
    }
  });

  it('when random points are grouped, then every aggregate matches the one computed point by point', () => {
    for (let seed = 1; seed <= RUNS; seed += 1) {
      const points = randomPoints(seededRandom(seed));
      const keys = [...new Set(points.map((p) => p.key))];
      const expected = Object.fromEntries(keys.map((key) => [key, expectedAggregate(points, key)]));
      expect({ seed, result: byKey(groupByKey(points)) }).toEqual({ seed, result: expected });
    }
  });

  it('when deltas are merged in a different tree shape, then the result is the same (associativity)', () => {
    for (let seed = 1; seed <= RUNS; seed += 1) {
      const random = seededRandom(seed);
      const parts = [0, 1, 2].map(() => groupByKey(randomPoints(random).map((p) => ({ ...p, key: 'k' })))[0] as KeyDelta);
      const [a, b, c] = parts as [KeyDelta, KeyDelta, KeyDelta];
      expect({ seed, result: mergeDeltas(mergeDeltas(a, b), c) }).toEqual({ seed, result: mergeDeltas(a, mergeDeltas(b, c)) });
    }
  });
});

describe('chunk', () => {
  it('when a list is longer than the chunk size, then it is cut into consecutive chunks with the rest last', () => {
    expect(chunk([1, 2, 3, 4, 5, 6, 7], 3)).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
  });

  it('when the length is an exact multiple of the size, then there is no empty last chunk', () => {
    expect(chunk([1, 2, 3, 4], 2)).toEqual([
      [1, 2],
      [3, 4],
    ]);
  });

  it('when the list is shorter than the size, then it is one chunk', () => {
    expect(chunk(['a', 'b'], 1000)).toEqual([['a', 'b']]);
  });

  it('when the list is empty, then there are no chunks', () => {
    expect(chunk([], 10)).toEqual([]);
  });

  it('when a list is chunked, then every item appears once, in order, and the input is untouched', () => {
    const items = Array.from({ length: 2501 }, (_, i) => i);
    const chunks = chunk(items, 1000);
    expect(chunks.map((part) => part.length)).toEqual([1000, 1000, 501]);
    expect(chunks.flat()).toEqual(items);
    expect(items).toHaveLength(2501);
  });
});
