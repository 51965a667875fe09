import type { Job } from 'bull';
import type { Logger } from 'pino';
import { jobIdOf, type JobPayload } from '../domain/job-payload';
import type { Point } from '../domain/point-schema';
import { promoteIn } from '../queue/bull-internals';
import type { IngestQueue } from '../queue/ingest-queue';
import { withScripts } from '../queue/lua-scripts';
import { execOrThrow } from '../queue/redis';
import type { BatchStore } from './batch-store';
import type { IdempotencyStore, KeyHold, StoredResponse } from './idempotency-store';
import { STREAM_HOLD_MS } from './window';

/** The Idempotency-Key a streamed request holds, and the answer to store under it when its batch commits. */
export interface KeyedCommit {
  store: IdempotencyStore;
  hold: KeyHold;
  fingerprint: string;
  response: StoredResponse;
}

/**
 * A batch whose points arrive as a stream (NDJSON): its chunks are stored as they fill, held as delayed jobs, and
 * run only once `commit` makes the whole batch visible. Owns the commit, and with it the Idempotency-Key's answer.
 */
export class StreamedBatch {
  private pending: Point[] = [];
  private readonly jobs: Job<JobPayload>[] = [];
  private readonly keys = new Set<string>();
  private accepted = 0;

  private constructor(
    readonly batchId: string,
    private readonly receivedAt: number,
    private readonly queue: IngestQueue,
    private readonly batches: BatchStore,
    private readonly chunkSize: number,
    private readonly logger: Logger,
  ) {}

  /** Opens a batch in the 'receiving' state: nothing of it runs or is visible until `commit`. */
  static async open(
    batchId: string,
    receivedAt: number,
    parts: { queue: IngestQueue; batches: BatchStore; chunkSize: number; logger: Logger },
  ): Promise<StreamedBatch> {
    await parts.batches.open(batchId, receivedAt);
    return new StreamedBatch(batchId, receivedAt, parts.queue, parts.batches, parts.chunkSize, parts.logger);
  }

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
   * Makes the batch visible and its jobs runnable in one Redis transaction, so a Redis crash leaves both done or
   * neither: a batch marked queued with chunks still held (or the reverse) would be counted although the client got
   * a 503 and sends it again. With `keyed`, the key's stored answer replaces the request's in-flight marker in the
   * same transaction, and only if the key is still this request's: if Redis dies after the transaction ran but
   * before it answered, the resend gets the stored 202 instead of making a second batch. Returns false when the key
   * was no longer this request's (nothing of the batch is counted: its jobs run and find it uncommitted).
   */
  async commit(keyed?: KeyedCommit): Promise<boolean> {
    await this.flush();
    const fields = { points: this.accepted, chunks: this.jobs.length, keys: this.keys.size, receivedAt: this.receivedAt };
    const swap = keyed && keyed.store.completion(keyed.hold, keyed.fingerprint, keyed.response);
    // Of the queue's client, which holds Bull's promote script; ours are defined on it too.
    const transaction = this.batches.commitIn(withScripts(this.queue.client).multi(), this.batchId, fields, swap);
    for (const job of this.jobs) promoteIn(transaction, this.queue, String(job.id));
    const [committed] = await execOrThrow(transaction);
    // Never undone once sent: its marker's renewals stop whether or not the swap applied.
    keyed?.store.completed(keyed.hold);
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
