import { createServer, type RequestListener, type Server } from 'node:http';
import { answerClientError } from './error-middleware';

/**
 * The API's HTTP server. A request whose body has not fully arrived within `requestTimeoutMs` is answered 408 and
 * its connection closed (slow or stalled uploads); Node checks every connectionsCheckingInterval, 30 s by default:
 * far too coarse here.
 */
export function createHttpServer(app: RequestListener, requestTimeoutMs: number): Server {
  const server = createServer(
    {
      requestTimeout: requestTimeoutMs,
      headersTimeout: Math.min(60_000, requestTimeoutMs),
      connectionsCheckingInterval: Math.min(1000, requestTimeoutMs / 2),
    },
    app,
  );
  // Requests Node refuses before Express (bad Content-Length, headers over 16 KiB, the 408 above) get the contract's
  // JSON error instead of an empty body; an Expect other than 100-continue is ignored instead of an empty 417.
  server.on('clientError', answerClientError);
  server.on('checkExpectation', app);
  return server;
}

/**
 * Stops accepting, drops idle keep-alive connections and lets in-flight requests finish (`closed`: the server's
 * close, Socket.io's included). A connection whose request finishes later turns idle too and is dropped within
 * 100 ms, not after the 5 s keep-alive timeout.
 */
export async function closeHttpServer(server: Server, closed: Promise<void>): Promise<void> {
  server.closeIdleConnections();
  const dropIdle = setInterval(() => server.closeIdleConnections(), 100);
  await closed.finally(() => clearInterval(dropIdle));
}
