import type Redis from 'ioredis';
import { STEPS, toBucketView, type BucketView, type SeriesRetention, type Step } from '../domain/series';
import { execOrThrow } from '../queue/redis';
import type { GuardedBuckets, SeriesStore } from './series-store';

/*
 * The FerretDB profile's rollups, in Redis (see docs/storage.md). On FerretDB v1 an update whose filter is more than
 * `{_id}` reads every document of its collection, so a guarded bucket document per key and minute would cost
 * O(all buckets) per bucket written; and reads of a window would scan them all too. Here a job's buckets are added
 * by one script for the whole group, atomically with its guard, so the guarantee is the statistics' own.
 *
 *   <prefix>:series:<step>:{<key>}  sorted set: score = bucket start (ms), member "start count sum min max"
 *   <prefix>:series:guard:<slot>    hash: lane → the highest job sequence of that lane applied (lane-pool.ts)
 *
 * Buckets past their step's retention are trimmed when a bucket is added to their set, and a set no longer added to
 * expires as a whole a retention (and a day, for points stamped ahead) after its newest bucket was added.
 */

/**
 * ARGV[1] the guard's time to live (s), ARGV[2] now (ms), ARGV[3..5] retention of 1m, 1h, 1d (ms, -1: kept),
 * ARGV[6] the key prefix, ARGV[7..] one per job: `slot SEP lane SEP seq END` then `step SEP start SEP key SEP count
 * SEP sum SEP min SEP max END` per bucket. Returns how many jobs were applied (the others were before).
 * The jobs not applied yet are merged per bucket first, so each bucket of the group is read and written once; a set
 * is trimmed and its expiry pushed back only when a bucket is added to it, the only time it grows.
 */
const APPLY = `
local ttl, now, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[6]
local kept = { ['1m'] = tonumber(ARGV[3]), ['1h'] = tonumber(ARGV[4]), ['1d'] = tonumber(ARGV[5]) }
local width = { ['1m'] = 60000, ['1h'] = 3600000, ['1d'] = 86400000 }
local function num(x) return string.format('%.17g', x) end
local applied = 0
local merged, order = {}, {}
for j = 7, #ARGV do
  local job = ARGV[j]
  local head = string.find(job, '\\2', 1, true)
  local slot, lane, seq = string.match(string.sub(job, 1, head - 1), '^([^\\1]*)\\1([^\\1]*)\\1([^\\1]*)$')
  seq = tonumber(seq)
  local guard = prefix .. ':series:guard:' .. slot
  local done = tonumber(redis.call('HGET', guard, lane) or '0')
  if done < seq then
    applied = applied + 1
    redis.call('HSET', guard, lane, seq)
    redis.call('EXPIRE', guard, ttl)
    for step, start, key, count, sum, mn, mx in string.gmatch(string.sub(job, head + 1), '([^\\1]*)\\1([^\\1]*)\\1([^\\1]*)\\1([^\\1]*)\\1([^\\1]*)\\1([^\\1]*)\\1([^\\2]*)\\2') do
      local id = step .. '\\1' .. start .. '\\1' .. key
      local b = merged[id]
      count, sum, mn, mx = tonumber(count), tonumber(sum), tonumber(mn), tonumber(mx)
      if b then
        b[4], b[5], b[6], b[7] = b[4] + count, b[5] + sum, math.min(b[6], mn), math.max(b[7], mx)
      else
        merged[id] = { step, start, key, count, sum, mn, mx }
        order[#order + 1] = id
      end
    end
  end
end
for _, id in ipairs(order) do
  local step, start, key, count, sum, mn, mx = unpack(merged[id])
  local z = prefix .. ':series:' .. step .. ':{' .. key .. '}'
  local old = redis.call('ZRANGEBYSCORE', z, start, start)
  if old[1] then
    local c, s, a, b = string.match(old[1], '^%S+ (%S+) (%S+) (%S+) (%S+)$')
    count, sum = count + tonumber(c), sum + tonumber(s)
    mn, mx = math.min(mn, tonumber(a)), math.max(mx, tonumber(b))
    redis.call('ZREM', z, old[1])
  end
  redis.call('ZADD', z, start, start .. ' ' .. count .. ' ' .. num(sum) .. ' ' .. num(mn) .. ' ' .. num(mx))
  local keep = kept[step]
  if keep >= 0 and not old[1] then
    redis.call('ZREMRANGEBYSCORE', z, '-inf', '(' .. (now - keep - width[step]))
    redis.call('PEXPIRE', z, keep + width[step] + 86400000)
  end
end
return applied
`;

const SEP = '\u0001';
const END = '\u0002';

type SeriesCommands = { seriesApply(...args: (string | number)[]): Promise<number> };

// Guards outlive the store's (24 h after a lane's last job, see lane-pool.ts) by a slot.
const GUARD_TTL_SECONDS = 36 * 3600;

export class RedisSeries implements SeriesStore {
  private readonly redis: Redis & SeriesCommands;

  constructor(
    redis: Redis,
    private readonly prefix: string,
    readonly retention: SeriesRetention,
  ) {
    if (!('seriesApply' in redis)) redis.defineCommand('seriesApply', { numberOfKeys: 0, lua: APPLY });
    this.redis = redis as Redis & SeriesCommands;
  }

  async prepare(): Promise<void> {}

  async applyGroup(jobs: readonly GuardedBuckets[], now: Date): Promise<void> {
    const packed = jobs
      .filter((job) => job.buckets.length > 0)
      .map(({ guard, buckets }) => {
        const parts = [`${guard.slot}${SEP}${guard.lane}${SEP}${guard.seq}${END}`];
        for (const b of buckets)
          parts.push(`${b.step}${SEP}${b.start}${SEP}${b.key}${SEP}${b.count}${SEP}${b.sum}${SEP}${b.min}${SEP}${b.max}${END}`);
        return parts.join('');
      });
    if (packed.length === 0) return;
    const kept = STEPS.map((step) => this.retention[step] ?? -1);
    await this.redis.seriesApply(GUARD_TTL_SECONDS, now.getTime(), ...kept, this.prefix, ...packed);
  }

  async read(keys: readonly string[], step: Step, from: number, to: number): Promise<Map<string, BucketView[]>> {
    const unique = [...new Set(keys)];
    const pipeline = this.redis.pipeline();
    for (const key of unique) pipeline.zrangebyscore(this.setOf(step, key), from, to);
    const results = (await execOrThrow(pipeline)) as string[][];
    return new Map(unique.map((key, index) => [key, (results[index] ?? []).map(parseMember)]));
  }

  async bucketsAt(starts: ReadonlyMap<string, number>, step: Step): Promise<Map<string, BucketView>> {
    const entries = [...starts];
    if (entries.length === 0) return new Map();
    const pipeline = this.redis.pipeline();
    for (const [key, start] of entries) pipeline.zrangebyscore(this.setOf(step, key), start, start);
    const results = (await execOrThrow(pipeline)) as string[][];
    const buckets = new Map<string, BucketView>();
    entries.forEach(([key], index) => {
      const member = results[index]?.[0];
      if (member !== undefined) buckets.set(key, parseMember(member));
    });
    return buckets;
  }

  private setOf(step: Step, key: string): string {
    return `${this.prefix}:series:${step}:{${key}}`;
  }
}

function parseMember(member: string): BucketView {
  const [start, count, sum, min, max] = member.split(' ').map(Number);
  return toBucketView({ start: start ?? 0, count: count ?? 0, sum: sum ?? 0, min: min ?? 0, max: max ?? 0 });
}
