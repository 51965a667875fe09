import { pipeline, type Readable } from 'node:stream';
import { createGunzip, createInflate } from 'node:zlib';
import express, { Router, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import { AppError } from '../domain/errors';
import { extractRawBatch, noValidPoint, partitionPoints } from '../domain/ingest-body';
import { validatePoint, type Rejection } from '../domain/point-schema';
import type { IdempotencyStore } from '../queue/idempotency-store';
import type { IngestService } from '../services/ingest-service';
import type { ApiMetrics } from '../metrics';
import { readNdjson } from './ndjson';

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

/** The NDJSON body as sent before compression; `maxBodyBytes` then limits the decompressed size. */
function decodedBody(req: Request): Readable {
  const charset = /;\s*charset=("?)([^";]+)\1/i.exec(req.get('Content-Type') ?? '')?.[2]?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw new AppError(415, 'UNSUPPORTED_ENCODING', 'Send NDJSON as UTF-8 (charset=utf-8 or no charset).');
  }
  const encoding = (req.get('Content-Encoding') ?? 'identity').toLowerCase();
  if (encoding === 'identity') return req;
  // pipeline, not pipe: a client that aborts must end the decompressed stream too, or the read would wait forever.
  if (encoding === 'gzip') return pipeline(req, createGunzip(), ignoreError);
  if (encoding === 'deflate') return pipeline(req, createInflate(), ignoreError);
  throw new AppError(415, 'UNSUPPORTED_ENCODING', 'Send NDJSON uncompressed or with Content-Encoding gzip or deflate.');
}

// pipeline's own callback: the error also reaches the reader of the last stream, which handles it.
const ignoreError = (): void => undefined;

function tooManyPoints(limit: number): AppError {
  return new AppError(413, 'TOO_MANY_POINTS', `A request may hold at most ${limit} points; split the batch.`);
}

export function createIngestRouter(deps: IngestRouteDeps): Router {
  const router = Router();
  const jsonParser = express.json({ limit: deps.maxBodyBytes, type: () => true });

  async function acceptJson(req: Request, res: Response, receivedAt: number): Promise<IngestResponse> {
    await runMiddleware(jsonParser, req, res);
    const batch = extractRawBatch(req.body);
    if (batch.items.length > deps.maxPointsPerRequest) throw tooManyPoints(deps.maxPointsPerRequest);
    const { points, rejected } = partitionPoints(batch, receivedAt);
    deps.metrics.rejected.inc(rejected.length);
    if (points.length === 0) throw noValidPoint(rejected);
    const batchId = await deps.ingest.enqueue(points, receivedAt);
    return { batchId, accepted: points.length, rejected };
  }

  async function acceptNdjson(req: Request, receivedAt: number): Promise<IngestResponse> {
    const batch = await deps.ingest.openStream(receivedAt);
    const rejected: Rejection[] = [];
    try {
      for await (const line of readNdjson(decodedBody(req), deps.maxBodyBytes)) {
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
      await batch.commit();
    } catch (error) {
      await batch.abort();
      throw error;
    }
    return { batchId: batch.batchId, accepted: batch.acceptedCount, rejected };
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
    const idempotencyKey = parsedKey?.data;
    // A replay is answered even under back-pressure: it enqueues nothing.
    deps.ingest.assertQueueReachable();
    if (idempotencyKey) {
      const state = await deps.idempotency.begin(idempotencyKey);
      if (state.state === 'in-flight') {
        throw new AppError(
          409,
          'IDEMPOTENCY_IN_FLIGHT',
          'A request with this Idempotency-Key is still being processed; retry later.',
          undefined,
          { 'Retry-After': '1' },
        );
      }
      if (state.state === 'done') {
        res.setHeader('Idempotent-Replayed', 'true');
        res.status(state.response.status).json(state.response.body);
        return;
      }
    }
    const receivedAt = Date.now();
    try {
      await deps.ingest.assertBacklogBelowLimit();
      const result = kind === 'application/json' ? await acceptJson(req, res, receivedAt) : await acceptNdjson(req, receivedAt);
      if (idempotencyKey) await deps.idempotency.complete(idempotencyKey, { status: 202, body: result });
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
