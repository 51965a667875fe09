import { bucketDeltas, bucketStart } from '../../src/domain/series';
import type { Point } from '../../src/domain/point-schema';
import type { GuardedBuckets } from '../../src/storage/contract';
import { ownRepositories } from '../support/own-repositories';
import { STORAGE_PROFILES } from '../support/profiles';

/** The rollups contract (SeriesStore), the same for every profile's layout. */
const own = ownRepositories('series_store');

const MINUTE = 60_000;
const HOUR = 3_600_000;
// Whole hours ago: every bucket is within its retention.
const BASE = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;

/** One job's buckets of `points` as [key, value, ms after BASE], under lane `lane`'s job `seq`. */
function job(
  lane: string,
  seq: number,
  points: [string, number, number][],
  retention = { '1m': null, '1h': null, '1d': null },
): GuardedBuckets {
  const list: Point[] = points.map(([key, value, at], i) => ({ key, value, ts: BASE + at, i }));
  return { buckets: bucketDeltas(list, retention, Date.now()), guard: { slot: 10, lane, seq } };
}

describe.each(STORAGE_PROFILES)('rollups of the %s profile', (profile) => {
  const open = () => own.open({ STORAGE_PROFILE: profile });

  it('when a job is applied and then re-run, then each bucket counts its points once', async () => {
    const { repos } = await open();
    const first = job('lanea', 1, [
      ['ser/a', 1, 0],
      ['ser/a', 3, 1000],
      ['ser/a', 10, MINUTE],
    ]);
    await repos.series.applyGroup([first], new Date());
    await repos.series.applyGroup([first], new Date());
    const minutes = (await repos.series.read(['ser/a'], '1m', BASE, BASE + HOUR)).get('ser/a');
    expect(minutes).toEqual([
      { start: new Date(BASE).toISOString(), count: 2, sum: 4, avg: 2, min: 1, max: 3 },
      { start: new Date(BASE + MINUTE).toISOString(), count: 1, sum: 10, avg: 10, min: 10, max: 10 },
    ]);
    expect((await repos.series.read(['ser/a'], '1h', BASE, BASE)).get('ser/a')).toMatchObject([{ count: 3, sum: 14 }]);
  });

  it('when a group holds a job already applied to one of its buckets, then only the other jobs are added there', async () => {
    const { repos } = await open();
    const first = job('lanea', 1, [['ser/g', 100, 0]]);
    await repos.series.applyGroup([first], new Date());
    const other = job('laneb', 4, [
      ['ser/g', 1, 0],
      ['ser/h', 3, 0],
    ]);
    await repos.series.applyGroup([first, other], new Date());
    await repos.series.applyGroup([other], new Date());
    const buckets = await repos.series.bucketsAt(
      new Map([
        ['ser/g', bucketStart(BASE, '1m')],
        ['ser/h', bucketStart(BASE, '1m')],
        ['ser/none', bucketStart(BASE, '1m')],
      ]),
      '1m',
    );
    expect(buckets.get('ser/g')).toMatchObject({ count: 2, sum: 101, min: 1, max: 100 });
    expect(buckets.get('ser/h')).toMatchObject({ count: 1, sum: 3 });
    expect(buckets.has('ser/none')).toBe(false);
  });

  it('when a window is read, then only buckets starting within it come back, oldest first, and a key without any has none', async () => {
    const { repos } = await open();
    await repos.series.applyGroup(
      [
        job('lanea', 1, [
          ['ser/w', 5, 2 * MINUTE],
          ['ser/w', 1, 0],
          ['ser/w', 9, 4 * MINUTE],
        ]),
      ],
      new Date(),
    );
    const window = await repos.series.read(['ser/w', 'ser/w', 'ser/empty'], '1m', BASE + MINUTE, BASE + 3 * MINUTE);
    expect(window.get('ser/w')?.map((bucket) => [bucket.start, bucket.sum])).toEqual([[new Date(BASE + 2 * MINUTE).toISOString(), 5]]);
    expect(window.get('ser/empty')).toEqual([]);
  });

  it('when asked whether its rollups can be rebuilt, then only the profile that keeps them outside the database says yes', async () => {
    const { repos } = await open();
    expect(repos.series.rebuildable() !== null).toBe(profile === 'ferretdb');
  });
});
