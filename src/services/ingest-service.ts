import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { AppError } from '../domain/errors';
import { extractRawBatch, noValidPoint, partitionPoints, type NdjsonLine, type TextLine } from '../domain/ingest-body';
import { jobIdOf } from '../domain/job-payload';
import { parseLine, type Precision } from '../domain/line-protocol';
import { validatePoint, type Point, type Rejection } from '../domain/point-schema';
import { chunk } from '../domain/stats';
import type { BatchStore } from '../exactly-once/batch-store';
import type { IdempotencyKey, IdempotencyStore, KeyHold, StoredResponse } from '../exactly-once/idempotency-store';
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

/** The body formats taken; each is part of its body's fingerprint. `text/plain` is InfluxDB line protocol. */
export type IngestKind = 'application/json' | 'application/x-ndjson' | 'text/plain';

/**
 * A request body as the edge decoded it (decompressed, UTF-8, within its size limit), read once: whole as JSON, or
 * line by line as NDJSON. `fingerprint()` covers the media type and every byte read so far, so it is the body's
 * fingerprint (for its Idempotency-Key) once the body was read to its end.
 */
export interface IngestBody {
  readonly kind: IngestKind;
  json(): Promise<unknown>;
  lines(): AsyncIterable<NdjsonLine>;
  /** The body's lines as text, each refused alone when it is not UTF-8 or too long (line protocol). */
  textLines(): AsyncIterable<TextLine>;
  /** Reads the rest only to fingerprint it. */
  drain(): Promise<void>;
  fingerprint(): string;
}

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

export const unavailable = (message: string, retryAfter = RETRY_AFTER_SECONDS): AppError =>
  new AppError(503, 'SERVICE_UNAVAILABLE', message, undefined, { 'Retry-After': retryAfter });

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
    const answer = await this.withIdempotency(key, body, async (hold) => {
      const receivedAt = Date.now();
      await this.assertBacklogBelowLimit();
      if (body.kind === 'application/json') {
        return { answer: { status: 202, body: await this.acceptJson(body, receivedAt, key) }, answerStored: false };
      }
      return { answer: { status: 202, body: await this.acceptNdjson(body, receivedAt, hold) }, answerStored: true };
    });
    return answer.replayed ? { replayed: true, ...answer.answer } : { replayed: false, status: 202, body: answer.answer.body };
  }

  /**
   * The Idempotency-Key protocol around `run`: begin (409 while another request holds the key), replay (the stored
   * answer of a finished request, 422 when the body differs), complete (store `run`'s answer, unless it stored it
   * itself: a streamed batch does so in its commit), and release the key when `run` fails.
   */
  private async withIdempotency<A extends StoredResponse>(
    key: IdempotencyKey | undefined,
    body: IngestBody,
    run: (hold: KeyHold | undefined) => Promise<{ answer: A; answerStored: boolean }>,
  ): Promise<{ replayed: false; answer: A } | { replayed: true; answer: StoredResponse }> {
    if (!key) return { replayed: false, answer: (await run(undefined)).answer };
    const state = await this.idempotency.begin(key);
    if (state.state === 'in-flight') {
      throw new AppError(
        409,
        'IDEMPOTENCY_IN_FLIGHT',
        'A request with this Idempotency-Key is still being processed; retry later.',
        undefined,
        { 'Retry-After': '1' },
      );
    }
    if (state.state !== 'new') {
      // The whole body (within the size limit) is read only to fingerprint it.
      await body.drain();
      if (body.fingerprint() !== state.fingerprint) {
        throw new AppError(
          422,
          'IDEMPOTENCY_KEY_REUSED',
          'This Idempotency-Key was already used with a different body; use a new key for a new request.',
        );
      }
      return { replayed: true, answer: state.response };
    }
    try {
      const { answer, answerStored } = await run(state.hold);
      if (!answerStored) await this.idempotency.complete(state.hold, body.fingerprint(), answer);
      return { replayed: false, answer };
    } catch (error) {
      await this.idempotency.release(state.hold).catch(() => undefined);
      throw error;
    }
  }

  /**
   * An InfluxDB line-protocol body (docs/line-protocol.md): streamed like NDJSON, each numeric field of a line one
   * point. Answers 204 when every line was taken, or a 400 `partial write` (the accepted points are stored) naming
   * the first refused line; throws a 400 when nothing was taken. Agents resend a body after a timeout without an
   * Idempotency-Key: when every line carries a timestamp, the body is its own key (same caller, same bytes, within
   * the idempotency window), so a resend is answered again and counted once. An Idempotency-Key still wins.
   */
  async acceptLineProtocol(
    body: IngestBody,
    key: IdempotencyKey | undefined,
    caller: string,
    precision: Precision,
  ): Promise<StoredResponse & { replayed: boolean; accepted: number }> {
    this.assertQueueReachable();
    if (key) {
      let accepted = 0;
      const answer = await this.withIdempotency(key, body, async (hold) => {
        const streamed = await this.streamLineProtocol(body, precision);
        await this.commitStream(streamed.batch, hold && { hold, fingerprint: body.fingerprint(), answer: streamed.answer });
        accepted = streamed.batch.acceptedCount;
        return { answer: streamed.answer, answerStored: true };
      });
      return { replayed: answer.replayed, accepted, ...answer.answer };
    }
    const { batch, answer, timestamped } = await this.streamLineProtocol(body, precision);
    const accepted = batch.acceptedCount;
    if (!timestamped) {
      await this.commitStream(batch, undefined);
      return { replayed: false, accepted, ...answer };
    }
    const state = await this.idempotency.begin({ scope: caller, key: `line-protocol:${body.fingerprint()}` });
    if (state.state !== 'new') {
      // The same points were sent before: nothing of this copy is stored.
      await batch.abort();
      if (state.state === 'done') return { replayed: true, accepted: 0, ...state.response };
      throw unavailable('The same body is being written by another request; retry after the delay in Retry-After.', '1');
    }
    try {
      await this.commitStream(batch, { hold: state.hold, fingerprint: body.fingerprint(), answer });
    } catch (error) {
      await this.idempotency.release(state.hold).catch(() => undefined);
      throw error;
    }
    return { replayed: false, accepted, ...answer };
  }

  /** Streams a line-protocol body into a batch (not committed) and the answer it will get. */
  private async streamLineProtocol(
    body: IngestBody,
    precision: Precision,
  ): Promise<{ batch: StreamedBatch; answer: StoredResponse; timestamped: boolean }> {
    const receivedAt = Date.now();
    await this.assertBacklogBelowLimit();
    const seen = { untimestamped: false };
    const { batch, rejected } = await this.fillStream(lineProtocolItems(body, { precision, receivedAt }, seen), receivedAt);
    const first = rejected[0];
    if (batch.acceptedCount === 0) {
      await batch.abort();
      throw new AppError(
        400,
        'invalid',
        first ? `line ${first.index + 1}: ${first.message}` : 'no points: the body holds no line with a numeric field',
        first && [{ line: first.index + 1 }],
      );
    }
    // The batch id rides along (the route sends it as X-Batch-Id): InfluxDB's answers have no place for it.
    if (!first) return { batch, answer: { status: 204, body: { batchId: batch.batchId } }, timestamped: !seen.untimestamped };
    const lines = new Set(rejected.map((rejection) => rejection.index)).size;
    const answer: StoredResponse = {
      status: 400,
      body: {
        code: 'invalid',
        batchId: batch.batchId,
        line: first.index + 1,
        message:
          `partial write: ${batch.acceptedCount} point${batch.acceptedCount === 1 ? '' : 's'} accepted, ${lines} line${lines === 1 ? '' : 's'} refused; ` +
          `line ${first.index + 1}: ${first.message}`,
      },
    };
    return { batch, answer, timestamped: !seen.untimestamped };
  }

  private async acceptJson(body: IngestBody, receivedAt: number, key: IdempotencyKey | undefined): Promise<IngestResponse> {
    const batch = extractRawBatch(await body.json());
    if (batch.items.length > this.settings.maxPointsPerRequest) throw tooManyPoints(this.settings.maxPointsPerRequest);
    const { points, rejected } = partitionPoints(batch, receivedAt);
    this.onRejected(rejected.length);
    if (points.length === 0) throw noValidPoint(rejected);
    // With an Idempotency-Key, every attempt of the same body gets the same batch (see keyedBatchIdFor).
    const keyed =
      key && (await keyedBatchIdFor(this.batches, { scope: key.scope, key: key.key, fingerprint: body.fingerprint() }, receivedAt));
    const batchId = await this.enqueue(points, receivedAt, keyed);
    return { batchId, accepted: points.length, rejected };
  }

  /**
   * Streams the body into a batch. With an Idempotency-Key, the 202 is stored in the transaction that commits the
   * batch: if Redis dies after that transaction ran but before it answered, the client's resend (same key, same
   * body) gets the stored 202 back instead of making a second batch of the same points (its id is chosen before the
   * body is read, so unlike a JSON batch's it cannot be derived from the body). test/integration/lost-answer.test.ts
   */
  private async acceptNdjson(body: IngestBody, receivedAt: number, hold: KeyHold | undefined): Promise<IngestResponse> {
    const { batch, rejected } = await this.fillStream(ndjsonItems(body, receivedAt), receivedAt);
    if (batch.acceptedCount === 0) {
      await batch.abort();
      throw noValidPoint(rejected);
    }
    const response: IngestResponse = { batchId: batch.batchId, accepted: batch.acceptedCount, rejected };
    await this.commitStream(batch, hold && { hold, fingerprint: body.fingerprint(), answer: { status: 202, body: response } });
    return response;
  }

  /**
   * A streamed batch of `items`, its chunks stored (held) as they fill; not committed. A failure (413, a cut body)
   * drops what it had stored.
   */
  private async fillStream(
    items: AsyncIterable<StreamedItem>,
    receivedAt: number,
  ): Promise<{ batch: StreamedBatch; rejected: Rejection[] }> {
    const limit = this.settings.maxPointsPerRequest;
    const batch = await this.openStream(receivedAt);
    const rejected: Rejection[] = [];
    try {
      for await (const item of items) {
        if (batch.acceptedCount + rejected.length >= limit) throw tooManyPoints(limit);
        if ('point' in item) await batch.add(item.point);
        else rejected.push(item.rejection);
      }
      this.onRejected(rejected.length);
    } catch (error) {
      await batch.abort();
      throw error;
    }
    return { batch, rejected };
  }

  /**
   * Commits a streamed batch, storing `keyed.answer` under its key in the same transaction. When its answer is lost,
   * the commit may have run: if it did, the batch is queued and a resend gets the stored answer; if not, its chunks
   * stay held and are dropped as uncommitted after the window.
   */
  private async commitStream(
    batch: StreamedBatch,
    keyed: { hold: KeyHold; fingerprint: string; answer: StoredResponse } | undefined,
  ): Promise<void> {
    const committed = await batch.commit(
      keyed && { store: this.idempotency, hold: keyed.hold, fingerprint: keyed.fingerprint, response: keyed.answer },
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

/** One item of a streamed body, in order: a valid point, or why one was refused. */
export type StreamedItem = { point: Point } | { rejection: Rejection };

/** A raw point of item `index`, validated: the point, or why it was refused. */
function itemOf(raw: unknown, index: number, receivedAt: number): StreamedItem {
  const result = validatePoint(raw, index, receivedAt);
  return 'point' in result ? { point: result.point } : { rejection: result.rejection };
}

/** An NDJSON body's lines as points and refusals (index: the line's, from 0). */
async function* ndjsonItems(body: IngestBody, receivedAt: number): AsyncGenerator<StreamedItem> {
  for await (const line of body.lines()) {
    const index = line.lineNumber - 1;
    if ('error' in line) {
      yield { rejection: { index, message: line.error } };
      continue;
    }
    yield itemOf(line.value, index, receivedAt);
  }
}

/**
 * A line-protocol body's points and refusals (index: the line's, from 0); `seen.untimestamped` is set when a line
 * had no timestamp (it took the time of receipt, so a resend of the body would be other points).
 */
async function* lineProtocolItems(
  body: IngestBody,
  options: { precision: Precision; receivedAt: number },
  seen: { untimestamped: boolean },
): AsyncGenerator<StreamedItem> {
  // A line carries a point per field, so points are numbered on their own (a point's `i` names its history record);
  // refusals keep the line's index.
  let next = 0;
  for await (const line of body.textLines()) {
    const index = line.lineNumber - 1;
    if ('error' in line) {
      yield { rejection: { index, message: line.error } };
      continue;
    }
    const parsed = parseLine(line.text, options);
    if ('skip' in parsed) continue;
    if ('error' in parsed) {
      yield { rejection: { index, message: parsed.error } };
      continue;
    }
    if (!parsed.timestamped) seen.untimestamped = true;
    for (const point of parsed.points) {
      const item = itemOf(point, index, options.receivedAt);
      if ('point' in item) item.point.i = next++;
      yield item;
    }
  }
}

function countKeys(points: readonly Point[]): number {
  return new Set(points.map((point) => point.key)).size;
}
