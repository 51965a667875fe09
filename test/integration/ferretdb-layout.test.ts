import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { MongoClient, type Binary, type Db } from 'mongodb';
import type { Connection } from 'mongoose';
import { connectMongo } from '../../src/storage/connect';
import { createLogger } from '../../src/logger';
import { DEFAULT_REDIS_URL, loadConfig } from '../../src/config/config';
import type { AggregateStore } from '../../src/storage/contract';
import { createShardStore } from '../../src/storage/ferretdb';
import { shardOf } from '../../src/storage/ferretdb/shard-layout';
import { withScripts } from '../../src/queue/lua-scripts';
import { mongoServerUri } from '../support/harness';
import { applyJob, delta } from '../support/store-writes';

/**
 * What only the FerretDB profile's layout does (the contract is statistics-store.test.ts's): packed shards, their
 * guard and versions, whatever profile the rest of the suite runs.
 */
const baseUri = mongoServerUri();
const suffix = randomBytes(4).toString('hex');
let client: MongoClient;
let redis: Redis;
const opened: Connection[] = [];

beforeAll(async () => {
  client = await MongoClient.connect(baseUri);
  redis = new Redis(process.env.REDIS_URL ?? DEFAULT_REDIS_URL);
});

afterAll(async () => {
  for (const connection of opened) {
    await connection.db?.dropDatabase();
    await connection.close();
  }
  const locks = await redis.keys(`layout-${suffix}-*`);
  if (locks.length > 0) await redis.del(...locks);
  await redis.quit();
  await client.close();
});

async function database(name: string): Promise<{ connection: Connection; db: Db }> {
  const connection = await connectMongo(`${baseUri}/test_layout_${name}_${suffix}`, createLogger('silent', 'test'), false);
  opened.push(connection);
  return { connection, db: connection.db as Db };
}

/** The store a process would build on this database, prepared. */
async function storeOf(connection: Connection, shards?: number): Promise<AggregateStore> {
  // Locks and shard versions of each database apart, as each deployment's QUEUE_NAME keeps them.
  const namespace = `layout-${suffix}-${connection.name}`;
  const store = await createShardStore({
    db: connection.db as Db,
    config: { ...loadConfig({}), QUEUE_NAME: namespace, AGGREGATE_SHARDS: shards },
    redis,
    logger: createLogger('silent', 'test'),
  });
  await store.prepare(new Date());
  return store;
}

/** A packed shard's JSON field. */
function decoded(field: Binary | undefined): unknown {
  return field ? JSON.parse(Buffer.from(field.buffer).toString('utf8')) : undefined;
}

describe("the FerretDB profile's shard layout", () => {
  it('when a database is new, then it gets 32 packed shards, each one document in a collection of its own', async () => {
    const { connection, db } = await database('new');
    const store = await storeOf(connection);
    const keys = ['lay/a', 'lay/b', 'lay/c'];
    await applyJob(
      store,
      keys.map((key, i) => delta(key, i + 1)),
      { slot: 10, lane: 'lanea', seq: 1 },
    );
    expect(await db.collection('statshards').findOne({ _id: 'layout' as never })).toMatchObject({ shards: 32 });
    for (const key of keys) {
      const shard = db.collection(`statshards_${shardOf(key, 32)}`);
      expect(await shard.countDocuments()).toBe(1);
      const doc = await shard.findOne({});
      expect(doc).toMatchObject({ v: expect.stringMatching(/^1\./), n: 1 });
      expect(decoded(doc?.g)).toEqual({ 10: { lanea: 1 } });
      expect(decoded(doc?.k)).toHaveProperty([key, 0], 1);
    }
    expect(await store.findByKey('lay/b')).toMatchObject({ count: 1, sum: 2 });
  });

  it('when a packed shard gets a group with a job it already holds, then only the other job is added, and its guard is raised', async () => {
    const { connection, db } = await database('regroup');
    const store = await storeOf(connection, 1);
    const first = { deltas: [delta('lay/g', 100)], guard: { slot: 10, lane: 'lanea', seq: 1 } };
    await store.applyGroup([first], new Date());
    const other = { deltas: [delta('lay/g', 1), delta('lay/h', 3)], guard: { slot: 10, lane: 'laneb', seq: 4 } };
    await store.applyGroup([first, other], new Date());
    await store.applyGroup([other], new Date());
    expect(await store.findByKey('lay/g')).toMatchObject({ count: 2, sum: 101, min: 1, max: 100, lastValue: 100 });
    expect(await store.findByKey('lay/h')).toMatchObject({ count: 1, sum: 3 });
    const shard = await db.collection('statshards_0').findOne({});
    expect(shard).toMatchObject({ v: expect.stringMatching(/^2\./), n: 2 });
    expect(decoded(shard?.g)).toEqual({ 10: { lanea: 1, laneb: 4 } });
  });

  it('when guards of a packed shard are older than the retention, then a later write drops them and keeps the recent ones', async () => {
    const { connection, db } = await database('prune');
    const store = await storeOf(connection, 1);
    await applyJob(store, [delta('lay/p', 1)], { slot: 10, lane: 'lanea', seq: 1 });
    await applyJob(store, [delta('lay/p', 1)], { slot: 14, lane: 'lanea', seq: 1 });
    await applyJob(store, [delta('lay/p', 1)], { slot: 15, lane: 'laneb', seq: 1 });
    const guards = decoded((await db.collection('statshards_0').findOne({}))?.g);
    expect(guards).toEqual({ 14: { lanea: 1 }, 15: { laneb: 1 } });
    expect(await store.findByKey('lay/p')).toMatchObject({ count: 3 });
  });

  it('when Redis holds a stale version of a packed shard (a writer stopped before publishing its own), then the next write reads the shard and counts once', async () => {
    const { connection, db } = await database('stale');
    const [a, b] = [await storeOf(connection, 1), await storeOf(connection, 1)];
    await applyJob(a, [delta('lay/stale', 1)], { slot: 10, lane: 'lanea', seq: 1 });
    const written = String((await db.collection('statshards_0').findOne({}))?.v);
    await applyJob(b, [delta('lay/stale', 10)], { slot: 10, lane: 'laneb', seq: 1 });
    // As if b had written the store but not Redis: Redis says the version a wrote and still holds.
    await redis.hset(`layout-${suffix}-${connection.name}:statshards:versions`, '0', written);
    await applyJob(a, [delta('lay/stale', 100)], { slot: 10, lane: 'lanea', seq: 2 });
    await applyJob(a, [delta('lay/stale', 100)], { slot: 10, lane: 'lanea', seq: 2 });
    expect(await a.findByKey('lay/stale')).toMatchObject({ count: 3, sum: 111 });
    expect(await db.collection('statshards_0').findOne({})).toMatchObject({ v: expect.stringMatching(/^3\./) });
  });

  it('when a writer publishes a shard version older than the one Redis holds (it lost its lock and came late), then Redis keeps the newer', async () => {
    const key = `layout-${suffix}-publish:statshards:versions`;
    const scripts = withScripts(redis);
    expect(await scripts.packedVersionsPublish(key, '0', '5.aaaa', '1', '0.bbbb')).toBe(2);
    expect(await scripts.packedVersionsPublish(key, '0', '4.cccc', '1', '1.dddd')).toBe(1);
    expect(await redis.hgetall(key)).toEqual({ 0: '5.aaaa', 1: '1.dddd' });
  });

  it('when AGGREGATE_SHARDS names another number than the data was written with, then start-up fails saying so', async () => {
    const { connection } = await database('fixed');
    await storeOf(connection, 16);
    await expect(storeOf(connection, 32)).rejects.toThrow(
      'AGGREGATE_SHARDS is 32, but this database holds statistics written with 16 shards; set it back to that, or leave it unset.',
    );
    await expect(storeOf(connection)).resolves.toBeDefined();
  });
});
