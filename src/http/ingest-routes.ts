import type { Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { AppError } from '../domain/errors';
import type { IdempotencyKey } from '../exactly-once/idempotency-store';
import type { IngestKind, IngestService } from '../services/ingest-service';
import type { ApiMetrics } from '../metrics';
import { callerOf } from './access';
import { DecodedBody } from './decoded-body';

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

const MEDIA_TYPES: IngestKind[] = ['application/json', 'application/x-ndjson'];

/** What each media type may be compressed with, and what to tell a client that sends something else. */
const DECODING: Record<IngestKind, { decoders: Record<string, () => Transform>; badEncoding: string; badCharset: string }> = {
  'application/json': {
    decoders: { gzip: createGunzip, deflate: createInflate, br: createBrotliDecompress },
    badEncoding: 'Send the body as UTF-8, optionally compressed with gzip, deflate or br.',
    badCharset: 'Send the body as UTF-8, optionally compressed with gzip, deflate or br.',
  },
  'application/x-ndjson': {
    decoders: { gzip: createGunzip, deflate: createInflate },
    badEncoding: 'Send NDJSON uncompressed or with Content-Encoding gzip or deflate.',
    badCharset: 'Send NDJSON as UTF-8 (charset=utf-8 or no charset).',
  },
  // InfluxDB line protocol, as its agents send it.
  'text/plain': {
    decoders: { gzip: createGunzip },
    badEncoding: 'Send line protocol uncompressed or with Content-Encoding gzip.',
    badCharset: 'Send line protocol as UTF-8 (charset=utf-8 or no charset).',
  },
};

/** The body, decompressed as its Content-Encoding says; both types are UTF-8 only (JSON by RFC 8259). */
export function decodedBody(req: Request, kind: IngestKind, maxBodyBytes: number): DecodedBody {
  const { decoders, badEncoding, badCharset } = DECODING[kind];
  const charset = /;\s*charset=("?)([^";]+)\1/i.exec(req.get('Content-Type') ?? '')?.[2]?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') throw new AppError(415, 'UNSUPPORTED_ENCODING', badCharset);
  const encoding = (req.get('Content-Encoding') ?? 'identity').toLowerCase();
  if (encoding === 'identity') return new DecodedBody(kind, req, undefined, maxBodyBytes);
  const decoder = Object.hasOwn(decoders, encoding) ? decoders[encoding] : undefined;
  if (!decoder) throw new AppError(415, 'UNSUPPORTED_ENCODING', badEncoding);
  return new DecodedBody(kind, req, decoder(), maxBodyBytes);
}

export function idempotencyKeyOf(req: Request, res: Response): IdempotencyKey | undefined {
  const raw = req.get('Idempotency-Key');
  if (raw === undefined) return undefined;
  const parsed = idempotencyKeySchema.safeParse(raw);
  if (!parsed.success) {
    throw new AppError(400, 'INVALID_IDEMPOTENCY_KEY', 'Idempotency-Key must be 1-200 printable ASCII characters without spaces.');
  }
  return { scope: callerOf(res).principal, key: parsed.data };
}

/** POST /ingest: the route decodes the body and reads the headers; the ingest service does the rest. */
export function createIngestRouter(deps: IngestRouteDeps): Router {
  const router = Router();
  router.post('/ingest', async (req, res) => {
    const kind = req.is(MEDIA_TYPES) as IngestKind | false | null;
    if (!kind) {
      throw new AppError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Send Content-Type: application/json or application/x-ndjson.');
    }
    const key = idempotencyKeyOf(req, res);
    const answer = await deps.ingest.accept(decodedBody(req, kind, deps.maxBodyBytes), key);
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
