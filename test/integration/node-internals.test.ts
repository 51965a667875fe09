import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { responseInFlight } from '../../src/http/node-internals';

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
});
