import Redis from 'ioredis';

// SCAN (and MEMORY USAGE) in pages of this many keys.
const SCAN_COUNT = 1000;

/** Bull's keys (`bull:<queue>:*`) and the service's own (`<queue>:*`: batch status, claims, idempotency, locks). */
const patternsOf = (queueName: string): string[] => [`bull:${queueName}:*`, `${queueName}:*`];

async function keysOf(redis: Redis, queueName: string): Promise<string[]> {
  const keys: string[] = [];
  for (const pattern of patternsOf(queueName)) {
    let cursor = '0';
    do {
      const [next, page] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
      keys.push(...page);
      cursor = next;
    } while (cursor !== '0');
  }
  return keys;
}

export interface RedisUsage {
  /** `used_memory` of the whole server (INFO memory): other users of the same Redis count too. */
  usedMemoryBytes: number;
  /** What this run's keys hold (MEMORY USAGE of each). */
  runKeysBytes: number;
  runKeys: number;
  /** The run's keys by what they are: Bull's job hashes and lists, the service's batch statuses, claims, idempotency keys... */
  byKind: Record<string, { keys: number; bytes: number }>;
}

// Bull's own keys under bull:<queue>:, besides one hash per job (and its lock).
const BULL_KEYS = new Set([
  'wait',
  'active',
  'completed',
  'failed',
  'delayed',
  'paused',
  'id',
  'meta',
  'priority',
  'stalled',
  'stalled-check',
  'repeat',
  'limiter',
]);

function kindOf(key: string, queueName: string): string {
  const bullPrefix = `bull:${queueName}:`;
  if (key.startsWith(bullPrefix)) {
    const rest = key.slice(bullPrefix.length);
    if (BULL_KEYS.has(rest)) return `bull ${rest}`;
    return rest.endsWith(':lock') ? 'bull job locks' : 'bull jobs';
  }
  return key.slice(queueName.length + 1).split(':')[0] ?? key;
}

async function usedMemory(redis: Redis): Promise<number> {
  return Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1] ?? Number.NaN);
}

export async function readRedisUsage(redisUrl: string, queueName: string): Promise<RedisUsage> {
  const redis = new Redis(redisUrl);
  try {
    const usedMemoryBytes = await usedMemory(redis);
    const byKind: RedisUsage['byKind'] = {};
    let runKeysBytes = 0;
    const keys = await keysOf(redis, queueName);
    // Pipelined: a run over 100,000 keys leaves more than half a million Redis keys (history tier, rollups).
    for (let start = 0; start < keys.length; start += SCAN_COUNT) {
      const page = keys.slice(start, start + SCAN_COUNT);
      const pipeline = redis.pipeline();
      // SAMPLES 0: every field counted. The default samples 5 fields of a hash, and a job's points are in one of 9.
      for (const key of page) pipeline.memory('USAGE', key, 'SAMPLES', 0);
      const answers = (await pipeline.exec()) ?? [];
      page.forEach((key, index) => {
        const bytes = Number(answers[index]?.[1] ?? 0);
        const kind = kindOf(key, queueName);
        const entry = byKind[kind] ?? { keys: 0, bytes: 0 };
        byKind[kind] = { keys: entry.keys + 1, bytes: entry.bytes + bytes };
        runKeysBytes += bytes;
      });
    }
    return { usedMemoryBytes, runKeysBytes, runKeys: keys.length, byKind };
  } finally {
    redis.disconnect();
  }
}

// INFO every half second: cheap, and a backlog lives for seconds at least.
const SAMPLE_MS = 500;

/** `used_memory` before a run and its highest value while the run went on (the backlog of jobs lives in Redis). */
export class RedisMemorySampler {
  private readonly redis: Redis;
  private timer: NodeJS.Timeout | undefined;
  private before = Number.NaN;
  private peak = 0;

  constructor(redisUrl: string) {
    this.redis = new Redis(redisUrl);
  }

  async start(): Promise<void> {
    this.before = await usedMemory(this.redis);
    this.peak = this.before;
    this.timer = setInterval(() => {
      usedMemory(this.redis).then(
        (bytes) => {
          this.peak = Math.max(this.peak, bytes);
        },
        () => undefined,
      );
    }, SAMPLE_MS);
  }

  stop(): { beforeBytes: number; peakBytes: number } {
    clearInterval(this.timer);
    this.redis.disconnect();
    return { beforeBytes: this.before, peakBytes: this.peak };
  }
}

/** Deletes everything a run left in Redis, so the next run's memory figures start clean. */
export async function deleteRunKeys(redisUrl: string, queueName: string): Promise<void> {
  const redis = new Redis(redisUrl);
  try {
    const keys = await keysOf(redis, queueName);
    for (let start = 0; start < keys.length; start += SCAN_COUNT) await redis.unlink(...keys.slice(start, start + SCAN_COUNT));
  } finally {
    redis.disconnect();
  }
}

/** The server's version, for the report. */
export async function redisVersion(redisUrl: string): Promise<string> {
  const redis = new Redis(redisUrl);
  try {
    return /^redis_version:(\S+)/m.exec(await redis.info('server'))?.[1] ?? 'unknown';
  } finally {
    redis.disconnect();
  }
}
