import type { Connection } from 'mongoose';

export type ServerKind = 'mongodb' | 'ferretdb';

/**
 * How the service stores its data on one kind of server. Production runs MongoDB; FerretDB 1.24 is the default
 * stack's stand-in, and every workaround it needs is named here and applied only in storage/ and repositories/.
 */
export interface StorageProfile {
  name: ServerKind;
  /**
   * Statistics layout. MongoDB: one document per key, its guard inside it (no ceiling on keys, no document shared
   * by all writers). FerretDB: keys in `AGGREGATE_SHARDS` shard documents, because an update whose filter is more
   * than `{_id}` reads every document of its collection there, so per-key documents cost O(keys) per key.
   */
  aggregates: 'per-key' | 'shards';
  /** Redis locks around aggregate writes: FerretDB 1.24 loses concurrent updates of one document. */
  locks: boolean;
  /** Secondary indexes: FerretDB v1 (SQLite) uses none but `_id`, and each one slows inserts. */
  indexes: boolean;
  /**
   * Most update statements per command, or null for the driver's own split. A property of the server, whatever
   * the layout: FerretDB 1.24 (SQLite) hangs for good at 100 statements in one command (AGGREGATE_WRITE_BATCH).
   */
  writeBatch: number | null;
}

export const PROFILES: Record<ServerKind, Omit<StorageProfile, 'writeBatch'>> = {
  mongodb: { name: 'mongodb', aggregates: 'per-key', locks: false, indexes: true },
  ferretdb: { name: 'ferretdb', aggregates: 'shards', locks: true, indexes: false },
};

/** The kind of server behind the connection: FerretDB's buildInfo says so. */
export async function detectServer(connection: Connection): Promise<ServerKind> {
  const info = await connection.db?.admin().command({ buildInfo: 1 });
  return typeof info?.ferretdbVersion === 'string' ? 'ferretdb' : 'mongodb';
}

/**
 * The profile to use: the server's own unless STORAGE_PROFILE names one. Forcing `mongodb` on FerretDB is for
 * tests of the production layout with a single writer (FerretDB would lose concurrent updates); forcing
 * `ferretdb` on MongoDB works but gives up what MongoDB offers.
 */
export function chooseProfile(configured: 'auto' | ServerKind, server: ServerKind, ferretdbWriteBatch: number): StorageProfile {
  return { ...PROFILES[configured === 'auto' ? server : configured], writeBatch: server === 'ferretdb' ? ferretdbWriteBatch : null };
}
