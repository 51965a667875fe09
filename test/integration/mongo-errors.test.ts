import { MongoClient } from 'mongodb';
import { insertNew, isRefusal, isUnanswered } from '../../src/storage/shared/mongo-errors';
import { mongoServerUri } from '../support/harness';
import { closedPort, failure } from '../support/failures';

/**
 * A tripwire for how the driver reports "no answer" (src/storage/shared/mongo-errors.ts isUnanswered): a worker waits
 * such an outage out without using an attempt (services/outage-wait.ts), and must never wait out the server's answer.
 */
describe('MongoDB errors as the worker tells them apart', () => {
  it('when the server is out of reach, then a bulk write and a command fail unanswered, not refused', async () => {
    const client = new MongoClient(`mongodb://127.0.0.1:${await closedPort()}/nobody`, { serverSelectionTimeoutMS: 300 });
    try {
      const collection = client.db().collection<{ _id: string }>('history');
      const bulk = await failure(collection.bulkWrite([{ insertOne: { document: { _id: 'a' } } }], { ordered: false }));
      const command = await failure(client.db().admin().ping());

      expect(isUnanswered(bulk)).toBe(true);
      expect(isRefusal(bulk)).toBe(false);
      expect(isUnanswered(command)).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('when the server answers with an error, then it is not taken for an outage', async () => {
    const client = await MongoClient.connect(`${mongoServerUri()}/test_mongo_errors_${process.pid}`);
    try {
      const db = client.db();
      const collection = db.collection<{ _id: string; v?: unknown }>('records');
      await insertNew(collection, [{ _id: 'a' }]);
      // A duplicate in an ordered insert is the server's answer about one statement; an unknown operator, about the command.
      const duplicate = await failure(collection.bulkWrite([{ insertOne: { document: { _id: 'a' } } }]));
      const badUpdate = await failure(collection.updateOne({ _id: 'a' }, { $nosuchoperator: { v: 1 } }));

      expect(isUnanswered(duplicate)).toBe(false);
      expect(isUnanswered(badUpdate)).toBe(false);
      await db.dropDatabase();
    } finally {
      await client.close();
    }
  });

  it('when some documents of an insert are already there (a job run again), then the others are inserted and only they are counted, by their weight', async () => {
    const client = await MongoClient.connect(`${mongoServerUri()}/test_mongo_errors_new_${process.pid}`);
    try {
      const db = client.db();
      const collection = db.collection<{ _id: string; n: number }>('buckets');
      const weight = (document: { n: number }): number => document.n;
      const [a, b, c] = [
        { _id: 'a', n: 2 },
        { _id: 'b', n: 3 },
        { _id: 'c', n: 4 },
      ];
      expect(await insertNew(collection, [a])).toBe(1);
      expect(await insertNew(collection, [b, a, c], weight)).toBe(b.n + c.n);
      expect(await insertNew(collection, [c, b], weight)).toBe(0);
      expect(await insertNew(collection, [], weight)).toBe(0);
      expect((await collection.find().sort({ _id: 1 }).toArray()).map((document) => document._id)).toEqual(['a', 'b', 'c']);
      await db.dropDatabase();
    } finally {
      await client.close();
    }
  });
});
