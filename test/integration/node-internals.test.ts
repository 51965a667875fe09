import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { isRequestAborted, responseInFlight } from '../../src/http/node-internals';

/** A tripwire for Node's private API (src/http/node-internals.ts): fails when a Node upgrade changes it. */
describe("Node's private API, as this service uses it", () => {
  it('when a request is being answered, then its connection names the response, with its request and whether its head went out', async () => {
    const seen: { before: unknown; after: unknown; method: unknown; idle: unknown }[] = [];
    const server = http.createServer((req, res) => {
      const before = responseInFlight(req.socket)?.headersSent;
      res.writeHead(200);
      seen.push({
        before,
        after: responseInFlight(req.socket)?.headersSent,
        method: responseInFlight(req.socket)?.req?.method,
        idle: null,
      });
      res.end('ok', () => {
        const last = seen[seen.length - 1];
        if (last) last.idle = responseInFlight(req.socket);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      await (await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: 'x' })).text();
      expect(seen).toEqual([{ before: false, after: true, method: 'POST', idle: null }]);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('when the client goes away mid-body, then reading the request fails with the error Node reports for it', async () => {
    const failures: unknown[] = [];
    const received: Buffer[] = [];
    const read = new Promise<void>((resolve) => {
      const server = http.createServer((req) => {
        // Read as the ingest edge reads a body: by iterating the request.
        const drain = async (): Promise<void> => {
          try {
            for await (const part of req) received.push(part as Buffer);
          } catch (error) {
            failures.push(error);
          }
          server.close();
          resolve();
        };
        void drain();
      });
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npart of the body');
          setTimeout(() => socket.destroy(), 50);
        });
      });
    });
    await read;
    expect(Buffer.concat(received).toString()).toBe('part of the body');
    expect(failures).toHaveLength(1);
    expect(isRequestAborted(failures[0])).toBe(true);
    expect(isRequestAborted(new Error('aborted'))).toBe(false);
  });
});
