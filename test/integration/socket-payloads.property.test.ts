import fc from 'fast-check';
import type { BatchDone } from '../../src/exactly-once/batch-store';
import type { StatsUpdate } from '../../src/sockets/socket-events';
import { getJson, postJson, startHarness, waitFor, waitForBatch, type Harness, type TestSocket } from '../support/harness';
import { oracleAcceptsSubscription, propertySeed, subscriptionPayloadArb, toJsonText } from '../support/hostile-input';

const seed = propertySeed('socket-payloads.property');
const RUNS = 15;
const MAX_KEYS = 4;
// Keys a subscription may name: harmless ones and ones that look like operators, paths or prototype names.
const POOL = ['s/a', 's/b', '__proto__', '$where', 'a.b', 'constructor', '😀', 'k'.repeat(200)];
// Only the pool's keys get points; a hostile payload can subscribe a valid key outside it, which then gets none.
const posted = (keys: Iterable<string>): string[] => [...keys].filter((key) => POOL.includes(key));
const SOCKETS = 3;

type Event = 'subscribe' | 'unsubscribe';

interface Action {
  socket: number;
  event: Event;
  payload: unknown;
  /** `ack`: wait for the acknowledgement; `none`: no callback; `extra`: a stray second argument instead of a callback. */
  mode: 'ack' | 'none' | 'extra';
}

/** One socket's subscriptions, as the acknowledgements said they are. */
interface Model {
  keys: Set<string>;
  jobs: boolean;
  everKeys: Set<string>;
  everJobs: boolean;
}

const actionArb: fc.Arbitrary<Action> = fc
  .record({
    socket: fc.nat(SOCKETS - 1),
    event: fc.constantFrom<Event>('subscribe', 'subscribe', 'unsubscribe'),
    payload: fc.oneof(
      { weight: 3, arbitrary: fc.record({ keys: fc.subarray(POOL, { maxLength: 6 }), jobs: fc.boolean() }, { requiredKeys: ['keys'] }) },
      { weight: 2, arbitrary: subscriptionPayloadArb(fc.constantFrom(...POOL)) },
      {
        weight: 1,
        arbitrary: fc.constantFrom<unknown>(
          Buffer.from('binary'),
          { keys: [Buffer.from('s/a')] },
          { keys: ['s/a'], jobs: Buffer.alloc(2) },
        ),
      },
    ),
    mode: fc.constantFrom<Action['mode']>('ack', 'ack', 'ack', 'ack', 'none', 'extra'),
  })
  .filter(({ payload }) => Buffer.isBuffer(payload) || toJsonText(payload).length < 500_000); // over 1 MB closes the connection: tested below

function hasBuffer(payload: unknown): boolean {
  if (Buffer.isBuffer(payload)) return true;
  return typeof payload === 'object' && payload !== null && Object.values(payload).some(hasBuffer);
}

/** The payload as the server receives it: socket.io sends JSON, where non-finite numbers become null. */
const overTheWire = (payload: unknown): unknown => JSON.parse(toJsonText(payload).replace(/-?1e400/g, 'null'));

/** Emits without the typed signature: the point is to send what a typed client could not. */
const emitRaw = (socket: TestSocket, ...args: unknown[]): void => {
  (socket as unknown as { emit: (...all: unknown[]) => void }).emit(...args);
};

describe('socket payloads, property-based, on a real socket.io client', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ MAX_KEYS_PER_SOCKET: String(MAX_KEYS), RATE_LIMIT_PER_MINUTE: '0' });
  });

  afterAll(async () => {
    await h.close();
  });

  it('when sockets send random subscribe and unsubscribe payloads, then every ack is ok or an error as the contract says, and each socket gets updates of its own keys only', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(actionArb, { minLength: 1, maxLength: 8 }), async (actions) => {
        const sockets: TestSocket[] = [];
        const models: Model[] = [];
        const updates: StatsUpdate[][] = [];
        const done: BatchDone[][] = [];
        for (let i = 0; i < SOCKETS; i += 1) {
          const socket = await h.connect();
          const received: StatsUpdate[] = [];
          const batches: BatchDone[] = [];
          socket.on('stats:update', (update) => received.push(update));
          socket.on('batch:done', (event) => batches.push(event));
          sockets.push(socket);
          updates.push(received);
          done.push(batches);
          models.push({ keys: new Set(), jobs: false, everKeys: new Set(), everJobs: false });
        }
        try {
          for (const { socket: index, event, payload, mode } of actions) {
            const socket = sockets[index] as TestSocket;
            const model = models[index] as Model;
            // A Buffer travels as a binary attachment and arrives as a Buffer: never a valid subscription.
            const valid = !hasBuffer(payload) && oracleAcceptsSubscription(overTheWire(payload));
            const wire = valid ? overTheWire(payload) : undefined;
            const { keys = [], jobs = false } = valid ? (wire as { keys?: string[]; jobs?: boolean }) : {};
            const fresh = new Set(keys.filter((key) => !model.keys.has(key)));
            const allowed = valid && (event === 'unsubscribe' || model.keys.size + fresh.size <= MAX_KEYS);

            if (mode === 'ack') {
              const ack: any = await socket.timeout(10_000).emitWithAck(event, payload as never);
              if (!allowed) {
                expect({ ok: ack.ok, code: ack.error?.code, message: typeof ack.error?.message }).toEqual({
                  ok: false,
                  code: 'INVALID_SUBSCRIPTION',
                  message: 'string',
                });
              } else if (event === 'subscribe') {
                expect(ack.ok).toBe(true);
                expect(Object.keys(ack.snapshot as object).sort()).toEqual([...new Set(keys)].sort());
              } else {
                expect(ack).toEqual({ ok: true });
              }
            } else if (mode === 'none') {
              emitRaw(socket, event, payload);
            } else {
              emitRaw(socket, event, payload, 'not a callback');
            }
            // Without a callback the server does not subscribe (it could not send the snapshot) but does unsubscribe.
            if (!allowed || (event === 'subscribe' && mode !== 'ack')) continue;
            if (event === 'subscribe') {
              for (const key of keys) model.keys.add(key);
              if (jobs) model.jobs = true;
            } else {
              for (const key of keys) model.keys.delete(key);
              if (jobs) model.jobs = false;
            }
            for (const key of model.keys) model.everKeys.add(key);
            model.everJobs ||= model.jobs;
          }

          const { body } = await postJson(
            h.baseUrl,
            POOL.map((key) => ({ key, value: 1 })),
          );
          await waitForBatch(h.baseUrl, body.batchId);
          for (const [index, model] of models.entries()) {
            const received = updates[index] as StatsUpdate[];
            for (const key of posted(model.keys)) {
              await waitFor(() => received.find((u) => u.batchId === body.batchId && u.key === key), 20_000, `socket ${index}: ${key}`);
            }
            if (model.jobs) await waitFor(() => (done[index] as BatchDone[]).find((d) => d.batchId === body.batchId), 20_000, 'batch:done');
          }
          // A round trip on each connection: whatever the server emitted to it before has arrived.
          for (const socket of sockets) await socket.timeout(10_000).emitWithAck('unsubscribe', { keys: [] });

          for (const [index, model] of models.entries()) {
            const received = updates[index] as StatsUpdate[];
            const ofThisBatch = received.filter((u) => u.batchId === body.batchId).map((u) => u.key);
            expect({ index, keys: [...new Set(ofThisBatch)].sort() }).toEqual({ index, keys: posted(model.keys).sort() });
            expect({ index, strangers: received.filter((u) => !model.everKeys.has(u.key)).map((u) => u.key) }).toEqual({
              index,
              strangers: [],
            });
            const batchDone = (done[index] as BatchDone[]).filter((d) => d.batchId === body.batchId).length;
            expect({ index, batchDone }).toEqual({ index, batchDone: model.jobs ? 1 : 0 });
            if (!model.everJobs) expect(done[index]).toEqual([]);
          }
        } finally {
          for (const socket of sockets) socket.disconnect();
        }
      }),
      // A failure shrinks with real sockets and batches; stop shrinking in time to report it within Jest's timeout.
      { seed, numRuns: RUNS, plugins: [fc.interruptAfterTimeLimit(45_000, { failOnInterrupt: true })] },
    );
  });

  it('when a payload is over the 1 MB message limit, then that connection is closed and the server keeps serving others', async () => {
    const greedy = await h.connect();
    const closed = new Promise<string>((resolve) => greedy.once('disconnect', resolve));
    emitRaw(greedy, 'subscribe', { keys: ['x'.repeat(1_100_000)] });
    expect(await closed).toBe('transport close');

    const other = await h.connect();
    expect(await other.emitWithAck('subscribe', { keys: ['s/a'] })).toMatchObject({ ok: true });
    expect((await getJson(h.baseUrl, '/healthz')).status).toBe(200);
  });
});
