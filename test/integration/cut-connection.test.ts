import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { MongoClient, type Collection } from 'mongodb';
import { insertNew, isRefusal, isRefusedData } from '../../src/storage/shared/mongo-errors';
import { DEFAULT_MONGODB_URI } from '../../src/config/config';

/**
 * A TCP proxy in front of the MongoDB-compatible server whose connections can be cut: the driver then wraps the
 * failure of a bulk write in the same error type as the server's per-statement errors, with none of them.
 */
class CuttingProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  cutting = false;

  constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target.port, this.target.host);
      this.sockets.add(client).add(upstream);
      client.on('data', (data: Buffer) => {
        if (this.cutting) {
          client.destroy();
          upstream.destroy();
        } else {
          upstream.write(data);
        }
      });
      upstream.on('data', (data: Buffer) => client.write(data));
      for (const socket of [client, upstream]) {
        socket.on('error', () => undefined);
        socket.on('close', () => {
          client.destroy();
          upstream.destroy();
        });
      }
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const target = new URL((process.env.MONGODB_URI ?? DEFAULT_MONGODB_URI).replace(/^mongodb:/, 'http:'));
const dbName = `test_cut_${randomBytes(4).toString('hex')}`;
let proxy: CuttingProxy;
let client: MongoClient;
let direct: MongoClient;
let collection: Collection<{ _id: string; v?: number }>;

beforeAll(async () => {
  proxy = new CuttingProxy({ host: target.hostname, port: Number(target.port || 27017) });
  const port = await proxy.listen();
  client = await MongoClient.connect(`mongodb://127.0.0.1:${port}/?directConnection=true&serverSelectionTimeoutMS=1000&retryWrites=false`);
  direct = await MongoClient.connect(`mongodb://${target.host}`);
  collection = client.db(dbName).collection('cut');
  await collection.insertOne({ _id: 'warm-up' });
});

afterAll(async () => {
  await direct.db(dbName).dropDatabase();
  await direct.close();
  await client.close(true);
  await proxy.close();
});

describe('a bulk write whose connection is cut', () => {
  it('when the connection drops during an insert of new documents, then insertNew fails instead of reporting them inserted', async () => {
    proxy.cutting = true;
    const outcome = insertNew(collection, [{ _id: 'a' }, { _id: 'b' }]);
    await expect(outcome).rejects.toThrow();
    const error: unknown = await outcome.catch((caught: unknown) => caught);
    proxy.cutting = false;
    // Not the server's answer about the statements: no group fallback, no permanent failure.
    expect({ refusal: isRefusal(error), refusedData: isRefusedData(error) }).toEqual({ refusal: false, refusedData: false });
  });

  it('when the server refuses a statement for its value, then that is a refusal of the data', async () => {
    proxy.cutting = false;
    const seeded = direct.db(dbName).collection<{ _id: string; v: number }>('cut');
    await seeded.insertOne({ _id: 'max', v: Number.MAX_VALUE });
    const error: unknown = await collection
      .bulkWrite([{ updateOne: { filter: { _id: 'max' }, update: { $inc: { v: 1e292 } } } }], { ordered: false })
      .then(() => undefined)
      .catch((caught: unknown) => caught);
    if (error === undefined) {
      // MongoDB stores the overflow as Infinity (why values are bounded at ingest).
      expect((await seeded.findOne({ _id: 'max' }))?.v).toBe(Number.POSITIVE_INFINITY);
    } else {
      // FerretDB refuses it (BadValue): a refusal, and a permanent one.
      expect({ refusal: isRefusal(error), refusedData: isRefusedData(error) }).toEqual({ refusal: true, refusedData: true });
    }
  });
});
