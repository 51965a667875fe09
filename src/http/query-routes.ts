import { Router, type Request } from 'express';
import { z } from 'zod';
import { AppError, notFound } from '../domain/errors';
import { keySchema } from '../domain/point-schema';
import {
  batchIdSchema,
  decodeCursor,
  encodeCursor,
  historyCursorSchema,
  historyQuerySchema,
  statsCursorSchema,
  statsListQuerySchema,
} from '../domain/query-schemas';
import type { AggregateStore } from '../repositories/aggregate-store';
import type { HistoryStore } from '../repositories/history-repository';
import type { BatchStore } from '../queue/batch-store';

export interface QueryRouteDeps {
  aggregates: AggregateStore;
  history: HistoryStore;
  batches: BatchStore;
}

/** Query strings must be flat strings: `?a=1&a=2` or `?a[b]=1` are answered 400, not half-read. */
function flatQuery(req: Request): Record<string, string> {
  // No prototype: `?__proto__=x` must be an unknown parameter like any other, not a prototype to assign.
  const query = Object.create(null) as Record<string, string>;
  for (const [name, value] of Object.entries(req.query)) {
    if (typeof value !== 'string')
      throw new AppError(400, 'INVALID_QUERY', `Query parameter "${name.slice(0, 50)}" must be given once, as a plain value.`);
    query[name] = value;
  }
  return query;
}

function parseOrThrow<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const details = parsed.error.issues.map((issue) => ({
    path: issue.path.join('.'),
    message: issue.code === 'unrecognized_keys' ? `unknown parameter(s): ${issue.keys.join(', ')}` : issue.message,
  }));
  // Messages that already name their field ("key must not be empty") are not prefixed twice.
  const message = details.map((d) => (d.path && !d.message.startsWith(d.path) ? `${d.path} ${d.message}` : d.message)).join('; ');
  throw new AppError(400, 'INVALID_QUERY', `Invalid ${what}: ${message}.`, details);
}

const invalidCursor = (): AppError => new AppError(400, 'INVALID_CURSOR', 'cursor is not one this API returned; start again without it.');

export function createQueryRouter(deps: QueryRouteDeps): Router {
  const router = Router();

  async function statsOf(rawKey: string): Promise<unknown> {
    const key = parseOrThrow(keySchema, rawKey, 'key');
    const stats = await deps.aggregates.findByKey(key);
    if (!stats) throw notFound(`Key "${key}"`);
    return stats;
  }

  router.get('/stats/:key', async (req, res) => {
    res.json(await statsOf(req.params.key));
  });

  router.get('/stats', async (req, res) => {
    const query = parseOrThrow(statsListQuerySchema, flatQuery(req), 'query');
    if (query.key !== undefined) {
      res.json(await statsOf(query.key));
      return;
    }
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, statsCursorSchema);
    if (query.cursor !== undefined && !after) throw invalidCursor();
    const page = await deps.aggregates.list({ prefix: query.prefix, limit: query.limit, after: after?.k });
    res.json({ items: page.items, nextCursor: page.nextCursor === null ? null : encodeCursor({ k: page.nextCursor }) });
  });

  router.get('/history', async (req, res) => {
    const query = parseOrThrow(historyQuerySchema, flatQuery(req), 'query');
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, historyCursorSchema);
    if (query.cursor !== undefined && !after) throw invalidCursor();
    const page = await deps.history.page({
      key: query.key,
      batchId: query.batchId,
      from: query.from,
      to: query.to,
      limit: query.limit,
      after,
    });
    res.json({ items: page.items, nextCursor: page.next === null ? null : encodeCursor(page.next) });
  });

  router.get('/batches/:batchId', async (req, res) => {
    const parsed = batchIdSchema.safeParse(req.params.batchId);
    const batch = parsed.success ? await deps.batches.get(parsed.data) : null;
    if (!batch) throw notFound('This batch');
    res.json(batch);
  });

  return router;
}
