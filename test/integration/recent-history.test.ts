import { randomBytes } from 'node:crypto';
import type { Config } from '../../src/config/config';
import type { Point } from '../../src/domain/point-schema';
import { groupByKey } from '../../src/domain/stats';
import type { HistoryQuery } from '../../src/storage/contract';
import { HistoryRepository } from '../../src/storage/shared/history-repository';
import { RecentHistory } from '../../src/storage/ferretdb/recent-history';
import { BatchStore } from '../../src/exactly-once/batch-store';
import { WriteCombiner, type JobWrites } from '../../src/services/write-combiner';
import type { Repositories } from '../../src/storage';
import { ownRepositories } from '../support/own-repositories';

// The tier keeps 5 records per key here, so most pages reach below its floor and must come from the store.
const CAP = 5;
const T0 = 1_700_000_000_000;
const own = ownRepositories('recent');

interface Setup {
  config: Config;
  repos: Repositories;
  /** History read from the store alone: what every answer must equal. */
  store: HistoryRepository;
  combiner: WriteCombiner;
}

async function open(cap = CAP): Promise<Setup> {
  const { config, repos } = await own.open({ HISTORY_RECENT_PER_KEY: String(cap) });
  const combiner = new WriteCombiner({ ...repos, clock: Date.now, maxPoints: 10_000 });
  return { config, repos, store: new HistoryRepository(repos.models.history, config.HISTORY_QUERY_TIMEOUT_MS), combiner };
}

let seq = 0;
/** One job of `points` as [key, value, timestamp]; the same `batchId` again is a re-run of it. */
function job(points: [string, number, number][], batchId = `recent${randomBytes(4).toString('hex')}`): JobWrites {
  const pointList: Point[] = points.map(([key, value, ts], i) => ({ key, value, ts, i }));
  seq += 1;
  return {
    guard: { slot: 1000, lane: batchId, seq },
    deltas: groupByKey(pointList),
    buckets: [],
    batchId,
    points: pointList,
    receivedAt: new Date(T0),
    startedAt: Date.now(),
    record: { _id: `${batchId}:0`, batchId, chunk: 0, points: pointList.length, keys: 1, guard: `1000.${batchId}.${seq}`, attempt: 1 },
  };
}

/** Twelve points of `key` in three jobs, two at each timestamp, written out of order. */
async function twelvePoints(setup: Setup, key: string): Promise<void> {
  const at = (i: number): [string, number, number] => [key, i, T0 + Math.floor(i / 2) * 1000];
  await setup.combiner.write(job([at(4), at(5), at(0), at(1)]));
  await setup.combiner.write(job([at(2), at(3), at(6), at(7)]));
  await setup.combiner.write(job([at(8), at(9), at(10), at(11)]));
}

/** Every page of `query`, following the cursors, from both; they must be equal page for page. */
async function expectSameAsStore(setup: Setup, query: HistoryQuery): Promise<number> {
  let after = query.after;
  let pages = 0;
  for (;;) {
    const page = { ...query, after };
    const [answer, expected] = await Promise.all([setup.repos.history.page(page), setup.store.page(page)]);
    expect(answer).toEqual(expected);
    pages += 1;
    if (!expected.next) return pages;
    after = expected.next;
  }
}

const queries = (key: string): HistoryQuery[] => [
  { key, limit: 1 },
  { key, limit: 2 },
  { key, limit: 3 },
  { key, limit: 5 },
  { key, limit: 100 },
  { key, limit: 2, from: T0 + 3000 },
  { key, limit: 2, from: T0 + 4000, to: T0 + 4000 },
  { key, limit: 4, to: T0 + 2000 },
  { key, limit: 1, from: T0 + 9000 },
];

function tierOf(setup: Setup): RecentHistory {
  return new RecentHistory(own.redis(), setup.config.QUEUE_NAME, CAP);
}

async function dropTier(setup: Setup): Promise<void> {
  const keys = await own.redis().keys(`${setup.config.QUEUE_NAME}:recent:*`);
  if (keys.length > 0) await own.redis().del(...keys);
}

describe('history pages with the recent tier (FerretDB profile) and without it', () => {
  it('when points arrive out of order with equal timestamps, then every page and cursor equals the store’s, and the newest page comes from the tier', async () => {
    const setup = await open();
    await twelvePoints(setup, 'rh/a');
    for (const query of queries('rh/a')) await expectSameAsStore(setup, query);
    expect(await expectSameAsStore(setup, { key: 'rh/a', limit: 2 })).toBe(6);
    if (setup.repos.profile.recentHistory === 'redis-tier') {
      const newest = await tierOf(setup).page({ key: 'rh/a', limit: 4 });
      expect(newest?.seen).toBe(12);
      expect(newest?.page.items.map((item) => item.value)).toEqual([11, 10, 9, 8]);
      // Below the floor the tier declines and the store answers.
      expect(await tierOf(setup).page({ key: 'rh/a', limit: 4, to: T0 + 2000 })).toBeNull();
    }
  });

  it('when a job runs again, then no record is counted or listed twice', async () => {
    const setup = await open();
    const points: [string, number, number][] = [
      ['rh/b', 1, T0],
      ['rh/b', 2, T0 + 1000],
    ];
    const first = job(points);
    await setup.combiner.write(first);
    await setup.combiner.write({ ...first, startedAt: Date.now() });
    const page = await setup.repos.history.page({ key: 'rh/b', limit: 10 });
    expect(page.items.map((item) => item.value)).toEqual([2, 1]);
    await expectSameAsStore(setup, { key: 'rh/b', limit: 1 });
    if (setup.repos.profile.recentHistory === 'redis-tier') {
      expect((await tierOf(setup).page({ key: 'rh/b', limit: 10 }))?.seen).toBe(2);
    }
  });

  it('when Redis has lost the tier, then pages still equal the store’s (the tier stops answering for keys it has not seen whole)', async () => {
    const setup = await open();
    await twelvePoints(setup, 'rh/c');
    await dropTier(setup);
    await setup.combiner.write(job([['rh/c', 12, T0 + 6000]]));
    for (const query of queries('rh/c')) await expectSameAsStore(setup, query);
    const first = await setup.repos.history.page({ key: 'rh/c', limit: 13 });
    expect(first.items).toHaveLength(13);
  });

  it('when a late point lands below what the tier still holds, then it is listed in its place', async () => {
    const setup = await open();
    await twelvePoints(setup, 'rh/d');
    await setup.combiner.write(job([['rh/d', 99, T0 - 1000]]));
    for (const query of queries('rh/d')) await expectSameAsStore(setup, query);
    const all = await setup.repos.history.page({ key: 'rh/d', limit: 100 });
    expect(all.items.at(-1)?.value).toBe(99);
  });

  it('when points are stored in history without being counted (statistics refused), then they are listed all the same', async () => {
    const setup = await open();
    await twelvePoints(setup, 'rh/e');
    const uncounted = job([['rh/e', 77, T0 + 60_000]]);
    await setup.repos.history.insertJobs([uncounted], new Date(), { counted: false });
    const newest = await setup.repos.history.page({ key: 'rh/e', limit: 1 });
    expect(newest.items.map((item) => item.value)).toEqual([77]);
    for (const query of queries('rh/e')) await expectSameAsStore(setup, query);
  });

  it('when one job holds thousands of points of one key, then they are all listed', async () => {
    const setup = await open();
    const points = Array.from({ length: 5000 }, (_, i): [string, number, number] => ['rh/big', i, T0 + i]);
    await setup.combiner.write(job(points));
    const newest = await setup.repos.history.page({ key: 'rh/big', limit: 3 });
    expect(newest.items.map((item) => item.value)).toEqual([4999, 4998, 4997]);
    await expectSameAsStore(setup, { key: 'rh/big', limit: 1000 });
  });

  it('when a cursor lands on equal timestamps older than from, then the page is empty, as the store says', async () => {
    const setup = await open(100);
    await twelvePoints(setup, 'rh/g');
    // The 9th newest record: value 3, at T0 + 1000, beside value 2 at the same timestamp.
    const cursor = (await setup.store.page({ key: 'rh/g', limit: 9 })).next;
    expect(cursor?.t).toBe(T0 + 1000);
    await expectSameAsStore(setup, { key: 'rh/g', limit: 5, after: cursor ?? undefined, from: T0 + 3000 });
    await expectSameAsStore(setup, { key: 'rh/g', limit: 5, after: cursor ?? undefined });
    expect((await setup.repos.history.page({ key: 'rh/g', limit: 5, after: cursor ?? undefined, from: T0 + 3000 })).items).toEqual([]);
  });

  it('when a batch is read by batchId, then its pages equal the store’s, from the tier while it holds every bucket of the batch', async () => {
    const setup = await open(100);
    const batchId = `rhbatch${randomBytes(4).toString('hex')}`;
    const points = Array.from({ length: 30 }, (_, i): [string, number, number] => [`rh/batch${i % 3}`, i, T0 + Math.floor(i / 4) * 1000]);
    await new BatchStore(own.redis(), setup.config.QUEUE_NAME).create(batchId, { points: 30, chunks: 2, keys: 3, receivedAt: T0 });
    // Two jobs of the batch; the first twice, as a re-run.
    const first = job(points.slice(0, 17), batchId);
    await setup.combiner.write(first);
    await setup.combiner.write({ ...first, startedAt: Date.now() });
    const tier = tierOf(setup);
    if (setup.repos.profile.recentHistory === 'redis-tier') {
      // Half the batch is stored: the tier does not answer for it.
      expect(await tier.batchPage({ batchId, limit: 10 }, 30)).toBeNull();
    }
    const rest = job(points.slice(17), batchId);
    await setup.combiner.write({ ...rest, points: rest.points.map((point, i) => ({ ...point, i: 17 + i })) });
    for (const query of [{ limit: 7 }, { limit: 100 }, { limit: 3, key: 'rh/batch1' }, { limit: 2, from: T0 + 2000, to: T0 + 5000 }]) {
      await expectSameAsStore(setup, { ...query, batchId });
    }
    const all = await setup.repos.history.page({ batchId, limit: 100 });
    expect(all.items).toHaveLength(30);
    expect(new Set(all.items.map((item) => item.batchId))).toEqual(new Set([batchId]));
    if (setup.repos.profile.recentHistory === 'redis-tier') {
      expect((await tier.batchPage({ batchId, limit: 100 }, 30))?.items).toEqual(all.items);
      // A bucket trimmed from its key's tier: the store answers.
      await setup.combiner.write(job(Array.from({ length: 150 }, (_, i): [string, number, number] => ['rh/batch0', i, T0 + 100_000 + i])));
      expect(await tier.batchPage({ batchId, limit: 100 }, 30)).toBeNull();
      expect(await setup.repos.history.page({ batchId, limit: 100 })).toEqual(all);
    }
  });

  it('when one job holds points of hundreds of keys, one of them late below its floor, then that key alone is left to the store', async () => {
    const setup = await open();
    await twelvePoints(setup, 'rh/many-late');
    // 300 keys: more than one call of the tier's add script carries; the late point first, in the same call as others.
    const points = Array.from({ length: 300 }, (_, i): [string, number, number] => [`rh/many${i}`, i, T0 + i]);
    await setup.combiner.write(job([['rh/many-late', 55, T0 - 1000], ...points]));
    const tiered = setup.repos.profile.recentHistory === 'redis-tier';
    const tier = tierOf(setup);
    for (const key of ['rh/many0', 'rh/many150', 'rh/many299']) {
      if (tiered) expect((await tier.page({ key, limit: 10 }))?.page.items.map((item) => item.key)).toEqual([key]);
      await expectSameAsStore(setup, { key, limit: 10 });
    }
    if (tiered) expect(await tier.page({ key: 'rh/many-late', limit: 100 })).toBeNull();
    for (const query of queries('rh/many-late')) await expectSameAsStore(setup, query);
  });

  it('when a key in a later call of the add script trims a batch’s bucket, then that batch’s index is deleted and the other kept', async () => {
    const setup = await open();
    const keys = Array.from({ length: 300 }, (_, i) => `rh/trim${i}`);
    const first = job(keys.map((key, i): [string, number, number] => [key, i, T0 + i]));
    await setup.combiner.write(first);
    // Ten newer points of the 300th key (the third call of 128 keys) trim its bucket of the first batch; one each of the others trims nothing.
    const newer = keys.slice(0, 299).map((key, i): [string, number, number] => [key, i, T0 + 60_000 + i]);
    const second = job([...newer, ...Array.from({ length: 10 }, (_, i): [string, number, number] => ['rh/trim299', i, T0 + 120_000 + i])]);
    await setup.combiner.write(second);
    await expectSameAsStore(setup, { key: 'rh/trim299', limit: 20 });
    if (setup.repos.profile.recentHistory !== 'redis-tier') return;
    const indexOf = (batchId: string): string => `${setup.config.QUEUE_NAME}:recent:batch:${batchId}`;
    expect(await own.redis().exists(indexOf(first.batchId))).toBe(0);
    expect(await own.redis().exists(indexOf(second.batchId))).toBe(1);
  });

  it('when a key has no points, then its page is empty', async () => {
    const setup = await open();
    await twelvePoints(setup, 'rh/f');
    expect(await setup.repos.history.page({ key: 'rh/none', limit: 10 })).toEqual({ items: [], next: null });
  });
});
