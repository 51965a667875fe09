import { z } from 'zod';
import { ISO_8601, keySchema, MAX_EPOCH_MS, parseIsoAsUtc } from './point-schema';
import { STEPS } from './series';

/** A time bound in a query string: epoch milliseconds or an ISO-8601 date. */
const timeBound = z.string().transform((text, ctx) => {
  const ms = /^\d{1,16}$/.test(text) ? Number(text) : ISO_8601.test(text) ? parseIsoAsUtc(text) : Number.NaN;
  if (!Number.isFinite(ms) || ms > MAX_EPOCH_MS) {
    ctx.addIssue({ code: 'custom', message: 'must be an ISO-8601 date or epoch milliseconds' });
    return z.NEVER;
  }
  return ms;
});

const limit = z
  .string()
  .regex(/^\d{1,4}$/, 'must be an integer from 1 to 1000')
  .transform(Number)
  .pipe(z.number().int().min(1, 'must be an integer from 1 to 1000').max(1000, 'must be an integer from 1 to 1000'))
  .default(100);

const cursor = z.string().min(1, 'must not be empty').max(1000, 'must be at most 1000 characters');
const batchId = z.string().regex(/^[a-z0-9]{1,64}$/, 'must be a batch id as returned by ingest');

export const historyQuerySchema = z
  .strictObject({
    key: keySchema.optional(),
    batchId: batchId.optional(),
    from: timeBound.optional(),
    to: timeBound.optional(),
    limit,
    cursor: cursor.optional(),
  })
  .refine((query) => query.from === undefined || query.to === undefined || query.from <= query.to, {
    error: 'must not be after to',
    path: ['from'],
  });

export const statsListQuerySchema = z.strictObject({
  key: keySchema.optional(),
  prefix: z.string().min(1).max(200).optional(),
  limit,
  cursor: cursor.optional(),
});

/** `key` repeated 1-10 times, a step, and an optional window (defaults in query-routes.ts). */
export const seriesQuerySchema = z
  .strictObject({
    key: z
      .union([keySchema, z.array(keySchema)], { error: 'must be given 1 to 10 times, each a key' })
      .transform((keys) => (Array.isArray(keys) ? keys : [keys]))
      .pipe(
        z
          .array(keySchema)
          .max(10, 'must be given at most 10 times')
          .refine((keys) => new Set(keys).size === keys.length, 'must not name the same key twice'),
      ),
    step: z.enum(STEPS, { error: 'must be 1m, 1h or 1d' }).default('1m'),
    from: timeBound.optional(),
    to: timeBound.optional(),
  })
  .refine((query) => query.from === undefined || query.to === undefined || query.from <= query.to, {
    error: 'must not be after to',
    path: ['from'],
  });

export const batchIdSchema = batchId;

/** Cursors are opaque to clients: base64url JSON of the last item's sort position. */
export function encodeCursor(position: unknown): string {
  return Buffer.from(JSON.stringify(position)).toString('base64url');
}

export function decodeCursor<T>(text: string, schema: z.ZodType<T>): T | undefined {
  try {
    const parsed = schema.safeParse(JSON.parse(Buffer.from(text, 'base64url').toString('utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export const historyCursorSchema = z.strictObject({ t: z.number().int().nonnegative().max(MAX_EPOCH_MS), id: z.string().min(1).max(300) });
export const statsCursorSchema = z.strictObject({ k: keySchema });
