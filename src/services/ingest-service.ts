import { createHash, randomBytes } from 'node:crypto';
import type { Job } from 'bull';
import type { Logger } from 'pino';
import { AppError } from '../domain/errors';
import { jobIdOf, type JobPayload } from '../domain/job-payload';
import type { Point } from '../domain/point-schema';
import { chunk } from '../domain/stats';
import type { BatchStore, Swap } from '../queue/batch-store';
import { promoteIn } from '../queue/bull-internals';
import { withScripts } from '../queue/lua-scripts';
import type { IngestQueue } from '../queue/ingest-queue';
import { execOrThrow, isRedisReady } from '../queue/redis';

export interface IngestSettings {
  chunkSize: number;
  maxQueueBacklog: number;
}

/** Streamed chunks wait this long at most; `commit` promotes them at once. */
const STREAM_HOLD_MS = 24 * 3600 * 1000;
// The backlog check reads Redis at most this often per API instance.
const BACKLOG_CACHE_MS = 250;
const RETRY_AFTER_SECONDS = '5';

/** Sortable by creation time, unguessable, short enough to prefix every history `_id`. */
export function newBatchId(now: number): string {
  return `${now.toString(36)}${randomBytes(8).toString('hex')}`;
}

/** A request sent with an Idempotency-Key: who sent it, the key, and its body's fingerprint. */
export interface KeyedRequest {
  scope: string;
  key: string;
  fingerprint: string;
}

const DAY_MS = 24 * 3600 * 1000;

/** The batch id of a keyed request in one UTC day (see IngestService.batchIdFor). */
export function keyedBatchId(request: KeyedRequest, day: number): string {
  const { scope, key, fingerprint } = request;
  return `k${createHash('sha256').update(`${scope}\n${key}\n${fingerprint}\n${day}`).digest('hex').slice(0, 31)}`;
}

export const unavailable = (message: string): AppError =>
  new AppError(503, 'SERVICE_UNAVAILABLE', message, undefined, { 'Retry-After': RETRY_AFTER_SECONDS });

/** Turns validated points into Bull jobs: one job per chunk, never one per point. */
export class IngestService {
  private backlog = { points: 0, readAt: 0 };

  constructor(
    private readonly queue: IngestQueue,
    private readonly batches: BatchStore,
    private readonly settings: IngestSettings,
    private readonly logger: Logger,
  ) {}

  /** Throws 503 at once while Redis is down, before any body is read. */
  assertQueueReachable(): void {
    if (!isRedisReady(this.queue.client)) throw unavailable('The queue is unavailable; retry after the delay in Retry-After.');
  }

  /** Throws 503 while the waiting backlog is over its limit (back-pressure). */
  async assertBacklogBelowLimit(): Promise<void> {
    const now = Date.now();
    if (now - this.backlog.readAt > BACKLOG_CACHE_MS) {
      const waitingJobs = await this.queue.getWaitingCount();
      this.backlog = { points: waitingJobs * this.settings.chunkSize, readAt: now };
    }
    if (this.backlog.points > this.settings.maxQueueBacklog) {
      throw unavailable('The ingest backlog is over its limit; retry after the delay in Retry-After.');
    }
  }

  /**
   * The batch id of a request sent with an Idempotency-Key: the same for every
   * attempt with the same key, body and caller within 24 h. If Redis dies after
   * storing a batch but before answering, the API says 503 and the client sends
   * it again; the resend then stores nothing new (same jobs, same batch) instead
   * of a second copy of the points. The id is per UTC day, and yesterday's is
   * reused while its batch still exists (kept 24 h), so the same key and body
   * sent again after the contract's 24 h is a new batch.
   */
  async batchIdFor(request: KeyedRequest, receivedAt: number): Promise<string> {
    const day = Math.floor(receivedAt / DAY_MS);
    const yesterdays = keyedBatchId(request, day - 1);
    return (await this.batches.exists(yesterdays)) ? yesterdays : keyedBatchId(request, day);
  }

  /**
   * Enqueues a whole batch atomically (Bull's addBulk is one MULTI). With the
   * `batchId` of an earlier attempt (see batchIdFor), whatever that attempt
   * stored stays as it is: its status is kept and Bull skips job ids it has.
   */
  async enqueue(points: readonly Point[], receivedAt: number, batchId = newBatchId(receivedAt)): Promise<string> {
    const chunks = chunk(points, this.settings.chunkSize);
    await this.batches.create(batchId, { points: points.length, chunks: chunks.length, keys: countKeys(points), receivedAt });
    try {
      await this.queue.addBulk(
        chunks.map((chunkPoints, index) => ({
          data: { batchId, chunk: index, receivedAt, points: chunkPoints },
          opts: { jobId: jobIdOf(batchId, index) },
        })),
      );
    } catch (error) {
      await this.batches.discard(batchId).catch(() => undefined);
      throw error;
    }
    return batchId;
  }

  /** Starts a streamed batch: chunks are stored as they fill and run only after `commit`. */
  async openStream(receivedAt: number): Promise<StreamedBatch> {
    const batchId = newBatchId(receivedAt);
    await this.batches.open(batchId, receivedAt);
    return new StreamedBatch(batchId, receivedAt, this.queue, this.batches, this.settings.chunkSize, this.logger);
  }
}

function countKeys(points: readonly Point[]): number {
  return new Set(points.map((point) => point.key)).size;
}

export class StreamedBatch {
  private pending: Point[] = [];
  private readonly jobs: Job<JobPayload>[] = [];
  private readonly keys = new Set<string>();
  private accepted = 0;

  constructor(
    readonly batchId: string,
    private readonly receivedAt: number,
    private readonly queue: IngestQueue,
    private readonly batches: BatchStore,
    private readonly chunkSize: number,
    private readonly logger: Logger,
  ) {}

  get acceptedCount(): number {
    return this.accepted;
  }

  async add(point: Point): Promise<void> {
    this.pending.push(point);
    this.keys.add(point.key);
    this.accepted += 1;
    if (this.pending.length >= this.chunkSize) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const index = this.jobs.length;
    const payload: JobPayload = { batchId: this.batchId, chunk: index, receivedAt: this.receivedAt, points: this.pending };
    this.pending = [];
    this.jobs.push(await this.queue.add(payload, { jobId: jobIdOf(this.batchId, index), delay: STREAM_HOLD_MS }));
  }

  /**
   * Makes the batch visible and its jobs runnable in one Redis transaction,
   * so a Redis crash leaves both done or neither: a batch marked queued with
   * chunks still held (or the reverse) would be counted although the client
   * got a 503 and sends it again. With `swap`
   * (the Idempotency-Key's stored response replacing the request's in-flight
   * marker), the batch is committed only if the key is still this request's;
   * returns false when it was not (nothing of the batch is counted: its jobs
   * run and find it uncommitted). The 202 is sent after this.
   */
  async commit(swap?: Swap): Promise<boolean> {
    await this.flush();
    const fields = { points: this.accepted, chunks: this.jobs.length, keys: this.keys.size, receivedAt: this.receivedAt };
    // Of the queue's client, which holds Bull's promote script; ours are defined on it too.
    const transaction = this.batches.commitIn(withScripts(this.queue.client).multi(), this.batchId, fields, swap);
    for (const job of this.jobs) promoteIn(transaction, this.queue, String(job.id));
    const [committed] = await execOrThrow(transaction);
    return committed === 1;
  }

  /** Drops whatever was stored; nothing of an aborted request is processed. */
  async abort(): Promise<void> {
    this.pending = [];
    const results = await Promise.allSettled([...this.jobs.map((job) => job.remove()), this.batches.abandon(this.batchId)]);
    const failures = results.filter((result) => result.status === 'rejected').length;
    // A chunk that could not be removed is still harmless: its batch is marked abandoned, so the worker drops it.
    if (failures > 0) this.logger.warn({ batchId: this.batchId, failures }, 'could not remove every chunk of an aborted stream');
  }
}
