import { ownRepositories } from '../support/own-repositories';
import { STORAGE_PROFILES } from '../support/profiles';
import { applyJob, delta } from '../support/store-writes';

/** The statistics contract (AggregateStore), the same for every profile's layout. */
const own = ownRepositories('statistics');

describe.each(STORAGE_PROFILES)('statistics of the %s profile', (profile) => {
  // Four shards on the FerretDB profile: several keys share a shard, and a page spans shards.
  const open = () => own.open({ STORAGE_PROFILE: profile, AGGREGATE_SHARDS: '4' });

  it('when a job is applied to new keys and then re-run, then each key is counted once', async () => {
    const { repos } = await open();
    const guard = { slot: 10, lane: 'lanea', seq: 1 };
    await applyJob(repos.aggregates, [delta('pk/a', 5), delta('pk/b', 7)], guard);
    await applyJob(repos.aggregates, [delta('pk/a', 5), delta('pk/b', 7)], guard);
    expect(await repos.aggregates.findByKey('pk/a')).toMatchObject({ count: 1, sum: 5, min: 5, max: 5, lastValue: 5 });
    expect(await repos.aggregates.findByKey('pk/b')).toMatchObject({ count: 1, sum: 7 });
  });

  it('when a group holds a job already applied to one of its keys, then only the other jobs are added there', async () => {
    const { repos } = await open();
    const first = { deltas: [delta('pk/group', 100)], guard: { slot: 10, lane: 'laneb', seq: 1 } };
    await repos.aggregates.applyGroup([first], new Date());
    const other = {
      deltas: [delta('pk/group', 1, 1_700_000_000_001), delta('pk/group-new', 3)],
      guard: { slot: 10, lane: 'lanec', seq: 4 },
    };
    await repos.aggregates.applyGroup([first, other], new Date());
    await repos.aggregates.applyGroup([other], new Date());
    expect(await repos.aggregates.findByKey('pk/group')).toMatchObject({ count: 2, sum: 101, min: 1, max: 100, lastValue: 1 });
    expect(await repos.aggregates.findByKey('pk/group-new')).toMatchObject({ count: 1, sum: 3 });
  });

  it('when two points of a key share the newest timestamp, then the last value is the greater', async () => {
    const { repos } = await open();
    await applyJob(repos.aggregates, [delta('pk/tie', 100)], { slot: 10, lane: 'lanea', seq: 1 });
    await applyJob(repos.aggregates, [delta('pk/tie', 1)], { slot: 10, lane: 'laneb', seq: 1 });
    expect(await repos.aggregates.findByKey('pk/tie')).toMatchObject({ count: 2, lastValue: 100 });
  });

  it('when keys are listed by prefix, then pages follow the cursor in key order without the guard', async () => {
    const { repos } = await open();
    const keys = Array.from({ length: 300 }, (_, i) => `pk/many/${String(i).padStart(3, '0')}`);
    await applyJob(repos.aggregates, [...keys.map((key, i) => delta(key, i)), delta('other/x', 1)], { slot: 10, lane: 'laned', seq: 1 });
    const first = await repos.aggregates.list({ prefix: 'pk/many/', limit: 120 });
    const second = await repos.aggregates.list({ prefix: 'pk/many/', limit: 200, after: first.nextCursor ?? undefined });
    expect(first.items).toHaveLength(120);
    expect(first.nextCursor).toBe('pk/many/119');
    expect(second.items.map((item) => item.key)[0]).toBe('pk/many/120');
    expect(second.items).toHaveLength(180);
    expect(second.nextCursor).toBeNull();
    expect(second.items[0]).not.toHaveProperty('g');

    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await repos.aggregates.list({ prefix: 'pk/many/', limit: 10, after });
      seen.push(...page.items.map((item) => item.key));
      if (page.nextCursor === null) break;
      after = page.nextCursor;
    }
    expect(seen).toEqual(keys);
    expect((await repos.aggregates.list({ limit: 1000 })).items.map((item) => item.key)).toEqual(['other/x', ...keys]);
  });

  it('when several keys are read at once, then unknown ones are null', async () => {
    const { repos } = await open();
    await applyJob(repos.aggregates, [delta('pk/a', 5)], { slot: 10, lane: 'lanea', seq: 1 });
    const views = await repos.aggregates.findByKeys(['pk/a', 'pk/never']);
    expect(views.get('pk/a')).toMatchObject({ count: 1 });
    expect(views.get('pk/never')).toBeNull();
  });

  it('when nothing was written yet, then no statistics are read and no keys listed', async () => {
    const { repos } = await open();
    expect(await repos.aggregates.findByKey('pk/none')).toBeNull();
    expect(await repos.aggregates.list({ limit: 10 })).toEqual({ items: [], nextCursor: null });
  });

  it('when two writers take turns on the same keys, then each sees what the other wrote and nothing is lost', async () => {
    const { config, repos } = await open();
    const [a, b] = [repos.aggregates, (await own.again(config)).aggregates];
    for (let seq = 1; seq <= 3; seq += 1) {
      await applyJob(a, [delta('pk/turns', 1)], { slot: 10, lane: 'lanea', seq });
      await applyJob(b, [delta('pk/turns', 10)], { slot: 10, lane: 'laneb', seq });
    }
    expect(await a.findByKey('pk/turns')).toMatchObject({ count: 6, sum: 33 });
  });

  it('when a writer adds to keys a reader already read, then the reader sees the writes at once', async () => {
    const { config, repos } = await open();
    const [writer, reader] = [repos.aggregates, (await own.again(config)).aggregates];
    await applyJob(writer, [delta('pk/r/1', 1), delta('pk/r/2', 2)], { slot: 10, lane: 'lanea', seq: 1 });
    expect((await reader.list({ prefix: 'pk/r/', limit: 10 })).items.map((item) => item.key)).toEqual(['pk/r/1', 'pk/r/2']);
    expect(await reader.findByKey('pk/r/1')).toMatchObject({ count: 1 });
    await applyJob(writer, [delta('pk/r/1', 5), delta('pk/r/0', 3)], { slot: 10, lane: 'lanea', seq: 2 });
    expect((await reader.list({ prefix: 'pk/r/', limit: 10 })).items.map((item) => [item.key, item.count])).toEqual([
      ['pk/r/0', 1],
      ['pk/r/1', 2],
      ['pk/r/2', 1],
    ]);
    expect(await reader.findByKey('pk/r/1')).toMatchObject({ count: 2, sum: 6 });
    expect((await reader.list({ prefix: 'pk/r/', limit: 1, after: 'pk/r/0' })).items.map((item) => item.key)).toEqual(['pk/r/1']);
  });
});
