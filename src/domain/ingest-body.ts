import { AppError } from './errors';
import { listNames, validatePoint, type Point, type Rejection } from './point-schema';

export interface RawBatch {
  items: unknown[];
  /** The original form's batch-wide key, applied to items that have none. */
  defaultKey?: unknown;
}

const SHAPES = 'Send {"points": [...]}, a JSON array of points, or {"key": "...", "items": [...]}.';

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Finds the points in any of the three accepted JSON body shapes. */
export function extractRawBatch(body: unknown): RawBatch {
  if (Array.isArray(body)) return { items: body };
  if (!isPlainObject(body)) throw new AppError(400, 'MALFORMED_BODY', `The body must be a JSON object or array. ${SHAPES}`);
  const fields = Object.keys(body);
  if (fields.length === 1 && Array.isArray(body.points)) return { items: body.points };
  if (fields.length === 2 && 'key' in body && Array.isArray(body.items)) return { items: body.items, defaultKey: body.key };
  const unknown = fields.filter((field) => !['points', 'key', 'items'].includes(field));
  const hint = unknown.length > 0 ? ` Unknown field(s): ${listNames(unknown)}.` : '';
  throw new AppError(400, 'MALFORMED_BODY', `The body has no list of points.${hint} ${SHAPES}`);
}

/** Gives an item the batch key when it has none (the original `{key, items}` form). */
export function withDefaultKey(item: unknown, defaultKey: unknown): unknown {
  if (defaultKey === undefined || !isPlainObject(item) || 'key' in item) return item;
  return { ...item, key: defaultKey };
}

/** Validates every item; valid points go on even when others in the batch are rejected. */
export function partitionPoints(batch: RawBatch, receivedAt: number): { points: Point[]; rejected: Rejection[] } {
  const points: Point[] = [];
  const rejected: Rejection[] = [];
  batch.items.forEach((item, index) => {
    const result = validatePoint(withDefaultKey(item, batch.defaultKey), index, receivedAt);
    if ('point' in result) points.push(result.point);
    else rejected.push(result.rejection);
  });
  return { points, rejected };
}

export function noValidPoint(rejected: Rejection[]): AppError {
  const message =
    rejected.length === 0
      ? 'The batch holds no points; send at least one.'
      : `No valid point in the batch; the first problem: point ${rejected[0]?.index}: ${rejected[0]?.message}.`;
  return new AppError(400, 'NO_VALID_POINTS', message, rejected);
}

/** One line of an NDJSON body: its parsed value, or why it could not be parsed. */
export type NdjsonLine = { lineNumber: number; value: unknown } | { lineNumber: number; error: string };

/** One line of a body: its text (UTF-8 checked), or why it could not be read. */
export type TextLine = { lineNumber: number; text: string } | { lineNumber: number; error: string };
