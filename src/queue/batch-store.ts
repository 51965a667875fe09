import type { ChainableCommander, Redis } from 'ioredis';

export type BatchStatus = 'receiving' | 'queued' | 'processing' | 'completed' | 'failed';

export interface BatchInfo {
  batchId: string;
  status: Exclude<BatchStatus, 'receiving'>;
  points: number;
  processedPoints: number;
  keys: number;
  receivedAt: string;
  completedAt?: string;
  error?: string;
}

/** What `batch:done` says, once per batch. */
export interface BatchDone {
  batchId: string;
  status: 'completed' | 'failed';
  points: number;
  keys: number;
  durationMs: number;
}

/** A compare-and-set done in the same step as a commit: `key` must hold `expected`, and then holds `value`. */
export interface Swap {
  key: string;
  expected: string;
  value: string;
  ttlSeconds: number;
}

/** Batch status lives 24 h after its last change (the contract's Idempotency-Key horizon too). */
export const BATCH_TTL_SECONDS = 24 * 3600;
/** A streamed batch that never commits is dropped after this; its delayed jobs fire later and find it abandoned. */
const RECEIVING_TTL_SECONDS = 48 * 3600;

// Claims the job for a guard identity unless a claim exists (a re-run), and moves the batch to processing.
const BEGIN_JOB = `
local existing = redis.call('GET', KEYS[1])
if not existing then redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2])) end
local status = redis.call('HGET', KEYS[2], 'status')
if status == 'queued' then redis.call('HSET', KEYS[2], 'status', 'processing') end
return {existing or '', status or ''}
`;

// Counts a chunk once (the set of done chunks guards it), completes the batch after its last chunk, drops the claim.
const FINISH_JOB = `
redis.call('DEL', KEYS[3])
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {''} end
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return {status} end
redis.call('HINCRBY', KEYS[4], 'processedPoints', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'processedPoints', ARGV[2])
local done = redis.call('HINCRBY', KEYS[1], 'doneChunks', 1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
if done >= tonumber(redis.call('HGET', KEYS[1], 'chunks')) and status ~= 'failed' and status ~= 'completed' then
  redis.call('HSET', KEYS[1], 'status', 'completed', 'completedAt', ARGV[3])
  return {'completed', redis.call('HGET', KEYS[1], 'points'), redis.call('HGET', KEYS[1], 'keys'), redis.call('HGET', KEYS[1], 'receivedAt')}
end
return {status}
`;

// Commits a streamed batch: status queued with its totals. With a guard key (KEYS[2]), only while that key still
// holds the expected value (ARGV[2]), which is then replaced by ARGV[3] for ARGV[4] s; otherwise nothing changes.
// Run again (ioredis resends a transaction whose answer a dropped connection lost), it changes nothing and says 1:
// the guard key already holds ARGV[3], and the batch is past 'receiving' (a worker may have moved it on since).
const COMMIT_BATCH = `
if #KEYS == 2 then
  local current = redis.call('GET', KEYS[2])
  if current == ARGV[3] then return 1 end
  if current ~= ARGV[2] then return 0 end
  redis.call('SET', KEYS[2], ARGV[3], 'EX', tonumber(ARGV[4]))
end
local status = redis.call('HGET', KEYS[1], 'status')
if status and status ~= 'receiving' then return 1 end
redis.call('HSET', KEYS[1], 'status', 'queued', unpack(ARGV, 5))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
`;

// Creates a batch's hash only if it does not exist: a resend of a batch whose first attempt was stored keeps its progress.
const CREATE_BATCH = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
`;

// Fails a batch once; a batch already completed or failed stays as it is.
const FAIL_BATCH = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'completed' or status == 'failed' then return {''} end
redis.call('HSET', KEYS[1], 'status', 'failed', 'completedAt', ARGV[1], 'error', ARGV[2])
return {'failed', redis.call('HGET', KEYS[1], 'points'), redis.call('HGET', KEYS[1], 'keys'), redis.call('HGET', KEYS[1], 'receivedAt')}
`;

export interface BatchFields {
  points: number;
  chunks: number;
  keys: number;
  receivedAt: number;
}

/** Where the batch status, job claims and processed counters live: Redis, next to the queue. */
export class BatchStore {
  constructor(
    private readonly redis: Redis,
    private readonly namespace: string,
  ) {}

  private batchKey(batchId: string): string {
    return `${this.namespace}:batch:${batchId}`;
  }

  private claimKey(jobId: string): string {
    return `${this.namespace}:claim:${jobId}`;
  }

  private countersKey(): string {
    return `${this.namespace}:counters`;
  }

  async exists(batchId: string): Promise<boolean> {
    return (await this.redis.exists(this.batchKey(batchId))) === 1;
  }

  /**
   * A batch whose points are all known (JSON bodies): queued at once. Creates its status unless an earlier attempt
   * of the same request did (see keyedBatchId).
   */
  async create(batchId: string, fields: BatchFields): Promise<void> {
    await this.redis.eval(
      CREATE_BATCH,
      1,
      this.batchKey(batchId),
      BATCH_TTL_SECONDS,
      ...Object.entries({ status: 'queued', processedPoints: 0, doneChunks: 0, ...fields }).flat(),
    );
  }

  /** A streamed batch: its jobs wait (delayed) until `commit`, so an aborted stream enqueues nothing. */
  async open(batchId: string, receivedAt: number): Promise<void> {
    const key = this.batchKey(batchId);
    await this.redis
      .multi()
      .hset(key, { status: 'receiving', processedPoints: 0, doneChunks: 0, points: 0, chunks: 0, keys: 0, receivedAt })
      .expire(key, RECEIVING_TTL_SECONDS)
      .exec();
  }

  /**
   * Adds the commit of a streamed batch to a transaction of the caller's (which also releases its jobs). With
   * `swap`, the batch is committed only if `swap.key` still holds `swap.expected`, which becomes `swap.value` in
   * the same step; the command's result in the transaction is 1 when committed, 0 when not (the batch then stays
   * uncommitted and the worker drops any of its jobs).
   */
  commitIn(transaction: ChainableCommander, batchId: string, fields: BatchFields, swap?: Swap): ChainableCommander {
    const keys = swap ? [this.batchKey(batchId), swap.key] : [this.batchKey(batchId)];
    const flat = ['points', fields.points, 'chunks', fields.chunks, 'keys', fields.keys, 'receivedAt', fields.receivedAt];
    const guard = [swap?.expected ?? '', swap?.value ?? '', swap?.ttlSeconds ?? 0];
    return transaction.eval(COMMIT_BATCH, keys.length, ...keys, BATCH_TTL_SECONDS, ...guard, ...flat);
  }

  async discard(batchId: string): Promise<void> {
    await this.redis.del(this.batchKey(batchId), `${this.batchKey(batchId)}:done`);
  }

  /** Marks a streamed batch as never committed, so that any of its jobs left in the queue is dropped. */
  async abandon(batchId: string): Promise<void> {
    const key = this.batchKey(batchId);
    await this.redis.multi().hset(key, 'status', 'receiving').expire(key, RECEIVING_TTL_SECONDS).exec();
  }

  async get(batchId: string): Promise<BatchInfo | null> {
    const hash = await this.redis.hgetall(this.batchKey(batchId));
    if (!hash.status || hash.status === 'receiving') return null;
    const info: BatchInfo = {
      batchId,
      status: hash.status as BatchInfo['status'],
      points: Number(hash.points),
      processedPoints: Number(hash.processedPoints),
      keys: Number(hash.keys),
      receivedAt: new Date(Number(hash.receivedAt)).toISOString(),
    };
    if (hash.completedAt) info.completedAt = new Date(Number(hash.completedAt)).toISOString();
    if (hash.error) info.error = hash.error;
    return info;
  }

  /**
   * Claims a job for `guard` unless an earlier run claimed it; returns the
   * claim in force and the batch status before this call ('' if unknown).
   */
  async beginJob(jobId: string, batchId: string, guard: string, claimTtlSeconds: number): Promise<{ claim: string; batchStatus: string }> {
    const reply = (await this.redis.eval(BEGIN_JOB, 2, this.claimKey(jobId), this.batchKey(batchId), guard, claimTtlSeconds)) as [
      string,
      string,
    ];
    return { claim: reply[0] || guard, batchStatus: reply[1] };
  }

  /** Marks a job's chunk done (once); returns the batch's completion when this was its last chunk. */
  async finishJob(jobId: string, batchId: string, chunk: number, points: number, now: number): Promise<BatchDone | null> {
    const key = this.batchKey(batchId);
    const reply = (await this.redis.eval(
      FINISH_JOB,
      4,
      key,
      `${key}:done`,
      this.claimKey(jobId),
      this.countersKey(),
      chunk,
      points,
      now,
      BATCH_TTL_SECONDS,
    )) as string[];
    return toBatchDone(batchId, reply, now);
  }

  async failBatch(batchId: string, message: string, now: number): Promise<BatchDone | null> {
    const reply = (await this.redis.eval(FAIL_BATCH, 1, this.batchKey(batchId), now, message)) as string[];
    return toBatchDone(batchId, reply, now);
  }

  async processedPoints(): Promise<number> {
    return Number((await this.redis.hget(this.countersKey(), 'processedPoints')) ?? 0);
  }
}

function toBatchDone(batchId: string, reply: string[], now: number): BatchDone | null {
  const [status, points, keys, receivedAt] = reply;
  if ((status !== 'completed' && status !== 'failed') || points === undefined) return null;
  return { batchId, status, points: Number(points), keys: Number(keys), durationMs: now - Number(receivedAt) };
}
