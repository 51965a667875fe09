import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { getJson, startHarness, waitForBatch, type Harness } from '../support/harness';
import { isPlainObject, labelledItemArb, objectOf, oracleAccepts, propertySeed, toJsonText, validKeyArb } from '../support/hostile-input';
import { storedPoints } from '../support/stored-history';

const seed = propertySeed('ingest.property');
const RUNS = 40;
// Timestamps stay an hour away from the 24-hour limit, so the server's receive time cannot turn a point valid or invalid.
const SLACK_MS = 60 * 60 * 1000;
const T0 = Date.now();

interface Tally {
  count: number;
  sum: number;
  min: number;
  max: number;
}

type Shape = 'points' | 'array' | 'items' | 'ndjson';

const itemArb = labelledItemArb(T0, {
  // Integers keep every sum exact whatever the order the worker adds them in.
  valueArb: fc.oneof(fc.integer({ min: -1_000_000, max: 1_000_000 }), fc.constant(-0)),
  slackMs: SLACK_MS,
});

const requestArb = fc.record({
  items: fc.array(itemArb, { maxLength: 15 }),
  shape: fc.constantFrom<Shape>('points', 'array', 'items', 'ndjson'),
  batchKey: validKeyArb,
  dropKey: fc.array(fc.boolean(), { maxLength: 15 }),
  gzip: fc.boolean(),
  cuts: fc.array(fc.nat(), { maxLength: 6 }),
});

/** The body as several chunks of a streamed upload, cut at the given bytes. */
function streamOf(body: Buffer, cuts: number[]): ReadableStream<Uint8Array> {
  const positions = [...new Set(cuts.map((cut) => cut % (body.length + 1)))].sort((a, b) => a - b);
  const chunks = [...positions, body.length].map((end, i) => body.subarray(i === 0 ? 0 : positions[i - 1], end));
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = chunks.shift();
      if (next === undefined) controller.close();
      else controller.enqueue(next);
    },
  });
}

/** Every field name in any document of the collection that MongoDB would read as an operator or a path. */
async function unsafeFieldNames(h: Harness, collection: string): Promise<string[]> {
  const found: string[] = [];
  for await (const document of h.db.collection(collection).find({})) {
    const stack: unknown[] = [document];
    while (stack.length > 0) {
      const node = stack.pop();
      if (typeof node !== 'object' || node === null || node instanceof Date || Buffer.isBuffer(node)) continue;
      if (Array.isArray(node)) {
        stack.push(...(node as unknown[]));
        continue;
      }
      if (node.constructor.name === 'ObjectId') continue;
      for (const [name, child] of Object.entries(node)) {
        if (name.startsWith('$') || name.includes('.')) found.push(`${collection}: ${name}`);
        if (collection === 'history' && ['__proto__', 'constructor', 'prototype'].includes(name)) found.push(`${collection}: ${name}`);
        stack.push(child);
      }
    }
  }
  return found;
}

describe('ingest over HTTP, property-based, on real Redis and the MongoDB-compatible server', () => {
  let h: Harness;
  const tallies = new Map<string, Tally>();
  const batchIds: { batchId: string; accepted: number }[] = [];
  let acceptedTotal = 0;

  beforeAll(async () => {
    h = await startHarness({ JOB_CHUNK_SIZE: '7', RATE_LIMIT_PER_MINUTE: '0' });
  });

  afterAll(async () => {
    await h.close();
  });

  it('when mixed batches of valid and invalid points are posted in every shape, then exactly the valid ones are accepted and the invalid indices rejected', async () => {
    await fc.assert(
      fc.asyncProperty(requestArb, async ({ items, shape, batchKey, dropKey, gzip, cuts }) => {
        const sent = items.map(({ raw }, i) =>
          shape === 'items' && dropKey[i] && isPlainObject(raw) ? objectOf(Object.entries(raw).filter(([name]) => name !== 'key')) : raw,
        );
        // What the server will validate: in the {key, items} form an item without a key takes the batch key.
        const effective = sent.map((raw) =>
          shape === 'items' && isPlainObject(raw) && !Object.prototype.hasOwnProperty.call(raw, 'key')
            ? objectOf([...Object.entries(raw), ['key', batchKey]])
            : raw,
        );
        const valid = effective.map((raw, i) => (shape === 'items' ? oracleAccepts(raw, T0) : (items[i]?.valid ?? false)));

        let text: string;
        if (shape === 'ndjson') text = sent.map((raw) => `${toJsonText(raw)}\n`).join('');
        else if (shape === 'array') text = toJsonText(sent);
        else if (shape === 'points') text = toJsonText({ points: sent });
        else text = toJsonText({ key: batchKey, items: sent });
        const body = gzip ? gzipSync(text) : Buffer.from(text);
        const response = await fetch(`${h.baseUrl}/api/data/ingest`, {
          method: 'POST',
          headers: {
            'content-type': shape === 'ndjson' ? 'application/x-ndjson' : 'application/json',
            ...(gzip ? { 'content-encoding': 'gzip' } : {}),
          },
          body: streamOf(body, cuts),
          duplex: 'half',
        });
        const answer = (await response.json()) as any;

        const validIndices = valid.flatMap((ok, i) => (ok ? [i] : []));
        const invalidIndices = valid.flatMap((ok, i) => (ok ? [] : [i]));
        if (validIndices.length === 0) {
          expect({ status: response.status, code: answer.error?.code }).toEqual({ status: 400, code: 'NO_VALID_POINTS' });
          expect(answer.error.details.map((d: { index: number }) => d.index)).toEqual(invalidIndices);
          return;
        }
        expect(response.status).toBe(202);
        expect(answer.accepted).toBe(validIndices.length);
        expect(answer.rejected.map((r: { index: number }) => r.index)).toEqual(invalidIndices);

        batchIds.push({ batchId: answer.batchId, accepted: answer.accepted });
        acceptedTotal += validIndices.length;
        for (const index of validIndices) {
          const point = effective[index] as { key: string; value: number };
          const value = point.value + 0;
          const tally = tallies.get(point.key);
          if (tally)
            Object.assign(tally, {
              count: tally.count + 1,
              sum: tally.sum + value,
              min: Math.min(tally.min, value),
              max: Math.max(tally.max, value),
            });
          else tallies.set(point.key, { count: 1, sum: value, min: value, max: value });
        }
      }),
      { seed, numRuns: RUNS, endOnFailure: true },
    );
  });

  it('when every accepted batch is processed, then each key counts exactly its valid points and no stored field name is an operator or a path', async () => {
    expect(batchIds.length).toBeGreaterThan(0);
    for (const { batchId, accepted } of batchIds) {
      expect(await waitForBatch(h.baseUrl, batchId)).toMatchObject({ status: 'completed', points: accepted, processedPoints: accepted });
    }

    for (const [key, tally] of tallies) {
      const { status, body } = await getJson(h.baseUrl, `/api/data/stats?key=${encodeURIComponent(key)}`);
      expect({ key, status, count: body.count, sum: body.sum, min: body.min, max: body.max }).toEqual({ key, status: 200, ...tally });
    }
    const listed = await getJson(h.baseUrl, '/api/data/stats?limit=1000');
    expect(listed.body.items.map((item: { key: string }) => item.key).sort()).toEqual([...tallies.keys()].sort());
    expect(await storedPoints(h.db)).toBe(acceptedTotal);

    const collections = (await h.db.listCollections({}, { nameOnly: true }).toArray()).map((collection) => collection.name);
    // Statistics live in `stats` (MongoDB profile) or `statshards*` (FerretDB profile): either way they are checked.
    expect(collections).toContain('history');
    expect(collections.some((name) => name === 'stats' || name.startsWith('statshards'))).toBe(true);
    const stored = await Promise.all(collections.map((collection) => unsafeFieldNames(h, collection)));
    expect(stored.flat()).toEqual([]);
  });
});
