import { extendZodWithOpenApi, OpenAPIRegistry, OpenApiGeneratorV31 } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { incomingPointSchema } from '../domain/point-schema';
import { batchIdSchema, historyQuerySchema, statsListQuerySchema } from '../domain/query-schemas';
import { STEPS } from '../domain/series';

extendZodWithOpenApi(z);

/** Every `error.code` the HTTP API answers with (docs/api.md, Errors, lists the same; a test compares them). */
export const ERROR_CODES = [
  'MALFORMED_JSON',
  'MALFORMED_BODY',
  'NO_VALID_POINTS',
  'INVALID_IDEMPOTENCY_KEY',
  'INVALID_QUERY',
  'INVALID_CURSOR',
  'INVALID_PATH',
  'UNREADABLE_BODY',
  'REQUEST_ABORTED',
  'VALIDATION_FAILED',
  'MALFORMED_REQUEST',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'NOT_FOUND',
  'REQUEST_TIMEOUT',
  'IDEMPOTENCY_IN_FLIGHT',
  'IDEMPOTENCY_LEASE_EXPIRED',
  'PRECONDITION_FAILED',
  'BODY_TOO_LARGE',
  'TOO_MANY_POINTS',
  'UNSUPPORTED_MEDIA_TYPE',
  'UNSUPPORTED_ENCODING',
  'RANGE_NOT_SATISFIABLE',
  'IDEMPOTENCY_KEY_REUSED',
  'RATE_LIMITED',
  'HEADERS_TOO_LARGE',
  'INTERNAL',
  'SERVICE_UNAVAILABLE',
  'QUERY_TIMEOUT',
] as const;

// Responses, as the routes build them (the request schemas are the ones the routes validate with).
const errorSchema = z
  .object({
    error: z.object({
      code: z.enum(ERROR_CODES),
      message: z.string().describe('What to fix, in words'),
      details: z.array(z.object({ path: z.string().optional(), index: z.number().int().optional(), message: z.string() })).optional(),
    }),
  })
  .openapi('Error');

const rejectionSchema = z.object({ index: z.number().int(), message: z.string() }).openapi('Rejection');

const ingestResponseSchema = z
  .object({ batchId: z.string(), accepted: z.number().int(), rejected: z.array(rejectionSchema) })
  .openapi('IngestAccepted');

const ingestBodySchema = z
  .union([
    z.object({ points: z.array(incomingPointSchema) }),
    z.array(incomingPointSchema),
    z.object({
      key: z.string(),
      items: z.array(z.object({ value: z.number(), timestamp: z.union([z.string(), z.number()]).optional() }).loose()),
    }),
  ])
  .openapi('IngestBody');

const statsSchema = z
  .object({
    key: z.string(),
    count: z.number().int(),
    sum: z.number(),
    avg: z.number(),
    min: z.number(),
    max: z.number(),
    firstTimestamp: z.string(),
    lastTimestamp: z.string(),
    lastValue: z.number(),
    updatedAt: z.string(),
  })
  .openapi('Stats');

const historyRecordSchema = z
  .object({
    key: z.string(),
    value: z.number(),
    timestamp: z.string(),
    type: z.string().nullable(),
    meta: z.record(z.string(), z.unknown()).nullable(),
    batchId: z.string(),
    receivedAt: z.string(),
    processedAt: z.string(),
  })
  .openapi('HistoryRecord');

const bucketSchema = z
  .object({
    start: z.string().describe('The first instant of the bucket (ISO-8601, UTC)'),
    count: z.number().int(),
    sum: z.number(),
    avg: z.number(),
    min: z.number(),
    max: z.number(),
  })
  .openapi('Bucket');

// The route's own schema normalises `key` (one or many) with transforms; this is what a client sends.
const seriesQueryDoc = z.object({
  key: z.array(z.string().min(1).max(200)).min(1).max(10).describe('1-10 keys, the parameter repeated: ?key=a&key=b'),
  step: z.enum(STEPS).optional().describe('Bucket width; default 1m'),
  from: z.string().optional().describe('ISO-8601 or epoch ms, inclusive; default: 59 steps before the bucket of `to`'),
  to: z.string().optional().describe('ISO-8601 or epoch ms, inclusive; default: now'),
});

const batchSchema = z
  .object({
    batchId: z.string(),
    status: z.enum(['queued', 'processing', 'completed', 'failed']),
    points: z.number().int(),
    processedPoints: z.number().int(),
    keys: z.number().int(),
    receivedAt: z.string(),
    completedAt: z.string().optional(),
    error: z.string().optional(),
  })
  .openapi('Batch');

const keyParam = z.object({ key: z.string().min(1).max(200).describe('The key, percent-encoded (encodeURIComponent)') });

function errors(...statuses: number[]): Record<number, { description: string; content: Record<string, { schema: typeof errorSchema }> }> {
  return Object.fromEntries(
    statuses.map((status) => [status, { description: `Error ${status}`, content: { 'application/json': { schema: errorSchema } } }]),
  );
}

const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });

// InfluxDB's error shape, which its agents and client libraries read on the write endpoints.
const influxErrorSchema = z
  .object({
    code: z.string().describe('invalid, unauthorized, forbidden, request too large, too many requests, unavailable ...'),
    message: z.string().describe('What to fix; for a partial write, how many points were accepted and the first refused line'),
    line: z.number().int().optional().describe('The first refused line (from 1)'),
    batchId: z.string().optional().describe('A partial write: the batch of the accepted points'),
  })
  .openapi('InfluxError');

function influxErrors(...statuses: number[]): Record<number, ReturnType<typeof json>> {
  return Object.fromEntries(statuses.map((status) => [status, json(influxErrorSchema, `Error ${status}`)]));
}

const lineProtocolBody = {
  content: {
    'text/plain': {
      schema: z.string().describe('InfluxDB line protocol: `measurement[,tag=value...] field=value[,...] [timestamp]`, one point per line'),
    },
  },
};
const lineProtocolAnswers = {
  204: {
    description: 'Every line was accepted; `X-Batch-Id` names the batch (GET /api/data/batches/{batchId})',
    headers: { 'X-Batch-Id': { schema: { type: 'string' as const } } },
  },
  ...influxErrors(400, 401, 403, 408, 413, 415, 429, 503),
};

/** The OpenAPI 3.1 document of the HTTP API, built from the routes' zod schemas; served at /openapi.json. */
export function openApiDocument(): ReturnType<OpenApiGeneratorV31['generateDocument']> {
  const registry = new OpenAPIRegistry();
  const bearer = registry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });
  const apiKey = registry.registerComponent('securitySchemes', 'apiKey', { type: 'apiKey', in: 'header', name: 'X-API-Key' });
  const basic = registry.registerComponent('securitySchemes', 'basic', { type: 'http', scheme: 'basic' });
  const security = [{ [bearer.name]: [] }, { [apiKey.name]: [] }];

  registry.registerPath({
    method: 'post',
    path: '/api/data/ingest',
    operationId: 'ingest',
    summary: 'Accept a batch of points; they are counted once, in the background',
    security,
    request: {
      headers: z.object({ 'Idempotency-Key': z.string().min(1).max(200).optional() }),
      body: {
        content: {
          'application/json': { schema: ingestBodySchema },
          'application/x-ndjson': { schema: z.string().describe('One point (JSON object) per line') },
        },
      },
    },
    responses: {
      202: json(ingestResponseSchema, 'Accepted: the batch id to follow, the points accepted and the ones rejected'),
      ...errors(400, 401, 403, 408, 409, 413, 415, 422, 429, 503),
    },
  });
  const tokenSecurity = [
    ...security,
    {
      [registry.registerComponent('securitySchemes', 'token', {
        type: 'apiKey',
        in: 'header',
        name: 'Authorization',
        description: 'Token <ingest key>, as InfluxDB clients send it',
      }).name]: [],
    },
  ];
  registry.registerPath({
    method: 'post',
    path: '/api/v2/write',
    operationId: 'writeLineProtocol',
    summary: 'InfluxDB v2 write: line protocol in, each numeric field one point (docs/line-protocol.md)',
    security: tokenSecurity,
    request: {
      query: z.object({
        org: z.string().optional().describe('Accepted and not used'),
        bucket: z.string().optional().describe('Accepted and not used'),
        precision: z.enum(['ns', 'us', 'ms', 's']).optional().describe('Unit of the timestamps (default ns)'),
      }),
      headers: z.object({ 'Idempotency-Key': z.string().min(1).max(200).optional() }),
      body: lineProtocolBody,
    },
    responses: lineProtocolAnswers,
  });
  registry.registerPath({
    method: 'post',
    path: '/write',
    operationId: 'writeLineProtocolV1',
    summary: 'InfluxDB v1 write: line protocol in, as /api/v2/write',
    security: tokenSecurity,
    request: {
      query: z.object({
        db: z.string().optional().describe('Accepted and not used'),
        precision: z.enum(['n', 'ns', 'u', 'us', 'ms', 's']).optional().describe('Unit of the timestamps (default ns)'),
      }),
      headers: z.object({ 'Idempotency-Key': z.string().min(1).max(200).optional() }),
      body: lineProtocolBody,
    },
    responses: lineProtocolAnswers,
  });
  registry.registerPath({
    method: 'get',
    path: '/api/data/stats/{key}',
    operationId: 'getStats',
    summary: "One key's statistics",
    security,
    request: { params: keyParam },
    responses: { 200: json(statsSchema, "The key's statistics"), ...errors(400, 401, 404, 429, 503) },
  });
  registry.registerPath({
    method: 'get',
    path: '/api/data/stats',
    operationId: 'listStats',
    summary: 'Statistics of all keys, in key order, a page at a time',
    security,
    request: { query: statsListQuerySchema },
    responses: {
      200: json(
        z.union([z.object({ items: z.array(statsSchema), nextCursor: z.string().nullable() }), statsSchema]),
        'A page, or one key with ?key=',
      ),
      ...errors(400, 401, 404, 429, 503),
    },
  });
  registry.registerPath({
    method: 'get',
    path: '/api/data/history',
    operationId: 'listHistory',
    summary: 'Stored points, newest first',
    security,
    request: { query: historyQuerySchema },
    responses: {
      200: json(z.object({ items: z.array(historyRecordSchema), nextCursor: z.string().nullable() }), 'A page of records'),
      ...errors(400, 401, 429, 503),
    },
  });
  registry.registerPath({
    method: 'get',
    path: '/api/data/series',
    operationId: 'getSeries',
    summary: "Keys' values per minute, hour or day, oldest bucket first, empty buckets left out",
    security,
    request: { query: seriesQueryDoc },
    responses: {
      200: json(
        z.object({ step: z.enum(STEPS), series: z.array(z.object({ key: z.string(), buckets: z.array(bucketSchema) })) }),
        'One entry per key, in the order asked',
      ),
      ...errors(400, 401, 429, 503),
    },
  });
  registry.registerPath({
    method: 'get',
    path: '/api/data/batches/{batchId}',
    operationId: 'getBatch',
    summary: "A batch's progress",
    security,
    request: { params: z.object({ batchId: batchIdSchema }) },
    responses: { 200: json(batchSchema, 'The batch'), ...errors(400, 401, 404, 429, 503) },
  });
  registry.registerPath({
    method: 'get',
    path: '/healthz',
    operationId: 'health',
    // Open whatever keys are set: probes and scrapers carry none.
    security: [],
    summary: 'The process runs',
    responses: { 200: json(z.object({ status: z.literal('ok') }), 'Running') },
  });
  registry.registerPath({
    method: 'get',
    path: '/readyz',
    operationId: 'readiness',
    security: [],
    summary: 'MongoDB and Redis answer',
    responses: {
      200: json(z.object({ status: z.string(), checks: z.record(z.string(), z.enum(['up', 'down'])) }), 'Ready'),
      503: json(z.object({ status: z.string(), checks: z.record(z.string(), z.enum(['up', 'down'])) }), 'Not ready'),
    },
  });
  registry.registerPath({
    method: 'get',
    path: '/metrics',
    operationId: 'metrics',
    security: [],
    summary: 'Prometheus metrics of this API instance',
    responses: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: z.string() } } } },
  });
  registry.registerPath({
    method: 'get',
    path: '/openapi.json',
    operationId: 'openApi',
    security: [],
    summary: 'This document',
    responses: { 200: { description: 'OpenAPI 3.1', content: { 'application/json': { schema: z.object({}).loose() } } } },
  });

  for (const [path, operationId, summary] of [
    ['/test-socket.html', 'livePage', 'The live page: subscribe to keys and watch their statistics'],
    ['/admin/queues', 'queueDashboard', 'The queue dashboard (bull-board), behind ADMIN_API_KEYS; closed (404) without them'],
  ] as const) {
    registry.registerPath({
      method: 'get',
      path,
      operationId,
      summary,
      security: path === '/admin/queues' ? [{ [bearer.name]: [] }, { [basic.name]: [] }] : [],
      responses: { 200: { description: 'An HTML page', content: { 'text/html': { schema: z.string() } } }, ...errors(401, 404) },
    });
  }

  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Realtime data service',
      version: '1.0.0',
      description: 'Ingest numeric data points, read exact per-key statistics and history. Live updates: Socket.io at /ws (docs/api.md).',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: '/' }],
  });
}
