import { bucketDeltas, bucketStart } from '../../src/domain/series';
import type { Point } from '../../src/domain/point-schema';
import { ownRepositories } from '../support/own-repositories';

const own = ownRepositories('series_retention');
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const point = (key: string, value: number, ts: number): Point => ({ key, value, ts, i: 0 });
let seq = 0;
const guard = (): { slot: number; lane: string; seq: number } => ({ slot: 1000, lane: 'retention', seq: (seq += 1) });

describe('rollup retention (SERIES_RETENTION_*)', () => {
  it('when a point is older than the minute buckets are kept, then only its hour and day buckets count it', async () => {
    const { repos } = await own.open({ SERIES_RETENTION_1M: '60m' });
    const now = Date.now();
    const old = now - 3 * HOUR;
    const buckets = bucketDeltas([point('ret/old', 5, old), point('ret/old', 7, now)], repos.series.retention, now);
    await repos.series.applyGroup([{ buckets, guard: guard() }], new Date(now));

    const minutes = (await repos.series.read(['ret/old'], '1m', old - HOUR, now)).get('ret/old') ?? [];
    expect(minutes.map((bucket) => bucket.count)).toEqual([1]);
    const hours = (await repos.series.read(['ret/old'], '1h', bucketStart(old, '1h'), now)).get('ret/old') ?? [];
    expect(hours.reduce((total, bucket) => total + bucket.count, 0)).toBe(2);
  });

  it('when minute buckets pass their retention, then they are removed (Redis: trimmed on the next write; MongoDB: expiry date for the TTL index)', async () => {
    const { repos, config } = await own.open({ SERIES_RETENTION_1M: '60m' });
    const now = Date.now();
    const early = now - 50 * MINUTE;
    await repos.series.applyGroup(
      [{ buckets: bucketDeltas([point('ret/trim', 1, early)], repos.series.retention, now), guard: guard() }],
      new Date(now),
    );
    expect((await repos.series.read(['ret/trim'], '1m', early - HOUR, now)).get('ret/trim')).toHaveLength(1);

    // Half an hour later the bucket of 50 min before is 80 min old: past the 60 min kept.
    const later = now + 30 * MINUTE;
    await repos.series.applyGroup(
      [{ buckets: bucketDeltas([point('ret/trim', 2, later)], repos.series.retention, later), guard: guard() }],
      new Date(later),
    );
    if (repos.profile.series === 'redis') {
      expect((await repos.series.read(['ret/trim'], '1m', early - HOUR, later)).get('ret/trim')?.map((bucket) => bucket.count)).toEqual([
        1,
      ]);
      const ttl = await own.redis().pttl(`${config.QUEUE_NAME}:series:1m:{ret/trim}`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(HOUR + MINUTE + 24 * HOUR);
    } else {
      const doc = await repos.models.history.db
        .collection('series')
        .findOne({ k: 'ret/trim', s: '1m', t: new Date(bucketStart(early, '1m')) });
      expect(doc?.x).toEqual(new Date(bucketStart(early, '1m') + MINUTE + HOUR));
      const day = await repos.models.history.db.collection('series').findOne({ k: 'ret/trim', s: '1d' });
      expect(day).not.toBeNull();
      expect(day?.x).toBeUndefined();
      if (repos.profile.historyExpiry === 'ttl-index') {
        const indexes = await repos.models.history.db.collection('series').indexes();
        expect(indexes.find((index) => index.name === 'series_expiry')?.expireAfterSeconds).toBe(0);
      }
    }
  });
});
