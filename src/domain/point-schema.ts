import { z } from 'zod';

export const MAX_FUTURE_MS = 24 * 60 * 60 * 1000;
export const MAX_META_BYTES = 4 * 1024;
export const MAX_META_DEPTH = 4;
const FORBIDDEN_NAMES = new Set(['__proto__', 'constructor', 'prototype']);
// Control characters (C0, DEL, C1): they break logs, URLs and some stores.
// eslint-disable-next-line no-control-regex
export const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
// Half of a UTF-16 surrogate pair without its other half (JSON allows "\ud800"): not a character, and the
// MongoDB driver writes it as U+FFFD, so "a\ud800" and "a\udbff" would be stored, and counted, as one key.
export const LONE_SURROGATE = /\p{Cs}/u;
// Epoch milliseconds up to the largest Date JavaScript can hold.
export const MAX_EPOCH_MS = 8.64e15;
export const ISO_8601 = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

const required = (field: string, expected: string) => (issue: { input: unknown }) =>
  issue.input === undefined ? `${field} is required` : `${field} must be ${expected}, not ${describeType(issue.input)}`;

function describeType(input: unknown): string {
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'an array';
  if (typeof input === 'number' && !Number.isFinite(input)) return String(input);
  return typeof input === 'object' ? 'an object' : `a ${typeof input}`;
}

/** Field names for a message: a point with 100 000 unknown fields must not get a 100 000-name answer. */
export function listNames(names: readonly string[]): string {
  const shown = names.slice(0, 5).map((name) => name.slice(0, 50));
  return names.length > 5 ? `${shown.join(', ')} and ${names.length - 5} more` : shown.join(', ');
}

export const MAX_KEY_LENGTH = 200;

export const keySchema = z
  .string({ error: required('key', 'a string') })
  .min(1, 'key must not be empty')
  .max(MAX_KEY_LENGTH, `key must be at most ${MAX_KEY_LENGTH} characters`)
  .refine((key) => !CONTROL_CHARS.test(key), 'key must not contain control characters')
  .refine((key) => !LONE_SURROGATE.test(key), 'key must be valid Unicode (no unpaired UTF-16 surrogates)');

/**
 * The largest magnitude a value may have. A key's count stays exact up to 2^53 points, and 2^53 values of this size
 * still sum to less than Number.MAX_VALUE (about 1.8e308): no sum, all-time or per bucket, can overflow to Infinity,
 * which MongoDB would store and read back as null and FerretDB refuses.
 */
export const MAX_ABS_VALUE = 1e292;
const VALUE_RANGE = `value must be between -1e292 and 1e292, so that the sum of a key's values stays finite`;

const valueSchema = z
  .number({
    error: (issue) => (typeof issue.input === 'number' ? 'value must be a finite number' : required('value', 'a number')(issue)),
  })
  .min(-MAX_ABS_VALUE, VALUE_RANGE)
  .max(MAX_ABS_VALUE, VALUE_RANGE);

const typeSchema = z
  .string({ error: required('type', 'a string') })
  .min(1, 'type must not be empty')
  .max(64, 'type must be at most 64 characters')
  // FerretDB refuses NUL in strings: a type with one would pass here and fail its whole job in the worker.
  .refine((type) => !CONTROL_CHARS.test(type), 'type must not contain control characters')
  .refine((type) => !LONE_SURROGATE.test(type), 'type must be valid Unicode (no unpaired UTF-16 surrogates)');

/** ISO-8601 date-times without an offset are UTC here (JavaScript would read them in the server's local zone). */
export function parseIsoAsUtc(text: string): number {
  const [year, month, day] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
  // Date.parse rolls 2025-02-30 over into March; a date that does not exist is invalid.
  if (new Date(Date.UTC(year, month - 1, day)).getUTCDate() !== day) return Number.NaN;
  const hasTime = text.includes('T');
  const hasZone = /(?:Z|[+-]\d{2}:?\d{2})$/.test(text);
  return Date.parse(hasTime && !hasZone ? `${text}Z` : text);
}

/** Epoch ms or an ISO-8601 string, as epoch ms. */
const timestampSchema = z
  .union([z.number(), z.string()], { error: 'timestamp must be an ISO-8601 string or epoch milliseconds' })
  .transform((raw, ctx) => {
    let ms: number;
    if (typeof raw === 'number') {
      ms = raw;
    } else if (ISO_8601.test(raw)) {
      ms = parseIsoAsUtc(raw);
    } else {
      ms = Number.NaN;
    }
    if (!Number.isInteger(ms) || ms < 0 || ms > MAX_EPOCH_MS) {
      ctx.addIssue({ code: 'custom', message: 'timestamp must be an ISO-8601 date or non-negative integer epoch milliseconds' });
      return z.NEVER;
    }
    return ms;
  });

/**
 * Why meta is checked by hand: MongoDB and FerretDB reject or misread field
 * names with `.` or a leading `$`, FerretDB rejects nested arrays and NUL in
 * strings, and prototype names are a classic injection path.
 */
export function findMetaProblem(meta: unknown): string | undefined {
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
    return 'meta must be a JSON object';
  }
  // The walk first: it stops at depth 5, while JSON.stringify of meta nested ~5000 levels deep (25 kB of JSON)
  // overflows the stack and would turn a bad point into a 500.
  const problem = findNestedProblem(meta, 1, false);
  if (problem) return problem;
  if (Buffer.byteLength(JSON.stringify(meta), 'utf8') > MAX_META_BYTES) {
    return `meta must be at most ${MAX_META_BYTES} bytes when serialized`;
  }
  return undefined;
}

function findNestedProblem(node: unknown, depth: number, insideArray: boolean): string | undefined {
  if (typeof node === 'string') {
    if (node.includes('\u0000')) return 'meta strings must not contain NUL characters';
    return LONE_SURROGATE.test(node) ? 'meta strings must be valid Unicode (no unpaired UTF-16 surrogates)' : undefined;
  }
  if (typeof node === 'number') {
    return Number.isFinite(node) ? undefined : 'meta numbers must be finite';
  }
  if (typeof node !== 'object' || node === null) return undefined;
  if (depth > MAX_META_DEPTH) return `meta must be nested at most ${MAX_META_DEPTH} levels deep`;
  if (Array.isArray(node)) {
    if (insideArray) return 'meta must not hold arrays inside arrays';
    for (const item of node) {
      const problem = findNestedProblem(item, depth + 1, true);
      if (problem) return problem;
    }
    return undefined;
  }
  for (const [name, child] of Object.entries(node)) {
    if (name.startsWith('$') || name.includes('.') || FORBIDDEN_NAMES.has(name) || name.includes('\u0000')) {
      return `meta field name "${name.slice(0, 50)}" is not allowed (no leading "$", no ".", no __proto__/constructor/prototype)`;
    }
    if (LONE_SURROGATE.test(name)) return 'meta field names must be valid Unicode (no unpaired UTF-16 surrogates)';
    const problem = findNestedProblem(child, depth + 1, false);
    if (problem) return problem;
  }
  return undefined;
}

const metaSchema = z.unknown().superRefine((meta, ctx) => {
  const problem = findMetaProblem(meta);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** A point as a client sends it. Unknown fields are rejected, not dropped. */
export const incomingPointSchema = z.strictObject(
  {
    key: keySchema,
    value: valueSchema,
    timestamp: timestampSchema.optional(),
    type: typeSchema.optional(),
    meta: metaSchema.optional(),
  },
  {
    error: (issue) => (issue.code === 'unrecognized_keys' ? `unknown field(s): ${listNames(issue.keys)}` : 'a point must be a JSON object'),
  },
);

/** A validated point with its timestamp resolved: what a job carries. */
export const pointSchema = z.strictObject({
  i: z.number().int().nonnegative(),
  key: keySchema,
  value: valueSchema,
  ts: z.number().int().nonnegative().max(MAX_EPOCH_MS),
  type: typeSchema.optional(),
  meta: z
    .record(z.string(), z.unknown())
    .superRefine((meta, ctx) => {
      const problem = findMetaProblem(meta);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .optional(),
});

export type Point = z.infer<typeof pointSchema>;

export interface Rejection {
  index: number;
  message: string;
}

export function describeIssues(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid point';
  const path = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  const message = issue.message.startsWith(String(issue.path[0])) ? issue.message : `${path}${issue.message}`;
  return message;
}

/**
 * Validates one raw point. `receivedAt` fills a missing timestamp and bounds
 * how far in the future a timestamp may be.
 */
export function validatePoint(raw: unknown, index: number, receivedAt: number): { point: Point } | { rejection: Rejection } {
  const parsed = incomingPointSchema.safeParse(raw);
  if (!parsed.success) return { rejection: { index, message: describeIssues(parsed.error) } };
  const { key, value, timestamp, type, meta } = parsed.data;
  const ts = timestamp ?? receivedAt;
  if (ts > receivedAt + MAX_FUTURE_MS) {
    return { rejection: { index, message: 'timestamp must not be more than 24 hours in the future' } };
  }
  const point: Point = { i: index, key, value, ts };
  if (type !== undefined) point.type = type;
  if (meta !== undefined) point.meta = meta as Record<string, unknown>;
  return { point };
}
