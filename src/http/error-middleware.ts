import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { ZodError } from 'zod';
import { AppError } from '../domain/errors';
import { isRedisUnavailable } from '../queue/redis';
import { isRequestAborted, responseInFlight } from './node-internals';

// MongoDB driver failures that mean "the store is down", not "a bug": answered 503, retryable (Redis's: redis.ts).
const UNAVAILABLE_ERRORS = new Set([
  'MongoServerSelectionError',
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoNotConnectedError',
  'MongoTopologyClosedError',
]);

function isUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return UNAVAILABLE_ERRORS.has(error.name) || isRedisUnavailable(error);
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
  // A client that went away mid-body (bodies are read as streams: Node's own error arrives here).
  if (isRequestAborted(error)) {
    return new AppError(400, 'REQUEST_ABORTED', 'The request was aborted before its body was complete.');
  }
  if (error instanceof URIError) {
    return new AppError(400, 'INVALID_PATH', 'The URL is not valid percent-encoding; encode keys with encodeURIComponent.');
  }
  const { status } = typeof error === 'object' && error !== null ? (error as { status?: unknown }) : {};
  // Conditional and range requests for the live page, refused by Express's static file sender.
  if (status === 412) {
    return new AppError(
      412,
      'PRECONDITION_FAILED',
      'The If-Match or If-Unmodified-Since condition does not hold; drop it to get the page.',
    );
  }
  if (status === 416) {
    return new AppError(
      416,
      'RANGE_NOT_SATISFIABLE',
      'The Range header asks for bytes the page does not have; drop it to get the whole page.',
    );
  }
  // Any other client error with a status (http-errors' shape): what the client sent could not be read.
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new AppError(400, 'UNREADABLE_BODY', 'The request body could not be read; check its Content-Encoding and Content-Length.');
  }
  if (isUnavailable(error)) {
    return new AppError(503, 'SERVICE_UNAVAILABLE', 'A storage service is unavailable; retry after the delay in Retry-After.', undefined, {
      'Retry-After': '5',
    });
  }
  return new AppError(500, 'INTERNAL', 'Something went wrong on our side; the error was logged.');
}

/**
 * An error handler that answers every error with `render(appError)` as JSON, with its status and headers; the
 * contract's `{"error": {...}}` by default (errorMiddleware), InfluxDB's shape on its write endpoints.
 */
export function errorHandler(render: (appError: AppError) => unknown): ErrorRequestHandler {
  // Express recognises an error handler by its four parameters, so `next` stays although it is unused.
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  return (error, req, res, _next) => {
    const appError = toAppError(error);
    if (appError.status === 503) req.log.warn({ code: appError.code, err: (error as Error).message }, 'dependency unavailable');
    else if (appError.status >= 500) req.log.error({ err: error }, 'request failed');
    else req.log.info({ code: appError.code, status: appError.status }, 'request rejected');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    for (const [name, value] of Object.entries(appError.headers ?? {})) res.setHeader(name, value);
    // Set outright: a handler that failed half-way (the file sender) may have set another type already, which json() keeps.
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.status(appError.status).json(render(appError));
  };
}

export const errorMiddleware = errorHandler((appError) => {
  const body: { code: string; message: string; details?: unknown[] } = { code: appError.code, message: appError.message };
  if (appError.details) body.details = appError.details;
  return { error: body };
});

export const notFoundMiddleware: RequestHandler = (req, _res, next) => {
  next(new AppError(404, 'NOT_FOUND', `No route for ${req.method} ${req.path}; see the API reference in the README.`));
};

// Node answers these itself, before Express sees the request, with an empty body; the contract wants its error body.
const CLIENT_ERRORS: Record<string, [number, string, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'HEADERS_TOO_LARGE', 'The request line and headers are over 16 KiB; send a shorter URL and fewer headers.'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'REQUEST_TIMEOUT', 'The request did not arrive in time; send the whole body without long pauses.'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'BODY_TOO_LARGE', 'The chunk extensions of the body are too large.'],
};
const MALFORMED_REQUEST: [number, string, string] = [
  400,
  'MALFORMED_REQUEST',
  'The request is not valid HTTP; check its Content-Length and Transfer-Encoding headers.',
];

/**
 * The HTTP server's `clientError` listener: a request Node could not parse
 * (a Content-Length that is not a number, headers over 16 KiB, a body that
 * timed out) gets the contract's JSON error and the connection is closed,
 * as Node does by default, only with a body. A connection whose response has
 * already started is only closed: a second status line would corrupt it.
 */
export function answerClientError(error: Error & { code?: string; rawPacket?: unknown }, socket: Duplex): void {
  // Set while a request of this connection is being answered (its body timed out, or bytes after it are garbage).
  const inFlight = responseInFlight(socket);
  if (!socket.writable || inFlight?.headersSent === true) {
    socket.destroy();
    return;
  }
  const [status, code, message] = CLIENT_ERRORS[error.code ?? ''] ?? MALFORMED_REQUEST;
  const body = JSON.stringify({ error: { code, message } });
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
  ];
  // The answer to a HEAD request has no body, or the client would read it as the start of another response.
  const rawStart = Buffer.isBuffer(error.rawPacket) ? error.rawPacket.toString('latin1', 0, 5) : '';
  const isHead = inFlight?.req?.method === 'HEAD' || (!inFlight && rawStart === 'HEAD ');
  const answer = `${head.join('\r\n')}\r\n\r\n${isHead ? '' : body}`;
  socket.end(answer, () => socket.destroy());
}
