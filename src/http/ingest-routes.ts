import { isUtf8 } from 'node:buffer';
import type { Hash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { pipeline, Transform, type Readable } from 'node:stream';
import { createGunzip, createInflate } from 'node:zlib';
import express, { Router, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import { AppError } from '../domain/errors';
import type { IngestBody, IngestKind, IngestService } from '../services/ingest-service';
import type { ApiMetrics } from '../metrics';
import { callerOf } from './access';
import { bodyTooLarge, readNdjson } from './ndjson';

export interface IngestRouteDeps {
  ingest: IngestService;
  metrics: ApiMetrics;
  maxBodyBytes: number;
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

  /** The NDJSON body's bytes, read to the end within the size limit, only to fingerprint them. */
  async function readAllNdjson(req: Request, hash: Hash): Promise<void> {
    let bytes = 0;
    for await (const chunk of hashedThrough(decodedBody(req), hash)) {
      bytes += (chunk as Buffer).length;
      if (bytes > deps.maxBodyBytes) throw bodyTooLarge(deps.maxBodyBytes);
    }
  }

  /** The request's body as the ingest service reads it. */
  function bodyOf(req: Request, res: Response, kind: IngestKind): IngestBody {
    if (kind === 'application/json') return { kind, read: (hash) => readJson(req, res, hash) };
    return {
      kind,
      lines: (hash) => readNdjson(hashedThrough(decodedBody(req), hash), deps.maxBodyBytes),
      readAll: (hash) => readAllNdjson(req, hash),
    };
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
    const answer = await deps.ingest.accept(bodyOf(req, res, kind as IngestKind), idempotencyKey);
    if (answer.replayed) {
      res.setHeader('Idempotent-Replayed', 'true');
    } else {
      deps.metrics.ingested.inc(answer.body.accepted);
      req.log.info(
        { batchId: answer.body.batchId, accepted: answer.body.accepted, rejected: answer.body.rejected.length },
        'batch accepted',
      );
    }
    res.status(answer.status).json(answer.body);
  });

  return router;
}
