import { isUtf8 } from 'node:buffer';
import { createHash, type Hash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { pipeline, Transform, type Readable } from 'node:stream';
import { createGunzip, createInflate } from 'node:zlib';
import express, { Router, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import { AppError } from '../domain/errors';
import { extractRawBatch, noValidPoint, partitionPoints } from '../domain/ingest-body';
import { validatePoint, type Rejection } from '../domain/point-schema';
import type { IdempotencyKey, IdempotencyStore } from '../queue/idempotency-store';
import type { IngestService } from '../services/ingest-service';
import type { ApiMetrics } from '../metrics';
import { callerOf } from './access';
import { bodyTooLarge, readNdjson } from './ndjson';

export interface IngestRouteDeps {
  ingest: IngestService;
  idempotency: IdempotencyStore;
  metrics: ApiMetrics;
  maxBodyBytes: number;
  maxPointsPerRequest: number;
}

export interface IngestResponse {
  batchId: string;
  accepted: number;
  rejected: Rejection[];
}

const idempotencyKeySchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[\x21-\x7e]+$/, 'use printable ASCII without spaces');

function runMiddleware(middleware: RequestHandler, req: Request, res: Response): Promise<void> {
  return new Promise((resolve, reject) => {
    middleware(req, res, (error?: unknown) => {
      if (error) reject(error instanceof Error ? error : new Error('the request body could not be read'));
      else resolve();
    });
  });
}

/** Both body types are UTF-8 only (JSON by RFC 8259); body-parser alone would also take UTF-16. */
function assertUtf8Charset(req: Request, message: string): void {
  const charset = /;\s*charset=("?)([^";]+)\1/i.exec(req.get('Content-Type') ?? '')?.[2]?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') throw new AppError(415, 'UNSUPPORTED_ENCODING', message);
}

/** The NDJSON body as sent before compression; `maxBodyBytes` then limits the decompressed size. */
function decodedBody(req: Request): Readable {
  assertUtf8Charset(req, 'Send NDJSON as UTF-8 (charset=utf-8 or no charset).');
  const encoding = (req.get('Content-Encoding') ?? 'identity').toLowerCase();
  if (encoding === 'identity') return req;
  // pipeline, not pipe: a client that aborts must end the decompressed stream too, or the read would wait forever.
  if (encoding === 'gzip') return pipeline(req, createGunzip(), ignoreError);
  if (encoding === 'deflate') return pipeline(req, createInflate(), ignoreError);
  throw new AppError(415, 'UNSUPPORTED_ENCODING', 'Send NDJSON uncompressed or with Content-Encoding gzip or deflate.');
}

// pipeline's own callback: the error also reaches the reader of the last stream, which handles it.
const ignoreError = (): void => undefined;

/** A stream that passes `source` through, feeding every chunk to `hash` on the way. */
function hashedThrough(source: Readable, hash: Hash): Readable {
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      callback(null, chunk);
    },
  });
  return pipeline(source, tap, ignoreError);
}

/** The fingerprint of a body: its media type and its bytes after decompression (a hash of what the client meant). */
function bodyHash(kind: string): Hash {
  return createHash('sha256').update(`${kind}\n`);
}

function tooManyPoints(limit: number): AppError {
  return new AppError(413, 'TOO_MANY_POINTS', `A request may hold at most ${limit} points; split the batch.`);
}

export function createIngestRouter(deps: IngestRouteDeps): Router {
  const router = Router();
  // The JSON body's bytes go into the request's hash as body-parser reads them (after decompression).
  const bodyHashes = new WeakMap<IncomingMessage, Hash>();
  // Bodies that are not valid UTF-8: body-parser would decode them with U+FFFD, and two distinct keys could become one.
  const notUtf8 = new WeakSet<IncomingMessage>();
  const jsonParser = express.json({
    limit: deps.maxBodyBytes,
    type: () => true,
    verify: (req, _res, buffer) => {
      bodyHashes.get(req)?.update(buffer);
      if (!isUtf8(buffer)) notUtf8.add(req);
    },
  });

  async function readJson(req: Request, res: Response, hash: Hash): Promise<unknown> {
    assertUtf8Charset(req, 'Send the body as UTF-8, optionally compressed with gzip, deflate or br.');
    bodyHashes.set(req, hash);
    await runMiddleware(jsonParser, req, res);
    if (notUtf8.has(req)) {
      throw new AppError(400, 'MALFORMED_JSON', 'The body is not valid UTF-8; JSON must be sent as UTF-8 text (RFC 8259).');
    }
    return req.body;
  }

  async function acceptJson(
    req: Request,
    res: Response,
    receivedAt: number,
    hash: Hash,
    idempotencyKey: IdempotencyKey | undefined,
  ): Promise<IngestResponse> {
    const batch = extractRawBatch(await readJson(req, res, hash));
    if (batch.items.length > deps.maxPointsPerRequest) throw tooManyPoints(deps.maxPointsPerRequest);
    const { points, rejected } = partitionPoints(batch, receivedAt);
    deps.metrics.rejected.inc(rejected.length);
    if (points.length === 0) throw noValidPoint(rejected);
    // With an Idempotency-Key, every attempt of the same body gets the same batch (see batchIdFor).
    const keyed =
      idempotencyKey &&
      (await deps.ingest.batchIdFor(
        { scope: idempotencyKey.scope, key: idempotencyKey.key, fingerprint: hash.copy().digest('hex') },
        receivedAt,
      ));
    const batchId = await deps.ingest.enqueue(points, receivedAt, keyed);
    return { batchId, accepted: points.length, rejected };
  }

  /**
   * Streams the body into a batch. With an Idempotency-Key, the 202 is stored in the transaction that commits the
   * batch: if Redis dies after that transaction ran but before it answered, the client's resend (same key, same
   * body) gets the stored 202 back instead of making a second batch of the same points (its id is chosen before the
   * body is read, so unlike a JSON batch's it cannot be derived from the body). test/integration/lost-answer.test.ts
   */
  async function acceptNdjson(
    req: Request,
    receivedAt: number,
    hash: Hash,
    idempotencyKey: IdempotencyKey | undefined,
  ): Promise<IngestResponse> {
    const batch = await deps.ingest.openStream(receivedAt);
    const rejected: Rejection[] = [];
    try {
      for await (const line of readNdjson(hashedThrough(decodedBody(req), hash), deps.maxBodyBytes)) {
        if (batch.acceptedCount + rejected.length >= deps.maxPointsPerRequest) throw tooManyPoints(deps.maxPointsPerRequest);
        const index = line.lineNumber - 1;
        if ('error' in line) {
          rejected.push({ index, message: line.error });
          continue;
        }
        const result = validatePoint(line.value, index, receivedAt);
        if ('point' in result) await batch.add(result.point);
        else rejected.push(result.rejection);
      }
      deps.metrics.rejected.inc(rejected.length);
      if (batch.acceptedCount === 0) throw noValidPoint(rejected);
    } catch (error) {
      await batch.abort();
      throw error;
    }
    const response: IngestResponse = { batchId: batch.batchId, accepted: batch.acceptedCount, rejected };
    // Never undone once sent: when its answer is lost, the commit may have run. If it did, the batch is queued and a
    // resend gets the stored 202; if not, its chunks stay held and are dropped as uncommitted after 24 h.
    const committed = await batch.commit(
      idempotencyKey && deps.idempotency.completion(idempotencyKey, hash.copy().digest('hex'), { status: 202, body: response }),
    );
    if (!idempotencyKey) return response;
    deps.idempotency.completed(idempotencyKey);
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

  /** Reads a replayed request's whole body (within the size limit) only to fingerprint it. */
  async function fingerprintOnly(req: Request, res: Response, kind: string): Promise<string> {
    const hash = bodyHash(kind);
    if (kind === 'application/json') {
      await readJson(req, res, hash);
      return hash.digest('hex');
    }
    let bytes = 0;
    for await (const chunk of hashedThrough(decodedBody(req), hash)) {
      bytes += (chunk as Buffer).length;
      if (bytes > deps.maxBodyBytes) throw bodyTooLarge(deps.maxBodyBytes);
    }
    return hash.digest('hex');
  }

  /** Answers a request whose Idempotency-Key is known, or returns false when this request is the first. */
  async function answeredFromIdempotency(req: Request, res: Response, key: IdempotencyKey, kind: string): Promise<boolean> {
    const state = await deps.idempotency.begin(key);
    if (state.state === 'new') return false;
    if (state.state === 'in-flight') {
      throw new AppError(
        409,
        'IDEMPOTENCY_IN_FLIGHT',
        'A request with this Idempotency-Key is still being processed; retry later.',
        undefined,
        { 'Retry-After': '1' },
      );
    }
    if ((await fingerprintOnly(req, res, kind)) !== state.fingerprint) {
      throw new AppError(
        422,
        'IDEMPOTENCY_KEY_REUSED',
        'This Idempotency-Key was already used with a different body; use a new key for a new request.',
      );
    }
    res.setHeader('Idempotent-Replayed', 'true');
    res.status(state.response.status).json(state.response.body);
    return true;
  }

  router.post('/ingest', async (req, res) => {
    const kind = req.is(['application/json', 'application/x-ndjson']);
    if (!kind) {
      throw new AppError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Send Content-Type: application/json or application/x-ndjson.');
    }
    const rawKey = req.get('Idempotency-Key');
    const parsedKey = rawKey === undefined ? undefined : idempotencyKeySchema.safeParse(rawKey);
    if (parsedKey && !parsedKey.success) {
      throw new AppError(400, 'INVALID_IDEMPOTENCY_KEY', 'Idempotency-Key must be 1-200 printable ASCII characters without spaces.');
    }
    const idempotencyKey = parsedKey ? { scope: callerOf(res).principal, key: parsedKey.data } : undefined;
    // A replay is answered even under back-pressure: it enqueues nothing.
    deps.ingest.assertQueueReachable();
    if (idempotencyKey && (await answeredFromIdempotency(req, res, idempotencyKey, kind))) return;
    const receivedAt = Date.now();
    const hash = bodyHash(kind);
    try {
      await deps.ingest.assertBacklogBelowLimit();
      let result: IngestResponse;
      if (kind === 'application/json') {
        result = await acceptJson(req, res, receivedAt, hash, idempotencyKey);
        if (idempotencyKey) await deps.idempotency.complete(idempotencyKey, hash.digest('hex'), { status: 202, body: result });
      } else {
        result = await acceptNdjson(req, receivedAt, hash, idempotencyKey);
      }
      deps.metrics.ingested.inc(result.accepted);
      req.log.info({ batchId: result.batchId, accepted: result.accepted, rejected: result.rejected.length }, 'batch accepted');
      res.status(202).json(result);
    } catch (error) {
      if (idempotencyKey) await deps.idempotency.release(idempotencyKey).catch(() => undefined);
      throw error;
    }
  });

  return router;
}
