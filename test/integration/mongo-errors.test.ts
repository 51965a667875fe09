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
      const collection = client.db().collection<{ _id: string }>('datapoints');
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
});
