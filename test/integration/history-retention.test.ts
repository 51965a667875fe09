import type { Point } from '../../src/domain/point-schema';
import type { Repositories } from '../../src/storage';
import { waitFor } from '../support/harness';
import { ownRepositories } from '../support/own-repositories';

const DAY = 24 * 3600 * 1000;
const own = ownRepositories('retention');

async function open(retention: string): Promise<Repositories> {
  return (await own.open({ HISTORY_RETENTION: retention })).repos;
}

/** History records of `key` at these ages (days before now). */
async function storeAged(repos: Repositories, key: string, agesInDays: number[]): Promise<void> {
  const now = Date.now();
  const points: Point[] = agesInDays.map((age, i) => ({ i, key, value: age, ts: now - age * DAY }));
  await repos.history.insertJobs([{ batchId: `retention-${key}`, points, receivedAt: new Date(now) }], new Date(now));
}

async function agesKept(repos: Repositories, key: string): Promise<number[]> {
  const page = await repos.history.page({ key, limit: 100 });
  return page.items.map((item) => item.value).sort((a, b) => a - b);
}

describe('HISTORY_RETENTION', () => {
  it('when retention is 30d, then a sweep deletes the records whose timestamp is older and keeps the rest', async () => {
    const repos = await open('30d');
    await storeAged(repos, 'ret/a', [1, 29, 31, 400]);
    expect(await repos.retention.sweep()).toBe(2);
    expect(await agesKept(repos, 'ret/a')).toEqual([1, 29]);
  });

  it('when a point is past retention but its bucket is not (or not swept yet), then pages leave it out', async () => {
    const repos = await open('30d');
    // One bucket: the same minute 30 days back, one point a little past retention, one just within it.
    const edge = Date.now() - 30 * DAY;
    const start = edge - (edge % 60_000);
    const points: Point[] = [
      { i: 0, key: 'ret/d', value: 1, ts: Math.max(start, edge - 20_000) },
      { i: 1, key: 'ret/d', value: 2, ts: edge + 50_000 },
    ];
    await repos.history.insertJobs([{ batchId: 'retention-ret/d', points, receivedAt: new Date() }], new Date());
    expect((await repos.history.page({ key: 'ret/d', limit: 10 })).items.map((item) => item.value)).toEqual([2]);
  });

  it('when history is kept (the default), then a sweep deletes nothing', async () => {
    const repos = await open('keep');
    await storeAged(repos, 'ret/b', [1, 4000]);
    expect(await repos.retention.sweep()).toBe(0);
    expect(await agesKept(repos, 'ret/b')).toEqual([1, 4000]);
  });

  it('when a worker starts retention where the server has no TTL index, then old records go without waiting for the timer', async () => {
    const repos = await open('7d');
    if (repos.profile.historyExpiry !== 'sweep') return expect(repos.profile.historyExpiry).toBe('ttl-index');
    await storeAged(repos, 'ret/c', [2, 8]);
    await repos.retention.start();
    try {
      await waitFor(async () => ((await agesKept(repos, 'ret/c')).length === 1 ? true : undefined), 5000, 'the start-up sweep');
      expect(await agesKept(repos, 'ret/c')).toEqual([2]);
    } finally {
      await repos.retention.stop();
    }
  });
});
