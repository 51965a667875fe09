import { z } from 'zod';

// Digits only: z.coerce would read "   " or "" as 0 and "1e3" as 1000.
const integer = z
  .string()
  .regex(/^\d{1,15}$/, 'must be a whole number')
  .transform(Number);
const whole = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  integer.pipe(z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));
const port = whole(0, 65535);
const csv = z
  .string()
  .default('')
  .transform((s) =>
    s
      .split(',')
      .map((part) => part.trim())
      .filter((part) => part.length > 0),
  );

const DURATION_UNITS_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** `keep` (null) or a whole number of minutes, hours or days (`90d`), as milliseconds. */
const retention = z
  .string()
  .regex(/^(keep|[1-9]\d{0,5}[mhd])$/, 'must be "keep" or a whole number of minutes, hours or days, e.g. 90d')
  .transform((text) =>
    text === 'keep' ? null : Number(text.slice(0, -1)) * DURATION_UNITS_MS[text.slice(-1) as keyof typeof DURATION_UNITS_MS],
  );

/** Where Redis and MongoDB are looked for (and what `npm run stack` starts when nothing answers there). */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_MONGODB_URI = 'mongodb://127.0.0.1:27017/realtime';

/** Shards of a new database when AGGREGATE_SHARDS is not set (docs/storage.md has the measurements behind it). */
export const DEFAULT_AGGREGATE_SHARDS = 32;

const configSchema = z.object({
  PORT: port.default(3000),
  MONGODB_URI: z
    .string()
    .regex(/^mongodb(\+srv)?:\/\//, 'must start with mongodb:// or mongodb+srv://')
    .default(DEFAULT_MONGODB_URI),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
    .default(DEFAULT_REDIS_URL),
  QUEUE_NAME: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, 'use 1-64 letters, digits, "_" or "-"')
    .default('ingest'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Points per Bull job: one job costs a constant number of round trips, so bigger is cheaper. */
  JOB_CHUNK_SIZE: whole(1, 10_000).default(1000),
  MAX_POINTS_PER_REQUEST: whole(1).default(100_000),
  MAX_BODY_BYTES: whole(1).default(16 * 1024 * 1024),
  /** Waiting points over which ingest answers 503 (back-pressure). */
  MAX_QUEUE_BACKLOG: whole(1).default(2_000_000),
  /** Which storage layout to use: `auto` picks by the server's buildInfo (see storage/profile.ts). */
  STORAGE_PROFILE: z.enum(['auto', 'mongodb', 'ferretdb']).default('auto'),
  /** FerretDB profile only: shard documents the statistics are spread over; unset: the database's, or 32 for a new one. */
  AGGREGATE_SHARDS: whole(1, 4096).optional(),
  /** FerretDB profile only: keys whose decoded statistics a process keeps between writes and reads (~200 bytes each). */
  STATS_CACHE_KEYS: whole(0, 100_000_000).default(1_200_000),
  /** FerretDB profile only: how long a job waits for its shards' locks before it fails (and is retried). */
  KEY_LOCK_WAIT_MS: whole(1000, 3_600_000).default(60_000),
  /** Jobs a worker runs at once; their writes are combined (see write-combiner.ts), so more means fewer writes per point. */
  WORKER_CONCURRENCY: whole(1, 64).default(16),
  /** Most points the jobs running at once write together (see write-combiner.ts); a bigger group waits for the next write. */
  WORKER_GROUP_POINTS: whole(1000, 1_000_000).default(20_000),
  JOB_ATTEMPTS: whole(1, 100).default(10),
  /**
   * Backoff unit for a job's own failures: Bull waits (2^n - 1) × this before attempt n + 1 (1 s, 3 s, 7 s ...; the
   * 10th attempt ~17 min after the first). An outage of MongoDB or Redis is not such a failure (JOB_OUTAGE_WAIT_MS).
   */
  JOB_BACKOFF_MS: whole(1).default(1000),
  /**
   * How long one run of a job waits out an outage of MongoDB or Redis (looking every 0.25-2 s) and runs again once
   * both answer, without using an attempt; past it the run fails as usual (see services/outage-wait.ts).
   */
  JOB_OUTAGE_WAIT_MS: whole(0, 3_600_000).default(300_000),
  /** A worker that stops renewing its job lock (killed, frozen) loses the job after this long. */
  JOB_LOCK_MS: whole(1000, 3_600_000).default(30_000),
  /** How often workers look for jobs whose lock expired and hand them to a live worker. */
  JOB_STALLED_INTERVAL_MS: whole(1000, 3_600_000).default(30_000),
  /**
   * Completed jobs kept in Redis (for an hour at most) to look at, each with its points (~120 KB at 1000 points);
   * exactly-once does not depend on them (see processedrecords).
   */
  KEEP_COMPLETED_JOBS: whole(0, 1_000_000).default(100),
  MAX_KEYS_PER_SOCKET: whole(1, 10_000).default(100),
  /** Events (subscribe, unsubscribe) one Socket.io connection may send per second; twice as many in a burst. */
  SOCKET_EVENTS_PER_SECOND: whole(1, 10_000).default(20),
  /**
   * An Idempotency-Key's in-flight marker lives this long unless its API process renews it (every third of it): a
   * request whose process died frees its key within this, and the client's resend goes through instead of a 409.
   */
  IDEMPOTENCY_LEASE_MS: whole(1000, 600_000).default(15_000),
  /** A history page read that takes longer is stopped on the server and answered 503 QUERY_TIMEOUT. */
  HISTORY_QUERY_TIMEOUT_MS: whole(1, 600_000).default(10_000),
  /** How long history records are kept, by their timestamp: `keep` (for good) or e.g. `90d` (see storage/retention.ts). */
  HISTORY_RETENTION: retention.default(null),
  /**
   * FerretDB profile only: newest history records kept per key in Redis, from which a key's newest pages are read
   * (see docs/storage.md); 0 reads every page from the store. About 200 bytes of Redis memory a record.
   */
  HISTORY_RECENT_PER_KEY: whole(0, 100_000).default(1000),
  /** How long rollup buckets are kept, per step, by their start: `keep` or e.g. `48h` (see docs/api.md, series). */
  SERIES_RETENTION_1M: retention.default(48 * DURATION_UNITS_MS.h),
  SERIES_RETENTION_1H: retention.default(90 * DURATION_UNITS_MS.d),
  SERIES_RETENTION_1D: retention.default(null),
  CORS_ORIGINS: csv,
  /** Keys that may ingest (and read); empty keeps ingest open. */
  INGEST_API_KEYS: csv,
  /** Keys that may read stats, history, batches and subscribe; empty keeps reads open. */
  READ_API_KEYS: csv,
  /** Keys that open the queue dashboard (/admin/queues, where jobs can be retried and removed); empty keeps it closed. */
  ADMIN_API_KEYS: csv,
  /** Requests per minute per API key (per client IP when no key is configured); 0 turns the limit off. */
  RATE_LIMIT_PER_MINUTE: whole(0).default(6000),
  /** A request (body included) that takes longer than this is cut off with 408. */
  REQUEST_TIMEOUT_MS: whole(1000).default(120_000),
  /** Express's `trust proxy`: false, true, a hop count, or a comma-separated list of proxy addresses/subnets. */
  TRUST_PROXY: z
    .string()
    .default('false')
    .transform((value): boolean | number | string[] => {
      if (value === 'false') return false;
      if (value === 'true') return true;
      if (/^\d{1,3}$/.test(value)) return Number(value);
      return value
        .split(',')
        .map((part) => part.trim())
        .filter((part) => part.length > 0);
    }),
  SHUTDOWN_TIMEOUT_MS: whole(1).default(10_000),
  /** The worker's Prometheus endpoint (GET /metrics on this port, all interfaces); 0 turns it off. */
  METRICS_PORT: whole(0, 65_535).default(9464),
});

export type Config = z.infer<typeof configSchema>;

/** Every environment variable the processes read. */
export const CONFIG_VARIABLES = Object.keys(configSchema.shape);

/**
 * Reads and validates the environment once. Throws an Error whose message
 * names every bad variable, so a process fails fast at start-up.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty value (`PORT=` copied from .env.example) means "use the default".
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new Error(`Invalid configuration: ${problems.join('; ')}`);
  }
  return parsed.data;
}

/** The database name from MONGODB_URI (the path part), e.g. `realtime`. */
export function databaseName(mongoUri: string): string {
  const match = /^mongodb(?:\+srv)?:\/\/[^/]+\/([^?]+)/.exec(mongoUri);
  return match?.[1] ?? 'realtime';
}
