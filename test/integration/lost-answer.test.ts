import net from 'node:net';
import { getJson, postJson, startHarness, waitFor, type Harness } from '../support/harness';
import { storedPoints } from '../support/stored-history';
import { DEFAULT_REDIS_URL } from '../../src/config/config';

/** What the API gets of Redis' answers to the transaction that commits a batch. */
type Lost = 'every answer' | 'the EXEC answer';

/**
 * A TCP proxy in front of Redis that can lose one answer: armed, it forwards the next transaction that commits a
 * batch (an EXEC after the batch status `queued`), lets Redis run it, then cuts that connection without passing the
 * answer on (all of it, or only EXEC's: MULTI's +OK and the +QUEUED lines arrive) and refuses new connections for a
 * while, as a Redis that died right after running the transaction would.
 */
class AnswerLosingProxy {
  private readonly server: net.Server;
  private armed = false;
  private refuseUntil = 0;
  private readonly sockets = new Set<net.Socket>();
  /** Answers lost so far: each test checks that its fault really happened. */
  lostAnswers = 0;

  constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((client) => this.accept(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Loses the answer to the next batch commit, then refuses connections for `outageMs`. */
  arm(outageMs: number, lost: Lost): void {
    this.armed = true;
    this.outageMs = outageMs;
    this.lost = lost;
  }

  private outageMs = 0;
  private lost: Lost = 'every answer';

  private accept(client: net.Socket): void {
    if (Date.now() < this.refuseUntil) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.target.port, this.target.host);
    this.sockets.add(client).add(upstream);
    let sent = '';
    let losing = false;
    client.on('data', (data: Buffer) => {
      sent = (sent + data.toString('latin1')).slice(-65_536);
      if (this.armed && /queued/.test(sent) && /\r\nexec\r\n/i.test(sent)) {
        this.armed = false;
        losing = true;
        this.lostAnswers += 1;
        this.refuseUntil = Date.now() + this.outageMs;
        upstream.write(data);
        // Redis runs the transaction; its answer never reaches the API.
        setTimeout(() => {
          client.destroy();
          upstream.destroy();
        }, 200);
        return;
      }
      upstream.write(data);
    });
    let answered = '';
    let passed = 0;
    upstream.on('data', (data: Buffer) => {
      if (!losing) {
        client.write(data);
        return;
      }
      if (this.lost === 'every answer') return;
      // Everything up to the last +QUEUED goes through; EXEC's answer after it does not.
      answered += data.toString('latin1');
      const end = answered.lastIndexOf('+QUEUED\r\n') + '+QUEUED\r\n'.length;
      if (end > passed) {
        client.write(Buffer.from(answered.slice(passed, end), 'latin1'));
        passed = end;
      }
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** The same NDJSON body under the same Idempotency-Key, as a careful client resends it. */
function postNdjson(baseUrl: string, body: string, idempotencyKey: string): ReturnType<typeof postJson> {
  return postJson(baseUrl, body, { 'content-type': 'application/x-ndjson', 'idempotency-key': idempotencyKey });
}

describe('an answer lost after Redis committed a streamed batch', () => {
  let proxy: AnswerLosingProxy;
  let h: Harness;

  beforeAll(async () => {
    const redis = new URL(process.env.REDIS_URL ?? DEFAULT_REDIS_URL);
    proxy = new AnswerLosingProxy({ host: redis.hostname, port: Number(redis.port || 6379) });
    const port = await proxy.listen();
    h = await startHarness({ REDIS_URL: `redis://127.0.0.1:${port}` });
  });

  afterAll(async () => {
    await h.close();
    await proxy.close();
  });

  it.each<[Lost, number]>([
    ['every answer', 1500],
    ['the EXEC answer', 3000],
  ])(
    'when %s to the commit of a streamed batch is lost, then a resend with its Idempotency-Key gets a 202 and every point is counted once',
    async (lost, outageMs) => {
      const key = `lost-answer/${lost}`;
      const values = Array.from({ length: 300 }, (_, i) => i + 1);
      const body = values.map((value) => JSON.stringify({ key, value })).join('\n');
      const idempotencyKey = `lost-answer-${lost.replaceAll(' ', '-')}`;

      const lostBefore = proxy.lostAnswers;
      proxy.arm(outageMs, lost);
      const answers = [await postNdjson(h.baseUrl, body, idempotencyKey)];
      expect(proxy.lostAnswers).toBe(lostBefore + 1);
      // A careful client sends again until it gets a 202: same key, same bytes.
      while (answers.at(-1)?.status !== 202 && answers.length < 30) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        answers.push(await postNdjson(h.baseUrl, body, idempotencyKey));
      }
      expect(answers.at(-1)).toMatchObject({ status: 202, body: { accepted: 300, rejected: [] } });
      // Until then, what a client can retry on: never a 500.
      expect(answers.slice(0, -1).map((answer) => answer.status)).toEqual(answers.slice(0, -1).map(() => 503));
      // Every 202 names the same batch: the one Redis committed.
      expect(new Set(answers.filter((answer) => answer.status === 202).map((answer) => answer.body.batchId)).size).toBe(1);

      await waitFor(async () => {
        const stats = await getJson(h.baseUrl, `/api/data/stats/${encodeURIComponent(key)}`);
        return stats.status === 200 && stats.body.count >= 300 ? true : undefined;
      });
      // Whatever else is still queued has had time to run: nothing more may arrive.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const stats = await getJson(h.baseUrl, `/api/data/stats/${encodeURIComponent(key)}`);
      expect({ count: stats.body.count, sum: stats.body.sum }).toEqual({ count: 300, sum: 45_150 });
      expect(await storedPoints(h.db, { key })).toBe(300);
    },
  );
});
