import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { MongoClient, type Db } from 'mongodb';
import type { Connection } from 'mongoose';
import { connectMongo } from '../../src/composition';
import type { KeyDelta } from '../../src/domain/stats';
import { createLogger } from '../../src/logger';
import { createModels } from '../../src/models';
import { KeyLocks } from '../../src/queue/key-locks';
import { keyField, shardOf, ShardAggregateRepository } from '../../src/repositories/shard-aggregate-repository';
import { GUARD_RETENTION } from '../../src/services/lane-pool';
import { mongoServerUri } from '../support/harness';

/** The FerretDB profile's layout, whatever profile the rest of the suite runs. */
const baseUri = mongoServerUri();
const suffix = randomBytes(4).toString('hex');
let client: MongoClient;
let redis: Redis;
const opened: Connection[] = [];

beforeAll(async () => {
  client = await MongoClient.connect(baseUri);
  redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
});

afterAll(async () => {
  for (const connection of opened) {
    await connection.db?.dropDatabase();
    await connection.close();
  }
  const locks = await redis.keys(`layout-${suffix}:*`);
  if (locks.length > 0) await redis.del(...locks);
  await redis.quit();
  await client.close();
});

async function repository(name: string, shards?: number): Promise<{ store: ShardAggregateRepository; db: Db }> {
  const connection = await connectMongo(`${baseUri}/test_layout_${name}_${suffix}`, createLogger('silent', 'test'), false);
  opened.push(connection);
  const db = connection.db as Db;
  const store = new ShardAggregateRepository(
    createModels(connection).aggregate,
    db,
    new KeyLocks(redis, `layout-${suffix}`),
    GUARD_RETENTION,
    50,
    shards,
  );
  return { store, db };
}

function delta(key: string, value: number): KeyDelta {
  return { key, count: 1, sum: value, min: value, max: value, firstTs: 1_700_000_000_000, lastTs: 1_700_000_000_000, lastValue: value };
}

describe("the FerretDB profile's shard layout", () => {
  it('when a database is new, then it gets 32 shards, each in a collection of its own holding one document', async () => {
    const { store, db } = await repository('new');
    await store.prepare(new Date());
    const keys = ['lay/a', 'lay/b', 'lay/c'];
    await store.applyDeltas(
      keys.map((key, i) => delta(key, i + 1)),
      { slot: 10, lane: 'lanea', seq: 1 },
      new Date(),
    );
    expect(await db.collection('statshards').findOne({ _id: 'layout' as never })).toMatchObject({ shards: 32, ownCollections: true });
    for (const key of keys) {
      const shard = db.collection(`statshards_${shardOf(key, 32)}`);
      expect(await shard.countDocuments()).toBe(1);
      expect(await shard.findOne({})).toHaveProperty(['k', keyField(key), 'count'], 1);
    }
    expect(await store.findByKey('lay/b')).toMatchObject({ count: 1, sum: 2 });
  });

  it('when a database was written with all shards in one collection, then its statistics are read and added to there', async () => {
    const { store, db } = await repository('legacy');
    const shards = db.collection<{ _id: string; [field: string]: unknown }>('statshards');
    const key = 'lay/old';
    const at = new Date(1_600_000_000_000);
    await shards.insertMany([
      { _id: 'layout', shards: 8, createdAt: at },
      ...Array.from({ length: 8 }, (_, index) => ({ _id: `shard-${index}`, createdAt: at })),
    ]);
    await shards.updateOne(
      { _id: `shard-${shardOf(key, 8)}` },
      {
        $set: {
          [`k.${keyField(key)}`]: { count: 2, sum: 10, min: 4, max: 6, first: at, lastTs: at, last: { t: at, v: 6 }, updatedAt: at },
        },
      },
    );
    await store.prepare(new Date());
    await store.applyDeltas([delta(key, 5)], { slot: 10, lane: 'laneb', seq: 1 }, new Date());
    expect(await store.findByKey(key)).toMatchObject({ count: 3, sum: 15, min: 4, max: 6 });
    const names = (await db.listCollections({}, { nameOnly: true }).toArray()).map((collection) => collection.name);
    expect(names.filter((name) => name.startsWith('statshards_'))).toEqual([]);
  });

  it('when AGGREGATE_SHARDS names another number than the data was written with, then start-up fails saying so', async () => {
    const first = await repository('fixed', 16);
    await first.store.prepare(new Date());
    const { store } = await repository('fixed', 32);
    await expect(store.prepare(new Date())).rejects.toThrow(
      'AGGREGATE_SHARDS is 32, but this database holds statistics written with 16 shards; set it back to that, or leave it unset.',
    );
    const { store: unset } = await repository('fixed');
    await expect(unset.prepare(new Date())).resolves.toBeUndefined();
  });
});
