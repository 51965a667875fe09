import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { MongoClient, type Binary, type Db } from 'mongodb';
import type { Connection } from 'mongoose';
import { connectMongo } from '../../src/composition';
import type { KeyDelta } from '../../src/domain/stats';
import { createLogger } from '../../src/logger';
import { DEFAULT_REDIS_URL, loadConfig } from '../../src/config/config';
import type { AggregateStore } from '../../src/storage/contract';
import { createShardStore } from '../../src/storage/ferretdb';
import { shardOf } from '../../src/storage/ferretdb/shard-layout';
import { withScripts } from '../../src/queue/lua-scripts';
import { mongoServerUri } from '../support/harness';

/** The FerretDB profile's layout, whatever profile the rest of the suite runs. */
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

function delta(key: string, value: number): KeyDelta {
  return { key, count: 1, sum: value, min: value, max: value, firstTs: 1_700_000_000_000, lastTs: 1_700_000_000_000, lastValue: value };
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
    await store.applyDeltas(
      keys.map((key, i) => delta(key, i + 1)),
      { slot: 10, lane: 'lanea', seq: 1 },
      new Date(),
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
    await store.applyDeltas([delta('lay/p', 1)], { slot: 10, lane: 'lanea', seq: 1 }, new Date());
    await store.applyDeltas([delta('lay/p', 1)], { slot: 14, lane: 'lanea', seq: 1 }, new Date());
    await store.applyDeltas([delta('lay/p', 1)], { slot: 15, lane: 'laneb', seq: 1 }, new Date());
    const guards = decoded((await db.collection('statshards_0').findOne({}))?.g);
    expect(guards).toEqual({ 14: { lanea: 1 }, 15: { laneb: 1 } });
    expect(await store.findByKey('lay/p')).toMatchObject({ count: 3 });
  });

  it('when two writers take turns on the same packed shard, then each reads what the other wrote and nothing is lost', async () => {
    const { connection } = await database('turns');
    const [a, b] = [await storeOf(connection, 1), await storeOf(connection, 1)];
    for (let seq = 1; seq <= 3; seq += 1) {
      await a.applyDeltas([delta('lay/turns', 1)], { slot: 10, lane: 'lanea', seq }, new Date());
      await b.applyDeltas([delta('lay/turns', 10)], { slot: 10, lane: 'laneb', seq }, new Date());
    }
    expect(await a.findByKey('lay/turns')).toMatchObject({ count: 6, sum: 33 });
  });

  it('when Redis holds a stale version of a packed shard (a writer stopped before publishing its own), then the next write reads the shard and counts once', async () => {
    const { connection, db } = await database('stale');
    const [a, b] = [await storeOf(connection, 1), await storeOf(connection, 1)];
    await a.applyDeltas([delta('lay/stale', 1)], { slot: 10, lane: 'lanea', seq: 1 }, new Date());
    const written = String((await db.collection('statshards_0').findOne({}))?.v);
    await b.applyDeltas([delta('lay/stale', 10)], { slot: 10, lane: 'laneb', seq: 1 }, new Date());
    // As if b had written the store but not Redis: Redis says the version a wrote and still holds.
    await redis.hset(`layout-${suffix}-${connection.name}:statshards:versions`, '0', written);
    await a.applyDeltas([delta('lay/stale', 100)], { slot: 10, lane: 'lanea', seq: 2 }, new Date());
    await a.applyDeltas([delta('lay/stale', 100)], { slot: 10, lane: 'lanea', seq: 2 }, new Date());
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

  it('when nothing was written yet, then a packed store reads no statistics and lists no keys', async () => {
    const { connection } = await database('empty');
    const store = await storeOf(connection);
    expect(await store.findByKey('lay/none')).toBeNull();
    expect(await store.list({ limit: 10 })).toEqual({ items: [], nextCursor: null });
  });

  it('when a writer adds to packed shards a reader already read, then the reader sees the writes at once', async () => {
    const { connection } = await database('reader');
    const [writer, reader] = [await storeOf(connection, 4), await storeOf(connection, 4)];
    await writer.applyDeltas([delta('lay/r/1', 1), delta('lay/r/2', 2)], { slot: 10, lane: 'lanea', seq: 1 }, new Date());
    expect((await reader.list({ prefix: 'lay/r/', limit: 10 })).items.map((item) => item.key)).toEqual(['lay/r/1', 'lay/r/2']);
    expect(await reader.findByKey('lay/r/1')).toMatchObject({ count: 1 });
    await writer.applyDeltas([delta('lay/r/1', 5), delta('lay/r/0', 3)], { slot: 10, lane: 'lanea', seq: 2 }, new Date());
    expect((await reader.list({ prefix: 'lay/r/', limit: 10 })).items.map((item) => [item.key, item.count])).toEqual([
      ['lay/r/0', 1],
      ['lay/r/1', 2],
      ['lay/r/2', 1],
    ]);
    expect(await reader.findByKey('lay/r/1')).toMatchObject({ count: 2, sum: 6 });
    expect((await reader.list({ prefix: 'lay/r/', limit: 1, after: 'lay/r/0' })).items.map((item) => item.key)).toEqual(['lay/r/1']);
  });

  it('when keys of packed shards are listed, then pages follow the cursor in key order across shards, narrowed by prefix', async () => {
    const { connection } = await database('list');
    const store = await storeOf(connection, 4);
    const keys = Array.from({ length: 25 }, (_, i) => `lay/list/${String(i).padStart(2, '0')}`);
    await store.applyDeltas([...keys.map((key, i) => delta(key, i)), delta('other/x', 1)], { slot: 10, lane: 'lanea', seq: 1 }, new Date());
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await store.list({ prefix: 'lay/list/', limit: 10, after });
      seen.push(...page.items.map((item) => item.key));
      if (page.nextCursor === null) break;
      after = page.nextCursor;
    }
    expect(seen).toEqual(keys);
    expect((await store.list({ limit: 100 })).items.map((item) => item.key)).toEqual([...keys, 'other/x']);
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
