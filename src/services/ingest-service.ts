import { createHash, randomBytes, type Hash } from 'node:crypto';
import type { Logger } from 'pino';
import { AppError } from '../domain/errors';
import { extractRawBatch, noValidPoint, partitionPoints, type NdjsonLine } from '../domain/ingest-body';
import { jobIdOf } from '../domain/job-payload';
import { validatePoint, type Point, type Rejection } from '../domain/point-schema';
import { chunk } from '../domain/stats';
import type { BatchStore } from '../exactly-once/batch-store';
import type { IdempotencyKey, IdempotencyStore, KeyHold } from '../exactly-once/idempotency-store';
import { keyedBatchIdFor } from '../exactly-once/keyed-batch';
import { StreamedBatch } from '../exactly-once/streamed-batch';
import type { IngestQueue } from '../queue/ingest-queue';
import { isRedisReady } from '../queue/redis';

export interface IngestSettings {
  chunkSize: number;
  maxQueueBacklog: number;
  /** MAX_POINTS_PER_REQUEST: valid and rejected points together. */
  maxPointsPerRequest: number;
}

/** The media types the ingest endpoint takes; each is part of its body's fingerprint. */
export type IngestKind = 'application/json' | 'application/x-ndjson';

/**
 * A request body as the edge reads it, decompressed and within its size limit; every byte read goes into `hash`
 * (the body's fingerprint for its Idempotency-Key).
 */
export type IngestBody =
  | { kind: 'application/json'; read(hash: Hash): Promise<unknown> }
  | { kind: 'application/x-ndjson'; lines(hash: Hash): AsyncIterable<NdjsonLine>; readAll(hash: Hash): Promise<void> };

export interface IngestResponse {
  batchId: string;
  accepted: number;
  rejected: Rejection[];
}

/** What to answer: a new batch (202), or the stored answer of an earlier request with the same Idempotency-Key. */
export type IngestAnswer = { replayed: false; status: 202; body: IngestResponse } | { replayed: true; status: number; body: unknown };

// The backlog check reads Redis at most this often per API instance.
const BACKLOG_CACHE_MS = 250;
const RETRY_AFTER_SECONDS = '5';

/** Sortable by creation time, unguessable, short enough to prefix every history `_id`. */
export function newBatchId(now: number): string {
  return `${now.toString(36)}${randomBytes(8).toString('hex')}`;
}

export const unavailable = (message: string): AppError =>
  new AppError(503, 'SERVICE_UNAVAILABLE', message, undefined, { 'Retry-After': RETRY_AFTER_SECONDS });

/** The fingerprint of a body: its media type and its bytes after decompression (a hash of what the client meant). */
function bodyHash(kind: IngestKind): Hash {
  return createHash('sha256').update(`${kind}\n`);
}

function tooManyPoints(limit: number): AppError {
  return new AppError(413, 'TOO_MANY_POINTS', `A request may hold at most ${limit} points; split the batch.`);
}

/**
 * Accepts ingest requests: validates their points, turns them into Bull jobs (one job per chunk, never one per
 * point), and runs the Idempotency-Key protocol around it (begin, replay or fingerprint check, complete, release).
 */
export class IngestService {
  private backlog = { points: 0, readAt: 0 };

  constructor(
    private readonly queue: IngestQueue,
    private readonly batches: BatchStore,
    private readonly idempotency: IdempotencyStore,
    private readonly settings: IngestSettings,
    private readonly logger: Logger,
    /** Told how many points of a request were rejected. */
    private readonly onRejected: (points: number) => void = () => undefined,
  ) {}

  /**
   * One ingest request. With an Idempotency-Key: a repeat of a finished request gets its stored answer (a different
   * body under the same key is a 422, one still running a 409); a new one is accepted and its answer stored, or its
   * key freed when it fails, so that the client can send it again.
   */
  async accept(body: IngestBody, key: IdempotencyKey | undefined): Promise<IngestAnswer> {
    // A replay is answered even under back-pressure: it enqueues nothing.
    this.assertQueueReachable();
    let hold: KeyHold | undefined;
    if (key) {
      const begun = await this.holdOrReplay(body, key);
      if ('replayed' in begun) return begun;
      hold = begun;
    }
    const receivedAt = Date.now();
    const hash = bodyHash(body.kind);
    try {
      await this.assertBacklogBelowLimit();
      if (body.kind === 'application/json') {
        const response = await this.acceptJson(body, receivedAt, hash, key);
        if (hold) await this.idempotency.complete(hold, hash.digest('hex'), { status: 202, body: response });
        return { replayed: false, status: 202, body: response };
      }
      return { replayed: false, status: 202, body: await this.acceptNdjson(body, receivedAt, hash, hold) };
    } catch (error) {
      if (hold) await this.idempotency.release(hold).catch(() => undefined);
      throw error;
    }
  }

  /** This request's hold on its key when it is the first with it, or the stored answer of a finished one. */
  private async holdOrReplay(body: IngestBody, key: IdempotencyKey): Promise<KeyHold | IngestAnswer> {
    const state = await this.idempotency.begin(key);
    if (state.state === 'new') return state.hold;
    if (state.state === 'in-flight') {
      throw new AppError(
        409,
        'IDEMPOTENCY_IN_FLIGHT',
        'A request with this Idempotency-Key is still being processed; retry later.',
        undefined,
        { 'Retry-After': '1' },
      );
    }
    // The whole body (within the size limit) is read only to fingerprint it.
    const hash = bodyHash(body.kind);
    if (body.kind === 'application/json') await body.read(hash);
    else await body.readAll(hash);
    if (hash.digest('hex') !== state.fingerprint) {
      throw new AppError(
        422,
        'IDEMPOTENCY_KEY_REUSED',
        'This Idempotency-Key was already used with a different body; use a new key for a new request.',
      );
    }
    return { replayed: true, status: state.response.status, body: state.response.body };
  }

  private async acceptJson(
    body: Extract<IngestBody, { kind: 'application/json' }>,
    receivedAt: number,
    hash: Hash,
    key: IdempotencyKey | undefined,
  ): Promise<IngestResponse> {
    const batch = extractRawBatch(await body.read(hash));
    if (batch.items.length > this.settings.maxPointsPerRequest) throw tooManyPoints(this.settings.maxPointsPerRequest);
    const { points, rejected } = partitionPoints(batch, receivedAt);
    this.onRejected(rejected.length);
    if (points.length === 0) throw noValidPoint(rejected);
    // With an Idempotency-Key, every attempt of the same body gets the same batch (see keyedBatchIdFor).
    const keyed =
      key && (await keyedBatchIdFor(this.batches, { scope: key.scope, key: key.key, fingerprint: hash.copy().digest('hex') }, receivedAt));
    const batchId = await this.enqueue(points, receivedAt, keyed);
    return { batchId, accepted: points.length, rejected };
  }

  /**
   * Streams the body into a batch. With an Idempotency-Key, the 202 is stored in the transaction that commits the
   * batch: if Redis dies after that transaction ran but before it answered, the client's resend (same key, same
   * body) gets the stored 202 back instead of making a second batch of the same points (its id is chosen before the
   * body is read, so unlike a JSON batch's it cannot be derived from the body). test/integration/lost-answer.test.ts
   */
  private async acceptNdjson(
    body: Extract<IngestBody, { kind: 'application/x-ndjson' }>,
    receivedAt: number,
    hash: Hash,
    hold: KeyHold | undefined,
  ): Promise<IngestResponse> {
    const limit = this.settings.maxPointsPerRequest;
    const batch = await this.openStream(receivedAt);
    const rejected: Rejection[] = [];
    try {
      for await (const line of body.lines(hash)) {
        if (batch.acceptedCount + rejected.length >= limit) throw tooManyPoints(limit);
        const index = line.lineNumber - 1;
        if ('error' in line) {
          rejected.push({ index, message: line.error });
          continue;
        }
        const result = validatePoint(line.value, index, receivedAt);
        if ('point' in result) await batch.add(result.point);
        else rejected.push(result.rejection);
      }
      this.onRejected(rejected.length);
      if (batch.acceptedCount === 0) throw noValidPoint(rejected);
    } catch (error) {
      await batch.abort();
      throw error;
    }
    const response: IngestResponse = { batchId: batch.batchId, accepted: batch.acceptedCount, rejected };
    // When its answer is lost, the commit may have run. If it did, the batch is queued and a resend gets the stored
    // 202; if not, its chunks stay held and are dropped as uncommitted after the window.
    const committed = await batch.commit(
      hold && { store: this.idempotency, hold, fingerprint: hash.copy().digest('hex'), response: { status: 202, body: response } },
    );
    if (!committed) {
      // This request stalled past its key's lease (Redis out of reach): the key may belong to a resend by now.
      throw new AppError(
        409,
        'IDEMPOTENCY_LEASE_EXPIRED',
        'This request stalled until its hold on the Idempotency-Key expired, so nothing of it was stored; send it again.',
        undefined,
        { 'Retry-After': '1' },
      );
    }
    return response;
  }

  /** Throws 503 at once while Redis is down, before any body is read. */
  private assertQueueReachable(): void {
    if (!isRedisReady(this.queue.client)) throw unavailable('The queue is unavailable; retry after the delay in Retry-After.');
  }

  /** Throws 503 while the waiting backlog is over its limit (back-pressure). */
  private async assertBacklogBelowLimit(): Promise<void> {
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
   * Enqueues a whole batch atomically (Bull's addBulk is one MULTI). With the
   * `batchId` of an earlier attempt (see keyedBatchIdFor), whatever that attempt
   * stored stays as it is: its status is kept and Bull skips job ids it has.
   */
  private async enqueue(points: readonly Point[], receivedAt: number, batchId = newBatchId(receivedAt)): Promise<string> {
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
  private async openStream(receivedAt: number): Promise<StreamedBatch> {
    return StreamedBatch.open(newBatchId(receivedAt), receivedAt, {
      queue: this.queue,
      batches: this.batches,
      chunkSize: this.settings.chunkSize,
      logger: this.logger,
    });
  }
}

function countKeys(points: readonly Point[]): number {
  return new Set(points.map((point) => point.key)).size;
}
