import { ownRepositories } from '../support/own-repositories';
import { applyJob, delta } from '../support/store-writes';

/** What only the MongoDB profile's layout does (the contract is statistics-store.test.ts's): one document per key. */
const own = ownRepositories('mongodb_layout');

describe("the MongoDB profile's statistics layout", () => {
  it('when 300 keys are written, then each has a document of its own holding only its statistics and guard', async () => {
    const { repos } = await own.open({ STORAGE_PROFILE: 'mongodb' });
    const keys = Array.from({ length: 300 }, (_, i) => `pk/many/${String(i).padStart(3, '0')}`);
    await applyJob(
      repos.aggregates,
      keys.map((key, i) => delta(key, i)),
      { slot: 10, lane: 'laned', seq: 1 },
    );
    const docs = await repos.models.history.db
      .collection<{ _id: string }>('stats')
      .find({ _id: { $regex: /^pk\/many\// } })
      .toArray();
    expect(docs.map((doc) => doc._id).sort()).toEqual(keys);
    expect(new Set(docs.flatMap((doc) => Object.keys(doc)))).toEqual(
      new Set(['_id', 'count', 'sum', 'min', 'max', 'first', 'lastTs', 'last', 'updatedAt', 'g']),
    );
  });
});

describe("the MongoDB profile's history layout", () => {
  it('when a job is stored, then its points are buckets of one key as native arrays, and every history read has an index', async () => {
    const { repos } = await own.open({ STORAGE_PROFILE: 'mongodb' });
    const t0 = Date.UTC(2026, 0, 1);
    const points = [0, 1, 2, 3].map((i) => ({ i, key: `pk/h/${i % 2}`, value: i, ts: t0 + i * 1000 }));
    await repos.history.insertJobs([{ batchId: 'pkh', points, receivedAt: new Date(t0) }], new Date(t0));
    const history = repos.models.history.db.collection('history');
    const buckets = await history.find({}).sort({ _id: 1 }).toArray();
    expect(buckets.map((bucket) => [bucket._id, bucket.key, bucket.i, bucket.v])).toEqual([
      ['pkh:0', 'pk/h/0', [0, 2], [0, 2]],
      ['pkh:1', 'pk/h/1', [1, 3], [1, 3]],
    ]);
    expect(buckets[0]?.t).toEqual([new Date(t0), new Date(t0 + 2000)]);
    const keys = (await history.indexes()).map((index) => index.key);
    expect(keys).toEqual(
      expect.arrayContaining([
        { key: 1, max: -1, min: -1 },
        { batchId: 1, max: -1, min: -1 },
        { max: -1, min: -1 },
      ]),
    );
  });
});
