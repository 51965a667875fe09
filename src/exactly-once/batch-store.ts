import type { ChainableCommander, Redis } from 'ioredis';
import { BATCH_TTL_SECONDS, RECEIVING_TTL_SECONDS } from './window';
import { queued, withScripts, type ScriptCommands } from '../queue/lua-scripts';

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

export interface BatchFields {
  points: number;
  chunks: number;
  keys: number;
  receivedAt: number;
}

/** Where the batch status, job claims and processed counters live: Redis, next to the queue. */
export class BatchStore {
  private readonly redis: Redis & ScriptCommands;

  constructor(
    redis: Redis,
    private readonly namespace: string,
  ) {
    this.redis = withScripts(redis);
  }

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
    // Only if it does not exist: a resend of a batch whose first attempt was stored keeps its progress.
    await this.redis.batchCreate(
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
   * uncommitted and the worker drops any of its jobs). The transaction must come from a client passed through
   * `withScripts` (lua-scripts.ts).
   */
  commitIn(transaction: ChainableCommander, batchId: string, fields: BatchFields, swap?: Swap): ChainableCommander {
    const keys = swap ? [this.batchKey(batchId), swap.key] : [this.batchKey(batchId)];
    const flat = ['points', fields.points, 'chunks', fields.chunks, 'keys', fields.keys, 'receivedAt', fields.receivedAt];
    const guard = [swap?.expected ?? '', swap?.value ?? '', swap?.ttlSeconds ?? 0];
    return queued(transaction).batchCommit(keys.length, ...keys, BATCH_TTL_SECONDS, ...guard, ...flat);
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
    const reply = (await this.redis.batchBeginJob(this.claimKey(jobId), this.batchKey(batchId), guard, claimTtlSeconds)) as [
      string,
      string,
    ];
    return { claim: reply[0] || guard, batchStatus: reply[1] };
  }

  /** Marks a job's chunk done (once); returns the batch's completion when this was its last chunk. */
  async finishJob(jobId: string, batchId: string, chunk: number, points: number, now: number): Promise<BatchDone | null> {
    const key = this.batchKey(batchId);
    const reply = (await this.redis.batchFinishJob(
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
    const reply = (await this.redis.batchFail(this.batchKey(batchId), now, message)) as string[];
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
