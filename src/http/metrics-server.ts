import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

/**
 * GET /metrics of a registry on `port`, for a process that serves nothing else (the worker). A port already taken
 * (a second worker on the machine) leaves the process without metrics, with a warning, rather than not started.
 */
export async function serveMetrics(registry: Registry, port: number, logger: Logger): Promise<HttpServer | undefined> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('Not found: the worker serves GET /metrics only.\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
      (error: unknown) => {
        logger.warn({ err: error }, 'metrics could not be collected');
        res.writeHead(500, { 'Content-Type': 'text/plain' }).end('metrics could not be collected\n');
      },
    );
  });
  const listening = await new Promise<boolean>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(false) : reject(error)));
    server.listen(port, () => resolve(true));
  });
  if (!listening) {
    logger.warn(
      { port },
      'METRICS_PORT is in use (another worker on this machine?): this worker serves no metrics; give each worker its own METRICS_PORT',
    );
    return undefined;
  }
  logger.info({ port: (server.address() as AddressInfo).port }, 'worker metrics on /metrics');
  return server;
}

export function closeServer(server: HttpServer | undefined): Promise<void> {
  return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
}
