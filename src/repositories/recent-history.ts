import type Redis from 'ioredis';
import type { HistoryPage, HistoryQuery, HistoryRecord, HistoryStore, HistoryJob } from './history-repository';

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

// Bytewise string order (Redis orders members so; Lua's `<` follows the locale).
const BEFORE = `
local function before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
-- Calls fn with the list in slices of 1000 (Lua's unpack has a limit of a few thousand values); sums its results.
local function in_slices(list, fn)
  local total = 0
  for i = 1, #list, 1000 do total = total + fn(unpack(list, i, math.min(i + 999, #list))) end
  return total
end
`;

/**
 * KEYS[1] z, KEYS[2] d, KEYS[3] m. ARGV[1] cap, ARGV[2] the records, each \`id SEP timestamp SEP record END\`
 * (one argument per key: per-record arguments cost more to encode than the rest of the write).
 * Returns how many records were new.
 */
const ADD = `${BEFORE}
local meta = redis.call('HMGET', KEYS[3], 'ft', 'fid', 'bad')
if meta[3] then return 0 end
local ft, fid = tonumber(meta[1]), meta[2]
local members, records = {}, {}
for id, ts, record in string.gmatch(ARGV[2], '([^\\1]*)\\1([^\\1]*)\\1([^\\2]*)\\2') do
  local t = tonumber(ts)
  if ft and (t < ft or (t == ft and not before(fid, id))) then
    -- At or below the floor: it may have been here and trimmed, so 'seen' can no longer be trusted.
    redis.call('HSET', KEYS[3], 'bad', 1)
    return 0
  end
  members[#members + 1] = ts; members[#members + 1] = id
  records[#records + 1] = id; records[#records + 1] = record
end
local added = in_slices(members, function(...) return redis.call('ZADD', KEYS[1], 'NX', ...) end)
if added == #records / 2 then
  in_slices(records, function(...) return redis.call('HSET', KEYS[2], ...) end)
elseif added > 0 then
  -- A job run again: the records already here keep what they were first written with.
  for j = 1, #records, 2 do redis.call('HSETNX', KEYS[2], records[j], records[j + 1]) end
end
redis.call('HINCRBY', KEYS[3], 'seen', added)
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
if over > 0 then
  local gone = redis.call('ZRANGE', KEYS[1], 0, over - 1, 'WITHSCORES')
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
  local ids = {}
  for j = 1, #gone, 2 do ids[#ids + 1] = gone[j] end
  in_slices(ids, function(...) return redis.call('HDEL', KEYS[2], ...) end)
  redis.call('HSET', KEYS[3], 'ft', gone[#gone], 'fid', gone[#gone - 1])
end
return added
`;

/**
 * KEYS[1] z, KEYS[2] d, KEYS[3] m. ARGV[1] newest timestamp (inclusive), ARGV[2] oldest (inclusive or -inf),
 * ARGV[3] an id: at ARGV[1] only ids before it count ('' for all), ARGV[4] how many.
 * Returns seen, floor timestamp, floor id, bad ('' when unset), then (id, timestamp, record) of the newest first.
 */
const READ = `${BEFORE}
local meta = redis.call('HMGET', KEYS[3], 'seen', 'ft', 'fid', 'bad')
local out = { meta[1] or '0', meta[2] or '', meta[3] or '', meta[4] or '' }
if meta[4] then return out end
local want = tonumber(ARGV[4])
local ids, scores = {}, {}
local max = ARGV[1]
if ARGV[3] ~= '' then
  local ties = redis.call('ZRANGEBYSCORE', KEYS[1], max, max)
  for i = #ties, 1, -1 do
    if #ids >= want then break end
    if before(ties[i], ARGV[3]) then ids[#ids + 1] = ties[i]; scores[#ids] = max end
  end
  max = '(' .. max
end
if #ids < want then
  local rest = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, ARGV[2], 'WITHSCORES', 'LIMIT', 0, want - #ids)
  for j = 1, #rest, 2 do ids[#ids + 1] = rest[j]; scores[#ids] = rest[j + 1] end
end
if #ids == 0 then return out end
local records = redis.call('HMGET', KEYS[2], unpack(ids))
for i = 1, #ids do
  out[#out + 1] = ids[i]; out[#out + 1] = scores[i]; out[#out + 1] = records[i]
end
return out
`;

// Separators of the records sent to ADD: JSON escapes both inside strings, and ids and numbers hold neither.
const SEP = '\u0001';
const END = '\u0002';

/** [value, type, meta, batchId, receivedAt ms, processedAt ms]: the record without its key, id and timestamp. */
type StoredRecord = [number, string | null, Record<string, unknown> | null, string, number, number];

type RecentCommands = {
  recentHistoryAdd(z: string, d: string, m: string, cap: number, records: string): Promise<number>;
  recentHistoryRead(z: string, d: string, m: string, max: string, min: string, beforeId: string, want: number): Promise<string[]>;
};

/** What the tier holds for one query, or why it cannot answer. */
export type RecentAnswer = { page: HistoryPage; seen: number } | null;

export class RecentHistory {
  private readonly redis: Redis & RecentCommands;

  /** `cap`: records kept per key (HISTORY_RECENT_PER_KEY). */
  constructor(
    redis: Redis,
    private readonly prefix: string,
    private readonly cap: number,
  ) {
    if (!('recentHistoryAdd' in redis)) {
      redis.defineCommand('recentHistoryAdd', { numberOfKeys: 3, lua: ADD });
      redis.defineCommand('recentHistoryRead', { numberOfKeys: 3, lua: READ });
    }
    this.redis = redis as Redis & RecentCommands;
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
    const pipeline = this.redis.pipeline() as unknown as {
      recentHistoryAdd(...args: Parameters<RecentCommands['recentHistoryAdd']>): void;
      exec(): Promise<[Error | null, unknown][] | null>;
    };
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
    const reply = await this.redis.recentHistoryRead(...this.keysOf(query.key), bound(newest), bound(from), beforeId, query.limit + 1);
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
