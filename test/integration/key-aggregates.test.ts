import { MongoClient } from 'mongodb';
import { connectMongo } from '../../src/composition';
import { createLogger } from '../../src/logger';
import type { KeyDelta } from '../../src/domain/stats';
import { KeyAggregateRepository } from '../../src/storage/mongodb/key-aggregate-repository';
import { createKeyStatsModel } from '../../src/storage/mongodb/key-stats-model';
import { GUARD_RETENTION } from '../../src/exactly-once/guard';
import type { Connection } from 'mongoose';
import { randomBytes } from 'node:crypto';
import { mongoServerUri } from '../support/harness';

/** The MongoDB profile's layout, whatever profile the rest of the suite runs: one document per key. */
const baseUri = mongoServerUri();
const dbName = `test_keyagg_${randomBytes(4).toString('hex')}`;
let connection: Connection;
let store: KeyAggregateRepository;
let client: MongoClient;

beforeAll(async () => {
  connection = await connectMongo(`${baseUri}/${dbName}`, createLogger('silent', 'test'), false);
  // 50 updates per command: FerretDB hangs at 100; MongoDB would take any.
  store = new KeyAggregateRepository(createKeyStatsModel(connection), GUARD_RETENTION, 50);
  client = await MongoClient.connect(baseUri);
});

afterAll(async () => {
  await client.db(dbName).dropDatabase();
  await client.close();
  await connection.close();
});

function delta(key: string, value: number, ts = 1_700_000_000_000): KeyDelta {
  return { key, count: 1, sum: value, min: value, max: value, firstTs: ts, lastTs: ts, lastValue: value };
}

describe('statistics as one document per key (the MongoDB profile)', () => {
  it('when a job is applied to new keys and then re-run, then each key is counted once', async () => {
    const guard = { slot: 10, lane: 'lanea', seq: 1 };
    await store.applyDeltas([delta('pk/a', 5), delta('pk/b', 7)], guard, new Date());
    await store.applyDeltas([delta('pk/a', 5), delta('pk/b', 7)], guard, new Date());
    expect(await store.findByKey('pk/a')).toMatchObject({ count: 1, sum: 5, min: 5, max: 5, lastValue: 5 });
    expect(await store.findByKey('pk/b')).toMatchObject({ count: 1, sum: 7 });
  });

  it('when a group holds a job already applied to one of its keys, then only the other jobs are added there', async () => {
    const first = { deltas: [delta('pk/group', 100)], guard: { slot: 10, lane: 'laneb', seq: 1 } };
    await store.applyGroup([first], new Date());
    const other = {
      deltas: [delta('pk/group', 1, 1_700_000_000_001), delta('pk/group-new', 3)],
      guard: { slot: 10, lane: 'lanec', seq: 1 },
    };
    await store.applyGroup([first, other], new Date());
    expect(await store.findByKey('pk/group')).toMatchObject({ count: 2, sum: 101, min: 1, max: 100, lastValue: 1 });
    expect(await store.findByKey('pk/group-new')).toMatchObject({ count: 1, sum: 3 });
  });

  it('when 300 keys are written, then each has a document of its own holding only its statistics and guard', async () => {
    const keys = Array.from({ length: 300 }, (_, i) => `pk/many/${String(i).padStart(3, '0')}`);
    await store.applyDeltas(
      keys.map((key, i) => delta(key, i)),
      { slot: 10, lane: 'laned', seq: 1 },
      new Date(),
    );
    const docs = await client
      .db(dbName)
      .collection<{ _id: string }>('stats')
      .find({ _id: { $regex: /^pk\/many\// } })
      .toArray();
    expect(docs.map((doc) => doc._id).sort()).toEqual(keys);
    expect(new Set(docs.flatMap((doc) => Object.keys(doc)))).toEqual(
      new Set(['_id', 'count', 'sum', 'min', 'max', 'first', 'lastTs', 'last', 'updatedAt', 'g']),
    );
    expect(store.documentsOf(['pk/a', 'pk/a', 'pk/b'])).toEqual(['pk/a', 'pk/b']);
  });

  it('when keys are listed by prefix, then pages follow the cursor in key order without the guard', async () => {
    const first = await store.list({ prefix: 'pk/many/', limit: 120 });
    const second = await store.list({ prefix: 'pk/many/', limit: 200, after: first.nextCursor ?? undefined });
    expect(first.items).toHaveLength(120);
    expect(first.nextCursor).toBe('pk/many/119');
    expect(second.items.map((item) => item.key)[0]).toBe('pk/many/120');
    expect(second.items).toHaveLength(180);
    expect(second.nextCursor).toBeNull();
    expect(second.items[0]).not.toHaveProperty('g');
  });

  it('when several keys are read at once, then unknown ones are null', async () => {
    const views = await store.findByKeys(['pk/a', 'pk/never']);
    expect(views.get('pk/a')).toMatchObject({ count: 1 });
    expect(views.get('pk/never')).toBeNull();
  });
});
