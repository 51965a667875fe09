import { Router, type Request, type Response } from 'express';
import type { Precision } from '../domain/line-protocol';
import { AppError } from '../domain/errors';
import type { ApiMetrics } from '../metrics';
import type { IngestService } from '../services/ingest-service';
import { callerOf } from './access';
import { errorHandler } from './error-middleware';
import { decodedBody, idempotencyKeyOf } from './ingest-routes';

export interface LineProtocolRouteDeps {
  ingest: IngestService;
  metrics: ApiMetrics;
  maxBodyBytes: number;
}

/** InfluxDB's precision names: v2 takes ns, us, ms, s; v1 also n and u. */
const PRECISIONS: Record<'v1' | 'v2', Record<string, Precision>> = {
  v2: { ns: 'ns', us: 'us', ms: 'ms', s: 's' },
  v1: { n: 'ns', ns: 'ns', u: 'us', us: 'us', ms: 'ms', s: 's' },
};

function precisionOf(req: Request, version: 'v1' | 'v2'): Precision {
  const raw = req.query.precision;
  if (raw === undefined) return 'ns';
  const names = PRECISIONS[version];
  const precision = typeof raw === 'string' && Object.hasOwn(names, raw) ? names[raw] : undefined;
  if (!precision) throw new AppError(400, 'invalid', `precision must be one of ${Object.keys(names).join(', ')} (default ns)`);
  return precision;
}

// InfluxDB's error codes by status: agents and client libraries read the status, people the message.
const INFLUX_CODES: Record<number, string> = {
  400: 'invalid',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not found',
  408: 'invalid',
  409: 'conflict',
  413: 'request too large',
  415: 'invalid',
  422: 'invalid',
  429: 'too many requests',
  503: 'unavailable',
};

/** Errors in InfluxDB's shape, `{"code", "message"[, "line"]}`, with the service's own messages and headers. */
export const lineProtocolErrors = errorHandler((appError) => {
  const line = (appError.details?.[0] as { line?: unknown } | undefined)?.line;
  const body = { code: INFLUX_CODES[appError.status] ?? 'internal error', message: appError.message };
  return typeof line === 'number' ? { ...body, line } : body;
});

/**
 * InfluxDB's write endpoints (`POST /api/v2/write`, `POST /write`): the body is line protocol whatever its
 * Content-Type; `org`, `bucket` and `db` are accepted and not used (one namespace of keys). docs/api.md.
 */
export function createLineProtocolRouter(deps: LineProtocolRouteDeps): Router {
  const router = Router();
  const write = (version: 'v1' | 'v2') => async (req: Request, res: Response) => {
    const precision = precisionOf(req, version);
    const key = idempotencyKeyOf(req, res);
    const body = decodedBody(req, 'text/plain', deps.maxBodyBytes);
    const answer = await deps.ingest.acceptLineProtocol(body, key, callerOf(res).principal, precision);
    if (answer.replayed) res.setHeader('Idempotent-Replayed', 'true');
    else deps.metrics.ingested.inc(answer.accepted);
    const batchId = (answer.body as { batchId?: unknown } | null)?.batchId;
    // Where to ask for the batch's status (GET /api/data/batches/:id); InfluxDB's own answers have no place for it.
    if (typeof batchId === 'string') res.setHeader('X-Batch-Id', batchId);
    if (answer.status === 204) {
      res.status(204).end();
      return;
    }
    res.status(answer.status).json(answer.body);
  };
  router.post('/api/v2/write', write('v2'));
  router.post('/write', write('v1'));
  return router;
}
