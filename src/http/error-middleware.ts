import type { ErrorRequestHandler, RequestHandler } from 'express';
import { ZodError } from 'zod';
import { AppError } from '../domain/errors';

interface BodyParserError {
  type: string;
  status?: number;
}

function isBodyParserError(error: unknown): error is BodyParserError {
  return typeof error === 'object' && error !== null && typeof (error as { type?: unknown }).type === 'string';
}

// Driver and client failures that mean "a dependency is down", not "a bug": answered 503, retryable.
const UNAVAILABLE_ERRORS = new Set([
  'MongoServerSelectionError',
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoNotConnectedError',
  'MongoTopologyClosedError',
  'MaxRetriesPerRequestError',
]);

/** A client that went away mid-body (NDJSON is read by hand, so Node's own errors arrive here). */
function isAborted(error: unknown): boolean {
  if (isBodyParserError(error) && error.type === 'request.aborted') return true;
  if (!(error instanceof Error)) return false;
  // Node's IncomingMessage fails with "aborted" when the client goes away mid-body.
  return error.message === 'aborted';
}

function isUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return UNAVAILABLE_ERRORS.has(error.name) || /Connection is closed|Stream isn't writeable|ECONNREFUSED/.test(error.message);
}

/** Maps any error to the contract's error body. Unknown errors are logged once and answered generically. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof ZodError) {
    const details = error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }));
    return new AppError(
      400,
      'VALIDATION_FAILED',
      `Invalid request: ${details.map((d) => (d.path ? `${d.path}: ${d.message}` : d.message)).join('; ')}`,
      details,
    );
  }
  if (isAborted(error)) {
    return new AppError(400, 'REQUEST_ABORTED', 'The request was aborted before its body was complete.');
  }
  if (isBodyParserError(error)) {
    switch (error.type) {
      case 'entity.too.large':
        return new AppError(413, 'BODY_TOO_LARGE', 'The request body is over the size limit; send fewer points per request.');
      case 'entity.parse.failed':
        return new AppError(400, 'MALFORMED_JSON', 'The request body is not valid JSON (it must be an object or an array).');
      case 'encoding.unsupported':
      case 'charset.unsupported':
        return new AppError(415, 'UNSUPPORTED_ENCODING', 'Send the body as UTF-8, optionally compressed with gzip, deflate or br.');
    }
  }
  if (error instanceof URIError) {
    return new AppError(400, 'INVALID_PATH', 'The URL is not valid percent-encoding; encode keys with encodeURIComponent.');
  }
  const { code, status } = typeof error === 'object' && error !== null ? (error as { code?: unknown; status?: unknown }) : {};
  // Decompression errors: zlib's own (NDJSON) carry a Z_* code, body-parser's a 4xx status but no type.
  const isZlibError = typeof code === 'string' && code.startsWith('Z_');
  if (isZlibError || (typeof status === 'number' && status >= 400 && status < 500)) {
    return new AppError(400, 'UNREADABLE_BODY', 'The request body could not be read; check its Content-Encoding and Content-Length.');
  }
  if (isUnavailable(error)) {
    return new AppError(503, 'SERVICE_UNAVAILABLE', 'A storage service is unavailable; retry after the delay in Retry-After.', undefined, {
      'Retry-After': '5',
    });
  }
  return new AppError(500, 'INTERNAL', 'Something went wrong on our side; the error was logged.');
}

// Express recognises an error handler by its four parameters, so `next` stays although it is unused.
// eslint-disable-next-line @typescript-eslint/no-unused-vars
export const errorMiddleware: ErrorRequestHandler = (error, req, res, _next) => {
  const appError = toAppError(error);
  if (appError.status === 503) req.log.warn({ code: appError.code, err: (error as Error).message }, 'dependency unavailable');
  else if (appError.status >= 500) req.log.error({ err: error }, 'request failed');
  else req.log.info({ code: appError.code, status: appError.status }, 'request rejected');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  for (const [name, value] of Object.entries(appError.headers ?? {})) res.setHeader(name, value);
  const body: { code: string; message: string; details?: unknown[] } = { code: appError.code, message: appError.message };
  if (appError.details) body.details = appError.details;
  res.status(appError.status).json({ error: body });
};

export const notFoundMiddleware: RequestHandler = (req, _res, next) => {
  next(new AppError(404, 'NOT_FOUND', `No route for ${req.method} ${req.path}; see the API reference in the README.`));
};
