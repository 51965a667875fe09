import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { redisDurabilityWarning } from '../../scripts/redis-durability';
import { freePort } from '../../scripts/free-port';

const started: ChildProcess[] = [];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'redis-durability-'));

/** A redis-server of the test's own, on a free port, with appendonly as given. */
async function redisWith(appendonly: 'yes' | 'no'): Promise<string> {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--appendonly', appendonly, '--dir', dir, '--save', ''], {
    stdio: 'ignore',
  });
  started.push(child);
  const url = `redis://127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false });
    try {
      await probe.connect();
      await probe.ping();
      return url;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      probe.disconnect();
    }
  }
  throw new Error(`redis-server on ${port} did not answer`);
}

afterAll(() => {
  for (const child of started) child.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('npm start and the Redis it reuses', () => {
  it('when the Redis keeps no append-only file, then start warns that queued points are lost on a restart', async () => {
    const url = await redisWith('no');
    expect(await redisDurabilityWarning(url)).toMatch(/keeps no append-only file \(appendonly no\): queued points are lost if it restarts/);
  });

  it('when the Redis has an append-only file, then start says nothing', async () => {
    const url = await redisWith('yes');
    expect(await redisDurabilityWarning(url)).toBeUndefined();
  });
});
