import { PassThrough } from 'node:stream';
import type { NextFunction, Request, Response } from 'express';
import { z } from 'zod';
import { AppError } from '../../src/domain/errors';
import { answerClientError, errorMiddleware, toAppError } from '../../src/http/error-middleware';

const GENERIC_MESSAGE = 'Something went wrong on our side; the error was logged.';

function zodErrorOf(schema: z.ZodType, input: unknown): z.ZodError {
  const result = schema.safeParse(input);
  if (result.success) throw new Error('expected the schema to reject the input');
  return result.error;
}

describe('toAppError', () => {
  it('when the error is already an AppError, then it is answered as it is', () => {
    const error = new AppError(409, 'IDEMPOTENCY_IN_FLIGHT', 'retry later', undefined, { 'Retry-After': '1' });
    expect(toAppError(error)).toBe(error);
  });

  it('when zod rejects an input, then it is a 400 VALIDATION_FAILED with one detail per issue and their paths in the message', () => {
    const error = zodErrorOf(z.strictObject({ limit: z.number(), key: z.string().min(1, 'key must not be empty') }), {
      limit: 'x',
      key: '',
    });
    const appError = toAppError(error);
    expect(appError).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
    expect(appError.details).toEqual([
      { path: 'limit', message: expect.any(String) },
      { path: 'key', message: 'key must not be empty' },
    ]);
    expect(appError.message).toMatch(/^Invalid request: limit: .+; key: key must not be empty$/);
  });

  it('when zod rejects a value at the top level, then the message has no empty path', () => {
    const appError = toAppError(zodErrorOf(z.string({ error: 'must be text' }), 5));
    expect(appError.message).toBe('Invalid request: must be text');
    expect(appError.details).toEqual([{ path: '', message: 'must be text' }]);
  });

  it('when a client error with a status arrives (http-errors), then it is a 400 UNREADABLE_BODY without its message', () => {
    const appError = toAppError(Object.assign(new Error('request size did not match content length'), { status: 400, expose: true }));
    expect(appError).toMatchObject({ status: 400, code: 'UNREADABLE_BODY' });
    expect(appError.message).not.toContain('content length');
  });

  it.each([
    ['a MongoServerSelectionError', Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:27017'), { name: 'MongoServerSelectionError' })],
    ['a MongoNetworkError', Object.assign(new Error('connection 3 to db closed'), { name: 'MongoNetworkError' })],
    [
      'a MaxRetriesPerRequestError',
      Object.assign(new Error('Reached the max retries per request limit'), { name: 'MaxRetriesPerRequestError' }),
    ],
    ['a closed Redis connection', new Error('Connection is closed.')],
    [
      'a refused connection',
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED', errno: -111, syscall: 'connect' }),
    ],
  ])('when %s reaches the edge, then it is a 503 with Retry-After that names no driver', (_case, error) => {
    const appError = toAppError(error);
    expect(appError).toMatchObject({ status: 503, code: 'SERVICE_UNAVAILABLE', headers: { 'Retry-After': '5' } });
    expect(appError.message).toMatch(/retry after the delay in Retry-After/);
    expect(appError.message).not.toMatch(/mongo|redis|ECONNREFUSED|27017|6379/i);
  });

  it.each([
    ['a TypeError', new TypeError("Cannot read properties of undefined (reading 'points')")],
    ['an error holding a connection string', new Error('auth failed for mongodb://admin:s3cret@db.internal:27017/realtime')],
    ['an error with a 500 status', Object.assign(new Error('boom'), { status: 500 })],
    ['a thrown string', 'something broke'],
    ['a thrown number', 42],
    ['null', null],
    ['undefined', undefined],
    ['an object with a non-numeric status', { status: '400', message: 'no' }],
  ])('when %s reaches the edge, then it is a 500 INTERNAL with a generic message that leaks nothing', (_case, error) => {
    const appError = toAppError(error);
    expect(appError).toMatchObject({ status: 500, code: 'INTERNAL', message: GENERIC_MESSAGE });
    expect(appError.details).toBeUndefined();
  });
});

describe('toAppError: the live page refusing a conditional or range request', () => {
  it.each([
    [412, 'PRECONDITION_FAILED', /If-Match or If-Unmodified-Since/],
    [416, 'RANGE_NOT_SATISFIABLE', /Range header/],
  ])(
    'when the file sender fails with %s, then it keeps that status with a message about the header, not about a body',
    (status, code, fix) => {
      const appError = toAppError(Object.assign(new Error('send error'), { status, statusCode: status, expose: true }));
      expect(appError).toMatchObject({ status, code });
      expect(appError.message).toMatch(fix);
      expect(appError.message).not.toMatch(/body/);
    },
  );
});

describe('errorMiddleware', () => {
  function fakeExchange(headersSent = false) {
    const log = { info: jest.fn(), warn: jest.fn(), error: jest.fn() };
    const req = { log } as unknown as Request;
    const res = {
      headersSent,
      statusCode: 200,
      headers: {} as Record<string, string>,
      body: undefined as unknown,
      destroyed: false,
      setHeader(name: string, value: string) {
        this.headers[name] = value;
        return this;
      },
      status(code: number) {
        this.statusCode = code;
        return this;
      },
      json(body: unknown) {
        this.body = body;
        return this;
      },
      destroy() {
        this.destroyed = true;
      },
    };
    return { req, res, log };
  }

  const next: NextFunction = () => undefined;

  it('when an unknown error reaches it, then the answer is a 500 with the contract body and the error is logged once', () => {
    const { req, res, log } = fakeExchange();
    const error = new Error('E11000 duplicate key error collection: realtime.aggregates');

    errorMiddleware(error, req, res as unknown as Response, next);

    expect(res.statusCode).toBe(500);
    expect(res.body).toEqual({ error: { code: 'INTERNAL', message: GENERIC_MESSAGE } });
    expect(JSON.stringify(res.body)).not.toMatch(/E11000|aggregates|realtime/);
    expect(log.error).toHaveBeenCalledTimes(1);
    expect(log.error).toHaveBeenCalledWith({ err: error }, 'request failed');
  });

  it('when an AppError with details and headers reaches it, then both are in the answer', () => {
    const { req, res, log } = fakeExchange();
    const details = [{ index: 0, message: 'value is required' }];

    errorMiddleware(
      new AppError(400, 'NO_VALID_POINTS', 'No valid point.', details, { 'X-Hint': 'split' }),
      req,
      res as unknown as Response,
      next,
    );

    expect(res.statusCode).toBe(400);
    expect(res.headers).toEqual({ 'X-Hint': 'split', 'Content-Type': 'application/json; charset=utf-8' });
    expect(res.body).toEqual({ error: { code: 'NO_VALID_POINTS', message: 'No valid point.', details } });
    expect(log.info).toHaveBeenCalledTimes(1);
    expect(log.error).not.toHaveBeenCalled();
  });

  it('when a dependency is down, then the answer is a 503 with Retry-After and a warning is logged', () => {
    const { req, res, log } = fakeExchange();

    errorMiddleware(Object.assign(new Error('down'), { name: 'MongoNetworkError' }), req, res as unknown as Response, next);

    expect(res.statusCode).toBe(503);
    expect(res.headers).toEqual({ 'Retry-After': '5', 'Content-Type': 'application/json; charset=utf-8' });
    expect(log.warn).toHaveBeenCalledTimes(1);
  });

  it('when the failing handler had already set another Content-Type (the live page), then the error is still sent as JSON', () => {
    const { req, res } = fakeExchange();
    res.setHeader('Content-Type', 'text/html; charset=UTF-8');

    errorMiddleware(Object.assign(new Error('Precondition Failed'), { status: 412, expose: true }), req, res as unknown as Response, next);

    expect(res.statusCode).toBe(412);
    expect(res.headers['Content-Type']).toBe('application/json; charset=utf-8');
    expect(res.body).toEqual({ error: { code: 'PRECONDITION_FAILED', message: expect.stringMatching(/If-Match/) } });
  });

  it('when the response has already started, then the connection is cut instead of writing a second body', () => {
    const { req, res } = fakeExchange(true);

    errorMiddleware(new Error('late failure'), req, res as unknown as Response, next);

    expect(res.destroyed).toBe(true);
    expect(res.body).toBeUndefined();
  });
});

describe('answerClientError (requests Node refuses before Express)', () => {
  /** A socket that records what is written to it. */
  function fakeSocket(inFlight?: { headersSent: boolean; req: { method: string } }): { socket: PassThrough; written: () => string } {
    const socket = new PassThrough();
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    if (inFlight) Object.assign(socket, { _httpMessage: inFlight });
    return { socket, written: () => Buffer.concat(chunks).toString('latin1') };
  }

  const parseError = (code: string, raw = 'POST / HTTP/1.1\r\n'): Error =>
    Object.assign(new Error('Parse Error'), { code, rawPacket: Buffer.from(raw) });

  async function answerOf(
    error: Error,
    inFlight?: { headersSent: boolean; req: { method: string } },
  ): Promise<{ head: string; body: string; destroyed: boolean }> {
    const { socket, written } = fakeSocket(inFlight);
    answerClientError(error, socket);
    await new Promise((resolve) => setImmediate(resolve));
    const [head = '', body = ''] = written().split('\r\n\r\n');
    return { head, body, destroyed: socket.destroyed };
  }

  it.each([
    ['HPE_INVALID_CONTENT_LENGTH', 400, 'MALFORMED_REQUEST', /Content-Length/],
    ['HPE_UNEXPECTED_CONTENT_LENGTH', 400, 'MALFORMED_REQUEST', /Transfer-Encoding/],
    ['HPE_HEADER_OVERFLOW', 431, 'HEADERS_TOO_LARGE', /16 KiB/],
    ['ERR_HTTP_REQUEST_TIMEOUT', 408, 'REQUEST_TIMEOUT', /in time/],
  ])(
    'when Node cannot take a request (%s), then it is a %s with the contract body and the connection closes',
    async (code, status, errorCode, fix) => {
      const { head, body, destroyed } = await answerOf(parseError(code));
      expect(head).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      expect(head).toContain('Content-Type: application/json');
      expect(head).toContain('Connection: close');
      expect(JSON.parse(body)).toEqual({ error: { code: errorCode, message: expect.stringMatching(fix) } });
      expect(head).toContain(`Content-Length: ${Buffer.byteLength(body)}`);
      expect(destroyed).toBe(true);
    },
  );

  it('when the refused request is a HEAD, then the answer has no body (the client would read it as another response)', async () => {
    const { head, body } = await answerOf(parseError('HPE_INVALID_CONTENT_LENGTH', 'HEAD / HTTP/1.1\r\n'));
    expect(head).toMatch(/^HTTP\/1\.1 400 /);
    expect(body).toBe('');
  });

  it('when a HEAD request of the connection is being answered, then the answer has no body either', async () => {
    const { head, body } = await answerOf(parseError('ERR_HTTP_REQUEST_TIMEOUT'), { headersSent: false, req: { method: 'HEAD' } });
    expect(head).toMatch(/^HTTP\/1\.1 408 /);
    expect(body).toBe('');
  });

  it('when the response of the connection has already started, then the connection is only closed', async () => {
    const { head, destroyed } = await answerOf(parseError('HPE_INVALID_CONSTANT'), { headersSent: true, req: { method: 'GET' } });
    expect(head).toBe('');
    expect(destroyed).toBe(true);
  });
});
