import type { Db } from 'mongodb';
import type { KeyDelta } from '../../src/domain/stats';
import type { JobGuard } from '../../src/exactly-once/guard';
import type { AggregateStore } from '../../src/storage/contract';
import { shardOf } from '../../src/storage/ferretdb/shard-layout';
import type { Repositories } from '../../src/storage';

/** One job's statistics written alone: a group of one, as the worker writes a job that runs by itself. */
export function applyJob(store: AggregateStore, deltas: readonly KeyDelta[], guard: JobGuard, now = new Date()): Promise<void> {
  return store.applyGroup([{ deltas, guard }], now);
}

/** One point's delta of `key`. */
export function delta(key: string, value: number, ts = 1_700_000_000_000): KeyDelta {
  return { key, count: 1, sum: value, min: value, max: value, firstTs: ts, lastTs: ts, lastValue: value };
}

/**
 * Which statistics document holds a key: its own on the MongoDB profile, its shard on the FerretDB profile. A document
 * is written by one atomic update per group, so a job is applied to it entirely or not at all.
 */
export async function statisticsDocumentOf(repos: Repositories, db: Db): Promise<(key: string) => string> {
  if (repos.profile.aggregates === 'per-key') return (key) => key;
  const layout = await db.collection<{ _id: string; shards: number }>('statshards').findOne({ _id: 'layout' });
  if (!layout) throw new Error('the database has no shard layout');
  return (key) => `shard-${shardOf(key, layout.shards)}`;
}
