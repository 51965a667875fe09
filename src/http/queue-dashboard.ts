import { createBullBoard } from '@bull-board/api';
import { BullAdapter } from '@bull-board/api/bullAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Router, type RequestHandler } from 'express';
import { AppError } from '../domain/errors';
import type { IngestQueue } from '../queue/ingest-queue';
import { AccessControl, enforceAccess, presentedKey, recordAccess } from './access';

export const QUEUE_DASHBOARD_PATH = '/admin/queues';

/** The admin key of a request: Bearer or X-API-Key like the API, or HTTP Basic's password (what a browser can send). */
function adminKey(authorization: string | undefined, headers: Parameters<typeof presentedKey>[0]): string | undefined {
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? '');
  if (basic?.[1]) {
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? undefined : decoded.slice(colon + 1);
  }
  return presentedKey(headers);
}

/**
 * bull-board on the ingest queue, where operators see waiting, active and failed jobs and retry failed ones. Behind
 * ADMIN_API_KEYS; with none set it is closed (404), since it can retry and remove jobs. `rateLimit` counts wrong keys.
 */
export function createQueueDashboard(queue: IngestQueue, adminKeys: string[], rateLimit?: RequestHandler): Router {
  const router = Router();
  if (adminKeys.length === 0) {
    router.use((_req, _res, next) => {
      next(new AppError(404, 'NOT_FOUND', `The queue dashboard is closed: set ADMIN_API_KEYS to open it at ${QUEUE_DASHBOARD_PATH}.`));
    });
    return router;
  }
  const keys = new AccessControl({ ingestKeys: adminKeys, readKeys: [] });
  const denied = new AppError(
    401,
    'UNAUTHORIZED',
    'The queue dashboard needs an admin key (ADMIN_API_KEYS): as the password of HTTP Basic auth in a browser, or Authorization: Bearer <key>.',
    undefined,
    { 'WWW-Authenticate': 'Basic realm="queue dashboard", charset="UTF-8"' },
  );
  router.use((req, res, next) => {
    const result = keys.authorize('ingest', adminKey(req.headers.authorization, req.headers));
    recordAccess(res, result instanceof AppError ? denied : result);
    next();
  });
  if (rateLimit) router.use(rateLimit);
  router.use(enforceAccess);
  const board = new ExpressAdapter();
  board.setBasePath(QUEUE_DASHBOARD_PATH);
  createBullBoard({ queues: [new BullAdapter(queue)], serverAdapter: board });
  router.use(board.getRouter() as RequestHandler);
  return router;
}
