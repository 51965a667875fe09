/**
 * What one group of statistics updates costs on the store, by shard layout: every key written once, as a group
 * holding one point per key would. The update statements are the FerretDB profile's own (guard in the filter, the
 * same operators), built here without the repository so that the layouts can be compared side by side.
 *
 *   npx tsx bench/shard-layout.ts [--keys 100,10000] [--layouts 8:one,32,128] [--rounds 3]
 *
 * A layout is `<shards>` (each shard in a collection of its own) or `<shards>:one` (all in one collection, in
 * commands of 50 statements, the layout before per-shard collections). Prints the median ms per group and per
 * statement. MONGODB_URI names the server (default mongodb://127.0.0.1:27017); each run uses a database of its own.
 */
import { parseArgs } from 'node:util';
import { MongoClient, type AnyBulkWriteOperation } from 'mongodb';
import { keyField } from '../src/repositories/shard-aggregate-repository';
import { shardOf } from '../src/repositories/shard-layout';
import { guardedUpdate } from '../src/repositories/aggregate-store';
import { GUARD_RETENTION } from '../src/exactly-once/guard';
import { DEFAULT_MONGODB_URI } from '../src/config/config';

interface Layout {
  shards: number;
  oneCollection: boolean;
}

const WRITE_BATCH = 50;

function parseLayouts(text: string): Layout[] {
  return text.split(',').map((part) => {
    const [shards, mode] = part.trim().split(':');
    const count = Number(shards);
    if (!Number.isInteger(count) || count < 1 || (mode !== undefined && mode !== 'one')) throw new Error(`bad layout "${part}"`);
    return { shards: count, oneCollection: mode === 'one' };
  });
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

function statement(index: number, keys: readonly string[], seq: number, now: Date): AnyBulkWriteOperation {
  const ts = now.getTime();
  const deltas = keys.map(
    (key) => [`k.${keyField(key)}.`, { key, count: 1, sum: 1, min: 1, max: 1, firstTs: ts, lastTs: ts, lastValue: 1 }] as const,
  );
  return { updateOne: guardedUpdate(`shard-${index}`, deltas, [{ slot: 1, lane: 'bench', seq }], GUARD_RETENTION, now) };
}

async function measure(
  client: MongoClient,
  keyCount: number,
  layout: Layout,
  rounds: number,
): Promise<{ group: number; statement: number; statements: number }> {
  const db = client.db(`bench_layout_${keyCount}_${layout.shards}_${layout.oneCollection ? 'one' : 'own'}_${Date.now()}`);
  const byShard = new Map<number, string[]>();
  for (let i = 0; i < keyCount; i += 1) {
    const key = `bench/${i}`;
    const index = shardOf(key, layout.shards);
    byShard.set(index, [...(byShard.get(index) ?? []), key]);
  }
  const collectionOf = (index: number) => db.collection(layout.oneCollection ? 'statshards' : `statshards_${index}`);
  for (const index of byShard.keys()) await collectionOf(index).insertOne({ _id: `shard-${index}` as never });
  const times: number[] = [];
  try {
    for (let round = 1; round <= rounds + 1; round += 1) {
      const now = new Date();
      const writes = [...byShard].map(([index, keys]) => ({ index, operation: statement(index, keys, round, now) }));
      const started = performance.now();
      if (layout.oneCollection) {
        for (let start = 0; start < writes.length; start += WRITE_BATCH) {
          await collectionOf(0).bulkWrite(
            writes.slice(start, start + WRITE_BATCH).map((write) => write.operation),
            { ordered: false },
          );
        }
      } else {
        for (const write of writes) await collectionOf(write.index).bulkWrite([write.operation]);
      }
      // The first round also fills the documents: it is not counted.
      if (round > 1) times.push(performance.now() - started);
    }
  } finally {
    await db.dropDatabase();
  }
  const group = median(times);
  return { group, statement: group / byShard.size, statements: byShard.size };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      keys: { type: 'string', default: '100,10000' },
      layouts: { type: 'string', default: '8:one,32,128' },
      rounds: { type: 'string', default: '3' },
    },
  });
  const keyCounts = values.keys.split(',').map(Number);
  const layouts = parseLayouts(values.layouts);
  const client = await MongoClient.connect(process.env.MONGODB_URI ?? DEFAULT_MONGODB_URI);
  try {
    process.stdout.write(
      '| keys | layout | statements per group | ms per group | ms per statement |\n| ---: | --- | ---: | ---: | ---: |\n',
    );
    for (const keyCount of keyCounts) {
      for (const layout of layouts) {
        const result = await measure(client, keyCount, layout, Number(values.rounds));
        const name = layout.oneCollection ? `${layout.shards} shards in one collection` : `${layout.shards} shards, a collection each`;
        process.stdout.write(
          `| ${keyCount.toLocaleString('en-US')} | ${name} | ${result.statements} | ${Math.round(result.group).toLocaleString('en-US')} | ${result.statement.toFixed(1)} |\n`,
        );
      }
    }
  } finally {
    await client.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
