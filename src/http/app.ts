import { randomUUID } from 'node:crypto';
import path from 'node:path';
import cors from 'cors';
import express, { type Express } from 'express';
import helmet from 'helmet';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import type { ApiMetrics } from '../metrics';
import { enforceAccess, requireAccess, type AccessControl } from './access';
import { errorMiddleware, notFoundMiddleware } from './error-middleware';
import { createIngestRouter, type IngestRouteDeps } from './ingest-routes';
import { createLineProtocolRouter, lineProtocolErrors } from './line-protocol-routes';
import { openApiDocument } from './openapi';
import { createOpsRouter, type ReadinessCheck } from './ops-routes';
import { createQueryRouter, type QueryRouteDeps } from './query-routes';
import { createQueueDashboard, QUEUE_DASHBOARD_PATH } from './queue-dashboard';
import type { RateLimiter } from './rate-limit';
import type { IngestQueue } from '../queue/ingest-queue';

export interface AppDeps extends IngestRouteDeps, QueryRouteDeps {
  logger: Logger;
  metrics: ApiMetrics;
  readiness: ReadinessCheck[];
  corsOrigins: string[];
  access: AccessControl;
  /** Absent when RATE_LIMIT_PER_MINUTE is 0. */
  rateLimiter?: RateLimiter;
  /** The queue bull-board shows (/admin/queues), and the keys that open it (ADMIN_API_KEYS; none: closed). */
  queue: IngestQueue;
  adminKeys: string[];
  /** Express's `trust proxy` setting (TRUST_PROXY): which address is the client's. */
  trustProxy: boolean | number | string[];
}

// src/http or dist/http -> project root, where the live page lives.
const LIVE_PAGE = path.resolve(__dirname, '..', '..', 'test-socket.html');
const LIVE_SCRIPT = path.resolve(__dirname, '..', '..', 'test-socket.js');
// The dashboard's chart library, served from node_modules: deployments (and CI machines) are often offline.
const UPLOT_DIST = path.dirname(require.resolve('uplot'));
const VENDOR_FILES: Record<string, string> = {
  'uPlot.iife.min.js': path.join(UPLOT_DIST, 'uPlot.iife.min.js'),
  'uPlot.min.css': path.join(UPLOT_DIST, 'uPlot.min.css'),
};
const REQUEST_ID = /^[A-Za-z0-9._-]{1,100}$/;

/** The Express app, not listening yet: tests run it in-process. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', deps.trustProxy);
  app.use(
    pinoHttp({
      logger: deps.logger,
      genReqId: (req, res) => {
        const given = req.headers['x-request-id'];
        const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
        res.setHeader('X-Request-Id', id);
        return id;
      },
      serializers: {
        req: (req: { id: unknown; method: string; url: string }) => ({ id: req.id, method: req.method, url: req.url }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
      // Health probes and scrapes would drown the log.
      autoLogging: { ignore: (req) => req.url === '/healthz' || req.url === '/readyz' || req.url === '/metrics' },
    }),
  );
  app.use(
    helmet({
      contentSecurityPolicy: {
        // Scripts only from this origin (the live page's is a file of its own); the page renders data with textContent.
        directives: {
          'script-src': ["'self'"],
          'connect-src': ["'self'", 'ws:', 'wss:'],
          // Served over plain HTTP by default; upgrading would break the page when opened by IP or host name.
          'upgrade-insecure-requests': null,
        },
      },
    }),
  );
  app.use(cors({ origin: deps.corsOrigins.length > 0 ? deps.corsOrigins : false }));

  app.use(createOpsRouter(deps.readiness, deps.metrics.registry));
  const openApi = openApiDocument();
  app.get('/openapi.json', (_req, res) => {
    res.json(openApi);
  });
  app.get('/', (_req, res) => {
    res.redirect(302, '/test-socket.html');
  });
  app.get('/test-socket.html', (_req, res) => {
    res.sendFile(LIVE_PAGE);
  });
  app.get('/test-socket.js', (_req, res) => {
    res.sendFile(LIVE_SCRIPT);
  });
  app.get('/vendor/:file', (req, res, next) => {
    const file = Object.hasOwn(VENDOR_FILES, req.params.file) ? VENDOR_FILES[req.params.file] : undefined;
    if (file) res.sendFile(file, { maxAge: '1d' });
    else next();
  });
  // Ingesting needs an ingest key, everything else under /api/data a read key (when keys are configured).
  const ingestAccess = requireAccess(deps.access, 'ingest');
  const readAccess = requireAccess(deps.access, 'read');
  app.use('/api/data', (req, res, next) => {
    // As Express routes: case-insensitive, a trailing slash optional (`/INGEST/` reaches the ingest route too).
    if (/^\/ingest\/?$/i.test(req.path)) ingestAccess(req, res, next);
    else readAccess(req, res, next);
  });
  // Counted before the key is enforced, so that guessing keys is rate limited too (per client IP).
  if (deps.rateLimiter) app.use('/api/data', deps.rateLimiter.middleware());
  app.use('/api/data', enforceAccess);
  app.use('/api/data', createIngestRouter(deps), createQueryRouter(deps));
  // InfluxDB's write endpoints: ingest keys, the same rate limit, InfluxDB's error shape.
  const lineProtocolPaths = ['/api/v2/write', '/write'];
  app.use(lineProtocolPaths, ingestAccess);
  if (deps.rateLimiter) app.use(lineProtocolPaths, deps.rateLimiter.middleware());
  app.use(lineProtocolPaths, enforceAccess);
  app.use(createLineProtocolRouter(deps));
  app.use(lineProtocolPaths, lineProtocolErrors);
  app.use(QUEUE_DASHBOARD_PATH, createQueueDashboard(deps.queue, deps.adminKeys, deps.rateLimiter?.middleware()));
  app.use(notFoundMiddleware);
  app.use(errorMiddleware);
  return app;
}
