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
  seriesQuerySchema,
  statsCursorSchema,
  statsListQuerySchema,
} from '../domain/query-schemas';
import { bucketStart, isRetained, STEP_MS, STEPS, type SeriesRetention, type Step } from '../domain/series';
import type { AggregateStore, HistoryStore, SeriesStore } from '../storage/contract';
import type { BatchStore } from '../exactly-once/batch-store';

export interface QueryRouteDeps {
  aggregates: AggregateStore;
  history: HistoryStore;
  series: SeriesStore;
  batches: BatchStore;
}

/**
 * Query strings must be flat strings: `?a=1&a=2` or `?a[b]=1` are answered 400, not half-read; only the parameters
 * named in `repeatable` may be given several times (a list of plain values).
 */
function flatQuery(req: Request, repeatable: readonly string[] = []): Record<string, string | string[]> {
  // No prototype: `?__proto__=x` must be an unknown parameter like any other, not a prototype to assign.
  const query = Object.create(null) as Record<string, string | string[]>;
  for (const [name, value] of Object.entries(req.query)) {
    const repeated = repeatable.includes(name) && Array.isArray(value) && value.every((item) => typeof item === 'string');
    if (typeof value !== 'string' && !repeated)
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

/** Buckets a series answers by default: the last 60 steps up to now. */
const DEFAULT_SERIES_STEPS = 60;

/** The 400 for a window that starts before `step`'s buckets are kept: names the finest step that still has them. */
function beyondRetention(step: Step, from: number, retention: SeriesRetention, now: number): AppError {
  const kept = (s: Step): string => {
    const ms = retention[s];
    if (ms === null) return 'kept for good';
    return ms % 86_400_000 === 0
      ? `kept ${ms / 86_400_000} days`
      : ms % 3_600_000 === 0
        ? `kept ${ms / 3_600_000} h`
        : `kept ${ms / 60_000} min`;
  };
  const coarser = STEPS.slice(STEPS.indexOf(step) + 1).find((s) => isRetained(bucketStart(from, s), s, retention, now));
  const advice = coarser ? `use step=${coarser} (${kept(coarser)})` : 'no step keeps buckets that old';
  return new AppError(
    400,
    'INVALID_QUERY',
    `Invalid query: ${step} buckets are ${kept(step)}, and from reaches before that; ${advice}, or a later from.`,
    [{ path: 'from', message: `reaches past the retention of step ${step}` }],
  );
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

  router.get('/series', async (req, res) => {
    const query = parseOrThrow(seriesQuerySchema, flatQuery(req, ['key']), 'query');
    const now = Date.now();
    const to = query.to ?? now;
    const from = query.from ?? bucketStart(to, query.step) - (DEFAULT_SERIES_STEPS - 1) * STEP_MS[query.step];
    const retention = deps.series.retention;
    if (!isRetained(bucketStart(from, query.step), query.step, retention, now)) throw beyondRetention(query.step, from, retention, now);
    const series = await deps.series.read(query.key, query.step, bucketStart(from, query.step), to);
    res.json({ step: query.step, series: query.key.map((key) => ({ key, buckets: series.get(key) ?? [] })) });
  });

  router.get('/batches/:batchId', async (req, res) => {
    const parsed = batchIdSchema.safeParse(req.params.batchId);
    const batch = parsed.success ? await deps.batches.get(parsed.data) : null;
    if (!batch) throw notFound('This batch');
    res.json(batch);
  });

  return router;
}
