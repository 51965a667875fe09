import { DEFAULT_AGGREGATE_SHARDS } from '../../config/config';
import type { Db } from 'mongodb';
import { insertNew } from '../shared/mongo-errors';

const LAYOUT_COLLECTION = 'statshards';
const LAYOUT_ID = 'layout';

/** How a database's shard statistics are laid out, fixed by the first process that writes it (the `layout` document). */
export interface ShardLayout {
  shards: number;
}

/** FNV-1a over the key's UTF-8 bytes: a stable spread of keys over shards, the same in every process. */
export function shardOf(key: string, shards: number): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(key, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % shards;
}

/** The distinct keys by the shard that holds them. */
export function keysByShard(keys: readonly string[], shards: number): Map<number, string[]> {
  const byShard = new Map<number, string[]>();
  for (const key of new Set(keys)) {
    const index = shardOf(key, shards);
    const shardKeys = byShard.get(index);
    if (shardKeys) shardKeys.push(key);
    else byShard.set(index, [key]);
  }
  return byShard;
}

/**
 * Reads the database's layout, or records the current one for a new database (idempotent: every process calls it at
 * start-up, and concurrent first starts agree on whichever was inserted first). Throws when AGGREGATE_SHARDS names
 * another number of shards than the data was written with.
 */
export async function resolveShardLayout(db: Db, requestedShards: number | undefined, now: Date): Promise<ShardLayout> {
  const collection = db.collection<{ _id: string; shards?: number; createdAt: Date }>(LAYOUT_COLLECTION);
  await insertNew(collection, [{ _id: LAYOUT_ID, shards: requestedShards ?? DEFAULT_AGGREGATE_SHARDS, createdAt: now }]);
  const stored = await collection.findOne({ _id: LAYOUT_ID }, { projection: { shards: 1 } });
  if (typeof stored?.shards !== 'number') throw new Error('the statistics layout document has no number of shards');
  if (requestedShards !== undefined && stored.shards !== requestedShards) {
    throw new Error(
      `AGGREGATE_SHARDS is ${requestedShards}, but this database holds statistics written with ${stored.shards} shards; set it back to that, or leave it unset.`,
    );
  }
  return { shards: stored.shards };
}
