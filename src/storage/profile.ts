import type { Connection } from 'mongoose';
import type { AggregateStore, HistoryStore, SeriesStore } from './contract';

export type ServerKind = 'mongodb' | 'ferretdb';

const MONGODB_WRITE_BATCH = 1000;
// FerretDB 1.24 (SQLite) opens a cursor per update statement from a pool of 100 and hangs for good at 100 in one command.
const FERRETDB_WRITE_BATCH = 50;

/**
 * How the service stores its data on one kind of server. Production runs MongoDB; FerretDB 1.24 is the default
 * stack's stand-in: each workaround it needs is named here and lives in storage/ferretdb/ (its index.ts lists them).
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
   * Most guarded upserts per command (the MongoDB profile's statistics and rollups). A property of the server: FerretDB
   * 1.24 (SQLite) hangs for good at 100 statements in one command, which the MongoDB profile meets when forced on it
   * (tests); on MongoDB the repository chunks itself, because the driver stops at the first of its own batches that
   * has a write error.
   */
  writeBatch: number;
  /** How HISTORY_RETENTION is applied, by the server: MongoDB expires records itself, FerretDB v1 has no TTL indexes. */
  historyExpiry: 'ttl-index' | 'sweep';
  /**
   * Where a key's newest history pages are read: MongoDB's (key, timestamp, _id) index, or a bounded per-key tier in
   * Redis (ferretdb/recent-history.ts), because FerretDB v1 decodes every history record for any filter.
   */
  recentHistory: 'index' | 'redis-tier';
  /**
   * How a history bucket's points are stored: native arrays (MongoDB), or packed in one JSON string, because FerretDB
   * v1 converts and schema-encodes every array element: history inserts in about 60% of the time packed there.
   */
  historyColumns: 'arrays' | 'packed';
  /**
   * Where rollups live: a guarded document per key, step and bucket (MongoDB), or in Redis, because FerretDB v1
   * reads every document of a collection for a guarded update and for any window (ferretdb/redis-series.ts).
   */
  series: 'documents' | 'redis';
}

/** What each profile folder builds (mongodb/, ferretdb/); history, processed records and models are shared. */
export interface ProfileStores {
  aggregates: AggregateStore;
  series: SeriesStore;
  history: HistoryStore;
}

export const PROFILES: Record<ServerKind, Omit<StorageProfile, 'writeBatch' | 'historyExpiry'>> = {
  mongodb: {
    name: 'mongodb',
    aggregates: 'per-key',
    locks: false,
    indexes: true,
    recentHistory: 'index',
    historyColumns: 'arrays',
    series: 'documents',
  },
  ferretdb: {
    name: 'ferretdb',
    aggregates: 'shards',
    locks: true,
    indexes: false,
    recentHistory: 'redis-tier',
    historyColumns: 'packed',
    series: 'redis',
  },
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
export function chooseProfile(configured: 'auto' | ServerKind, server: ServerKind): StorageProfile {
  const ferretdb = server === 'ferretdb';
  return {
    ...PROFILES[configured === 'auto' ? server : configured],
    writeBatch: ferretdb ? FERRETDB_WRITE_BATCH : MONGODB_WRITE_BATCH,
    historyExpiry: ferretdb ? 'sweep' : 'ttl-index',
  };
}

/** Which statistics layouts a database already holds. */
export interface StoredLayouts {
  /** A `layout` document in `statshards`: written by the FerretDB profile. */
  shards: boolean;
  /** Documents in `stats`: written by the MongoDB profile. */
  perKey: boolean;
}

/**
 * A database keeps the layout its statistics were written with: a profile that would not see them must not start
 * writing beside them, so start-up stops with a message that says which profile wrote them.
 */
export function checkStoredLayout(profile: StorageProfile, stored: StoredLayouts, configured: 'auto' | ServerKind): void {
  if (profile.aggregates === 'per-key' && stored.shards) {
    throw new Error(
      `STORAGE_PROFILE is ${configured}, which keeps statistics one document per key, but this database holds them in shards (statshards, the FerretDB profile); set STORAGE_PROFILE=ferretdb.`,
    );
  }
  if (profile.aggregates === 'shards' && stored.perKey) {
    throw new Error(
      `STORAGE_PROFILE is ${configured}, which keeps statistics in shards, but this database holds them one document per key (stats, the MongoDB profile); set STORAGE_PROFILE=mongodb.`,
    );
  }
}
