import type { Duplex } from 'node:stream';

/*
 * Node's private API, in one place: test/integration/node-internals.test.ts fails when a Node upgrade changes it.
 */

/** What a connection's in-flight response tells: whether its head went out, and the request it answers. */
export interface InFlightResponse {
  headersSent?: boolean;
  req?: { method?: string };
}

/**
 * The response being written on this connection, if any: Node keeps it as the socket's `_httpMessage` while a request
 * is answered, and offers no public way to reach it from a `clientError` listener.
 */
export function responseInFlight(socket: Duplex): InFlightResponse | null {
  return (socket as Duplex & { _httpMessage?: InFlightResponse | null })._httpMessage ?? null;
}

/**
 * Whether an error is Node's own "the client went away mid-body" from reading a request (an `Error('aborted')`
 * with code ECONNRESET): Node gives it no class of its own.
 */
export function isRequestAborted(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { message, code } = error as { message?: unknown; code?: unknown };
  return message === 'aborted' && code === 'ECONNRESET';
}
