import type { Point } from '../../src/domain/point-schema';
import { groupByKey } from '../../src/domain/stats';
import type { HistoryJob } from '../../src/storage/contract';
import type { Repositories } from '../../src/storage';
import { ownRepositories } from '../support/own-repositories';
import { STORAGE_PROFILES } from '../support/profiles';
import { applyJob } from '../support/store-writes';

/** The history contract (HistoryStore), the same for every profile (the FerretDB profile's has its recent tier in front). */
const own = ownRepositories('history_store');

const T0 = 1_700_000_000_000;
let lanes = 0;

/** A job of points of `key` at these seconds after T0, valued 1, 2, 3… unless `values` says otherwise. */
function historyJob(batchId: string, key: string, seconds: number[], values = seconds.map((_, i) => i + 1)): HistoryJob {
  const list: Point[] = seconds.map((s, i) => ({ key, value: values[i] ?? 0, ts: T0 + s * 1000, i }));
  return { batchId, points: list, receivedAt: new Date(T0) };
}

/** As the worker stores a job: its statistics first, then its history. */
async function store(repos: Repositories, job: HistoryJob): Promise<number> {
  lanes += 1;
  await applyJob(repos.aggregates, groupByKey(job.points), { slot: 10, lane: `lane${lanes}`, seq: 1 });
  return repos.history.insertJobs([job], new Date(T0 + 60_000));
}

describe.each(STORAGE_PROFILES)('history of the %s profile', (profile) => {
  const open = async () => (await own.open({ STORAGE_PROFILE: profile })).repos;

  it('when a job is stored twice, then its records are new once and listed once', async () => {
    const repos = await open();
    const job = historyJob('hist-a', 'hist/a', [0, 1]);
    expect(await store(repos, job)).toBe(2);
    expect(await repos.history.insertJobs([job], new Date())).toBe(0);
    const page = await repos.history.page({ key: 'hist/a', limit: 10 });
    expect(page.items.map((record) => record.value)).toEqual([2, 1]);
    expect(page.items[0]).toEqual({
      key: 'hist/a',
      value: 2,
      timestamp: new Date(T0 + 1000).toISOString(),
      type: null,
      meta: null,
      batchId: 'hist-a',
      receivedAt: new Date(T0).toISOString(),
      processedAt: new Date(T0 + 60_000).toISOString(),
    });
    expect(page.next).toBeNull();
    expect(await repos.history.countByBatch('hist-a')).toBe(2);
  });

  it('when records share a timestamp, then pages go newest first by timestamp, then id, and cursors continue exactly', async () => {
    const repos = await open();
    await store(repos, historyJob('hist-b', 'hist/b', [0, 0, 1, 1, 2]));
    const values: number[] = [];
    let after: { t: number; id: string } | undefined;
    for (;;) {
      const page = await repos.history.page({ key: 'hist/b', limit: 2, after });
      values.push(...page.items.map((record) => record.value));
      if (page.next === null) break;
      after = page.next;
    }
    expect(values).toEqual([5, 4, 3, 2, 1]);
  });

  it('when a page is narrowed by time or by batch, then only those records come back', async () => {
    const repos = await open();
    await store(repos, historyJob('hist-c1', 'hist/c', [0, 10]));
    await store(repos, historyJob('hist-c2', 'hist/c', [20], [3]));
    const window = await repos.history.page({ key: 'hist/c', from: T0 + 5000, to: T0 + 15_000, limit: 10 });
    expect(window.items.map((record) => record.value)).toEqual([2]);
    const batch = await repos.history.page({ batchId: 'hist-c2', limit: 10 });
    expect(batch.items.map((record) => record.value)).toEqual([3]);
  });

  it('when a page is bounded at the last date JavaScript can hold, then it lists the records below it', async () => {
    const repos = await open();
    await store(repos, historyJob('hist-max', 'hist/max', [0, 1]));
    const page = await repos.history.page({ key: 'hist/max', to: 8.64e15, limit: 10 });
    expect(page.items.map((record) => record.value)).toEqual([2, 1]);
  });

  it('when records are stored without being counted (statistics refused), then they are listed all the same', async () => {
    const repos = await open();
    await repos.history.insertJobs([historyJob('hist-d', 'hist/d', [0], [7])], new Date(), { counted: false });
    expect((await repos.history.page({ key: 'hist/d', limit: 10 })).items.map((record) => record.value)).toEqual([7]);
  });

  it('when records older than a cutoff are deleted, then the newer ones stay', async () => {
    const repos = await open();
    await store(repos, historyJob('hist-e', 'hist/e', [0, 100]));
    expect(await repos.history.deleteOlderThan(new Date(T0 + 50_000))).toBe(1);
    expect(await repos.history.countByBatch('hist-e')).toBe(1);
  });
});
