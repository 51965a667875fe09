import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Request, RequestHandler, Response } from 'express';
import { AppError } from '../domain/errors';

/** What a request may do: ingest keys may also read. */
export type Scope = 'ingest' | 'read';

export interface AccessSettings {
  ingestKeys: string[];
  readKeys: string[];
}

/** Who made a request, as idempotency scoping and rate limiting see it. */
export interface Caller {
  /** `key:<hash prefix>` for a caller identified by an API key; `open` when the scope needs no key. */
  principal: string;
  /** Whether the caller presented a configured key (rate limits then count per key, not per IP). */
  authenticated: boolean;
}

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/** The key from `Authorization: Bearer <key>` (or `Token <key>`, as InfluxDB clients send it) or `X-API-Key`. */
export function presentedKey(headers: IncomingHttpHeaders): string | undefined {
  const authorization = headers.authorization;
  if (typeof authorization === 'string') {
    const bearer = /^(?:Bearer|Token)[ ]+(\S+)\s*$/i.exec(authorization);
    if (bearer) return bearer[1];
  }
  const header = headers['x-api-key'];
  return typeof header === 'string' && header.length > 0 ? header.trim() : undefined;
}

/**
 * API keys, compared in constant time: both sides are hashed to 32 bytes and
 * every configured key is compared, so neither the length of a key nor the
 * position of a match shows in the response time.
 */
export class AccessControl {
  private readonly ingest: Buffer[];
  private readonly read: Buffer[];

  constructor(settings: AccessSettings) {
    this.ingest = settings.ingestKeys.map(digest);
    this.read = settings.readKeys.map(digest);
  }

  /** Whether `scope` needs a key at all (unset key lists keep the open local default). */
  isProtected(scope: Scope): boolean {
    return scope === 'ingest' ? this.ingest.length > 0 : this.read.length > 0;
  }

  /** Who may act within `scope`, or an AppError (401 no or unknown key, 403 a read key on ingest). */
  authorize(scope: Scope, key: string | undefined): Caller | AppError {
    const known = key === undefined ? undefined : this.identify(key);
    if (!this.isProtected(scope)) {
      // Open scope: a known key still identifies its caller for rate limits and idempotency.
      return known ? { principal: known.principal, authenticated: true } : { principal: 'open', authenticated: false };
    }
    if (!known) {
      return new AppError(
        401,
        'UNAUTHORIZED',
        key === undefined
          ? 'This endpoint needs an API key: send Authorization: Bearer <key> (or Token <key>) or X-API-Key: <key>.'
          : 'The API key is not valid; check it, or ask for a new one.',
        undefined,
        { 'WWW-Authenticate': 'Bearer' },
      );
    }
    if (scope === 'ingest' && !known.ingest) {
      return new AppError(403, 'FORBIDDEN', 'This API key may only read; ingest with a key from INGEST_API_KEYS.');
    }
    return { principal: known.principal, authenticated: true };
  }

  private identify(key: string): { principal: string; ingest: boolean } | undefined {
    const hashed = digest(key);
    // No early exit: every configured key is compared whatever matches.
    let ingest = false;
    let read = false;
    for (const candidate of this.ingest) ingest = timingSafeEqual(candidate, hashed) || ingest;
    for (const candidate of this.read) read = timingSafeEqual(candidate, hashed) || read;
    if (!ingest && !read) return undefined;
    return { principal: `key:${hashed.toString('hex').slice(0, 16)}`, ingest };
  }
}

/** The caller `requireAccess` stored on the response. */
export function callerOf(res: Response): Caller {
  const caller = res.locals.caller as Caller | undefined;
  if (!caller) throw new Error('requireAccess did not run before this handler');
  return caller;
}

/**
 * Identifies the caller (`res.locals.caller`). A request that may not pass is let through as an anonymous caller
 * with its 401/403 kept for `enforceAccess`: the rate limiter between them counts wrong keys per client IP.
 */
export function requireAccess(access: AccessControl, scope: Scope): RequestHandler {
  return (req: Request, res: Response, next) => {
    recordAccess(res, access.authorize(scope, presentedKey(req.headers)));
    next();
  };
}

/** Stores who the caller is, or an anonymous caller and the refusal `enforceAccess` answers with. */
export function recordAccess(res: Response, result: Caller | AppError): void {
  if (result instanceof AppError) {
    res.locals.caller = { principal: 'anonymous', authenticated: false } satisfies Caller;
    res.locals.denied = result;
  } else {
    res.locals.caller = result;
  }
}

/** Answers the 401/403 that `requireAccess` found, if any. */
export const enforceAccess: RequestHandler = (_req, res, next) => {
  next(res.locals.denied instanceof AppError ? res.locals.denied : undefined);
};
