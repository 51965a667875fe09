/**
 * What one `findOne({_id})` costs as a collection grows, on the MongoDB-compatible server of MONGODB_URI (a scratch
 * database of its own, dropped at the end): the same points stored one per document and in documents of 100.
 *
 *   npx tsx bench/id-lookup.ts
 *
 * On FerretDB v1.24.2 (SQLite) the filter `{_id: <string>}` is pushed down to SQL, but as a JSON path expression
 * that its `_id` index does not serve, so SQLite still reads every row: the cost follows the bytes stored, not the
 * documents fetched. The finding in docs/BENCHMARKS.md (history reads) quotes this probe.
 */
import { MongoClient } from 'mongodb';
import { DEFAULT_MONGODB_URI } from '../src/config/config';

interface Layout {
  docs: number;
  pointsPerDoc: number;
}

const LAYOUTS: Layout[] = [
  { docs: 10_000, pointsPerDoc: 1 },
  { docs: 100_000, pointsPerDoc: 1 },
  { docs: 1_000, pointsPerDoc: 100 },
  { docs: 10_000, pointsPerDoc: 100 },
];
const LOOKUPS = 20;
const INSERT_BATCH = 500;

function document(index: number, pointsPerDoc: number): { _id: string; key: string; points: object[] } {
  return {
    _id: `doc-${index}`,
    key: `key-${index % 100}`,
    points: Array.from({ length: pointsPerDoc }, (_, p) => ({ value: p * 1.5, timestamp: 1_800_000_000_000 + p, i: `${index}:${p}` })),
  };
}

async function main(): Promise<void> {
  const base = (process.env.MONGODB_URI ?? DEFAULT_MONGODB_URI).replace(/\/[^/?]*(\?|$)/, '/bench_id_lookup$1');
  const client = await MongoClient.connect(base);
  const collection = client.db().collection<{ _id: string }>('docs');
  try {
    console.log('documents  points/doc  points     insert s  findOne({_id}) ms (mean of 20)');
    for (const { docs, pointsPerDoc } of LAYOUTS) {
      await collection.drop().catch(() => undefined);
      const insertStarted = performance.now();
      for (let from = 0; from < docs; from += INSERT_BATCH) {
        const count = Math.min(INSERT_BATCH, docs - from);
        await collection.insertMany(Array.from({ length: count }, (_, offset) => document(from + offset, pointsPerDoc)));
      }
      const insertSeconds = (performance.now() - insertStarted) / 1000;
      const started = performance.now();
      for (let lookup = 0; lookup < LOOKUPS; lookup += 1) {
        const found = await collection.findOne({ _id: `doc-${(lookup * 7919) % docs}` });
        if (!found) throw new Error('a document that was inserted was not found');
      }
      const ms = (performance.now() - started) / LOOKUPS;
      console.log(
        `${String(docs).padStart(9)}  ${String(pointsPerDoc).padStart(10)}  ${String(docs * pointsPerDoc).padStart(9)}  ` +
          `${insertSeconds.toFixed(1).padStart(8)}  ${ms.toFixed(1)}`,
      );
    }
  } finally {
    await client.db().dropDatabase();
    await client.close();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
