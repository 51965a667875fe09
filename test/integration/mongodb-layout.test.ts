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
