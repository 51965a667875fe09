import type Redis from 'ioredis';
import type { HistoryPage, HistoryQuery, HistoryRecord, HistoryStore, HistoryJob } from '../contract';
import { queued, withScripts, type ScriptCommands } from '../../queue/lua-scripts';

/*
 * The recent-history tier: the newest records of each key, in Redis, for the FerretDB profile (see docs/storage.md).
 * FerretDB v1 reads and decodes every history record for any filter but `{_id}`, so a key's newest page costs
 * O(all history) there; from this tier it costs O(page). MongoDB reads its (key, timestamp, _id) index instead.
 *
 * Per key, three Redis keys:
 *   z  sorted set: record id → timestamp, ordered like the API (timestamp, then id, bytewise)
 *   d  hash: record id → [value, type, meta, batchId, receivedAt, processedAt] as JSON
 *   m  hash: seen  records ever added (each id once), trimmed ones included
 *            ft/fid  the floor: the highest (timestamp, id) trimmed to keep the set at its cap
 *            bad  set when the tier may miss a record (a late one at or below the floor, or uncounted points)
 *
 * It answers a query only when it holds every record the query could return: the key's count of points in its
 * statistics equals `seen` (the tier is written after the statistics, so equal counts mean it has seen every counted
 * record: nothing lost with Redis, nothing in flight), and the answer does not reach below the floor.
 */

// Separators of the records sent to recent-history-add-3.lua: JSON escapes both inside strings, and ids and numbers hold neither.
const SEP = '\u0001';
const END = '\u0002';

/** [value, type, meta, batchId, receivedAt ms, processedAt ms]: the record without its key, id and timestamp. */
type StoredRecord = [number, string | null, Record<string, unknown> | null, string, number, number];

/** What the tier holds for one query, or why it cannot answer. */
export type RecentAnswer = { page: HistoryPage; seen: number } | null;

export class RecentHistory {
  private readonly redis: Redis & ScriptCommands;

  /** `cap`: records kept per key (HISTORY_RECENT_PER_KEY). */
  constructor(
    redis: Redis,
    private readonly prefix: string,
    private readonly cap: number,
  ) {
    this.redis = withScripts(redis);
  }

  /** Adds the jobs' records (already in the store, their points already counted); records already here stay. */
  async add(jobs: readonly HistoryJob[], processedAt: Date): Promise<void> {
    const byKey = new Map<string, string[]>();
    const processed = processedAt.getTime();
    for (const { batchId, points, receivedAt } of jobs) {
      const tail = `,"${batchId}",${receivedAt.getTime()},${processed}]`;
      for (const point of points) {
        // A StoredRecord as JSON, built by hand: a number's text is its JSON, a batch id needs no escaping.
        const type = point.type === undefined ? 'null' : JSON.stringify(point.type);
        const meta = point.meta === undefined ? 'null' : JSON.stringify(point.meta);
        let records = byKey.get(point.key);
        if (!records) byKey.set(point.key, (records = []));
        records.push(`${batchId}:${point.i}${SEP}${point.ts}${SEP}[${point.value},${type},${meta}${tail}${END}`);
      }
    }
    const pipeline = queued(this.redis.pipeline());
    // One script call per key (recent-history-add-3.lua): each record id once, then the tier trimmed to its cap.
    for (const [key, records] of byKey) pipeline.recentHistoryAdd(...this.keysOf(key), this.cap, records.join(''));
    const replies = (await pipeline.exec()) ?? [];
    const failed = replies.find(([error]) => error !== null);
    if (failed?.[0]) throw failed[0];
  }

  /** Marks keys whose stored records may not all be counted: the tier stops answering for them. */
  async invalidate(keys: Iterable<string>): Promise<void> {
    const pipeline = this.redis.pipeline();
    for (const key of new Set(keys)) pipeline.hset(this.keysOf(key)[2], 'bad', 1);
    await pipeline.exec();
  }

  /** One page of `query.key`'s records newest first, if the tier holds all it could contain; `cutoff` hides older ones. */
  async page(query: HistoryQuery & { key: string }, cutoff: number | undefined): Promise<RecentAnswer> {
    const from = Math.max(query.from ?? -Infinity, cutoff ?? -Infinity);
    let newest = query.to ?? Infinity;
    let beforeId = '';
    if (query.after && query.after.t <= newest) {
      newest = query.after.t;
      beforeId = query.after.id;
    }
    // An empty window: no ties at `newest` either (they would be older than `from`).
    if (newest < from) beforeId = '';
    const reply = <string[]>(
      await this.redis.recentHistoryRead(...this.keysOf(query.key), bound(newest), bound(from), beforeId, query.limit + 1)
    );
    const [seen, floorT, , bad] = reply;
    if (bad !== '') return null;
    const records: HistoryRecord[] = [];
    const positions: { t: number; id: string }[] = [];
    for (let index = 4; index < reply.length; index += 3) {
      const id = reply[index] as string;
      const t = Number(reply[index + 1]);
      const [value, type, meta, batchId, receivedAt, processedAt] = JSON.parse(reply[index + 2] as string) as StoredRecord;
      positions.push({ t, id });
      records.push({
        key: query.key,
        value,
        timestamp: new Date(t).toISOString(),
        type,
        meta,
        batchId,
        receivedAt: new Date(receivedAt).toISOString(),
        processedAt: new Date(processedAt).toISOString(),
      });
    }
    if (records.length > query.limit) {
      const last = positions[query.limit - 1];
      return { seen: Number(seen), page: { items: records.slice(0, query.limit), next: last ?? null } };
    }
    // Fewer than a page: exact only if nothing in the window was trimmed.
    if (floorT !== '' && Number(floorT) >= from) return null;
    return { seen: Number(seen), page: { items: records, next: null } };
  }

  private keysOf(key: string): [string, string, string] {
    // One hash tag per key keeps its three keys in one slot (Redis Cluster).
    const base = `${this.prefix}:recent:{${key}}`;
    return [`${base}:z`, `${base}:d`, `${base}:m`];
  }
}

function bound(ms: number): string {
  return ms === Infinity ? '+inf' : ms === -Infinity ? '-inf' : String(ms);
}

/**
 * History with the recent tier in front (the FerretDB profile): writes go to the store, then to the tier; a key's
 * page comes from the tier when it can answer exactly, from the store otherwise.
 */
export class TieredHistory implements HistoryStore {
  constructor(
    private readonly store: HistoryStore,
    private readonly recent: RecentHistory,
    /** The key's count of points in its statistics, null when it has none. */
    private readonly countOf: (key: string) => Promise<number | null>,
    private readonly retentionMs: number | null,
    private readonly clock: () => number = Date.now,
  ) {}

  async insertJobs(jobs: readonly HistoryJob[], processedAt: Date, options: { counted?: boolean } = {}): Promise<number> {
    if (options.counted === false) {
      // Before the store: a failure in between must not leave the tier answering without these records.
      await this.recent.invalidate(jobs.flatMap((job) => job.points.map((point) => point.key)));
      return this.store.insertJobs(jobs, processedAt, options);
    }
    // After the store: the tier never lists a record the store lacks.
    const inserted = await this.store.insertJobs(jobs, processedAt);
    await this.recent.add(jobs, processedAt);
    return inserted;
  }

  async page(query: HistoryQuery): Promise<HistoryPage> {
    if (query.key !== undefined && query.batchId === undefined) {
      const cutoff = this.retentionMs === null ? undefined : this.clock() - this.retentionMs;
      // Redis unavailable: the store answers, as it would without the tier.
      const answer = await this.recent.page({ ...query, key: query.key }, cutoff).catch(() => null);
      if (answer && answer.seen === ((await this.countOf(query.key)) ?? 0)) return answer.page;
    }
    return this.store.page(query);
  }

  deleteOlderThan(cutoff: Date): Promise<number> {
    return this.store.deleteOlderThan(cutoff);
  }

  setExpiry(seconds: number | null): Promise<void> {
    return this.store.setExpiry(seconds);
  }

  countByBatch(batchId: string): Promise<number> {
    return this.store.countByBatch(batchId);
  }
}
