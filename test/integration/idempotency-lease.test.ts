import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { IdempotencyStore } from '../../src/exactly-once/idempotency-store';
import { getJson, startHarness, waitFor, type Harness } from '../support/harness';
import { storedPoints } from '../support/stored-history';
import { DEFAULT_REDIS_URL } from '../../src/config/config';

const REDIS_URL = process.env.REDIS_URL ?? DEFAULT_REDIS_URL;
const LEASE_MS = 1500;
const ROOT = path.resolve(__dirname, '../..');

/** Starts a holder process (test/support/idempotency-holder.ts) and resolves once it holds the key. */
function startHolder(namespace: string, key: string): Promise<ChildProcess> {
  // Node itself with tsx's loader, so the SIGKILL reaches the process that holds the key (the tsx command would
  // leave its node child running).
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'test/support/idempotency-holder.ts'), REDIS_URL, namespace, key, String(LEASE_MS)],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (data: Buffer) => {
      if (data.toString().includes('held')) resolve(child);
      else reject(new Error(`the holder said: ${data.toString()}`));
    });
    child.once('exit', (code) => reject(new Error(`the holder exited with ${code}`)));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('the lease on an Idempotency-Key in flight', () => {
  const namespace = `test-lease-${randomBytes(4).toString('hex')}`;
  const redis = new Redis(REDIS_URL);
  const store = new IdempotencyStore(redis, namespace, { leaseMs: LEASE_MS });

  afterAll(async () => {
    const keys = await redis.keys(`${namespace}:*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  it('when the process holding a key lives on, then the key stays in flight past its lease; once that process is killed, a resend gets it within the lease', async () => {
    const key = { scope: 'holder', key: 'lease-1' };
    const holder = await startHolder(namespace, key.key);
    try {
      // Three leases: renewed by the live holder all along.
      for (let check = 0; check < 6; check += 1) {
        expect((await store.begin(key)).state).toBe('in-flight');
        await sleep(LEASE_MS / 2);
      }
    } finally {
      holder.kill('SIGKILL');
    }
    const killedAt = Date.now();
    let begun = await store.begin(key);
    while (begun.state !== 'new' && Date.now() - killedAt < LEASE_MS * 3) {
      await sleep(100);
      begun = await store.begin(key);
    }
    expect(begun.state).toBe('new');
    expect(Date.now() - killedAt).toBeLessThanOrEqual(LEASE_MS + 500);
    if (begun.state === 'new') await store.release(begun.hold);
  });

  it('when a resend reaches the same process after the first request lost its key, then what the first one does later leaves the resend its key', async () => {
    const key = { scope: 'same-process', key: 'lease-2' };
    const first = await store.begin(key);
    if (first.state !== 'new') throw new Error(`the key was ${first.state}`);
    // The first request stalls past its lease (its renewals cannot reach Redis): its marker expires.
    await redis.del(first.hold.redisKey);
    const resend = await store.begin(key);
    if (resend.state !== 'new') throw new Error(`the resend found the key ${resend.state}`);
    // The stalled request comes back: its swap expects its own marker; storing its answer, releasing and completing
    // touch only its own.
    expect(store.completion(first.hold, 'fingerprint', { status: 202, body: {} }).expected).toBe(first.hold.marker);
    await store.complete(first.hold, 'fingerprint', { status: 202, body: {} });
    await store.release(first.hold);
    store.completed(first.hold);
    // The resend's marker is still there and still renewed, past several leases.
    for (let check = 0; check < 4; check += 1) {
      await sleep(LEASE_MS / 2);
      expect(await redis.get(resend.hold.redisKey)).toBe(resend.hold.marker);
    }
    await store.release(resend.hold);
    expect(await redis.get(resend.hold.redisKey)).toBeNull();
  });
});

describe('a streamed batch whose Idempotency-Key was taken over while it stalled', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness();
  });

  afterAll(async () => {
    await h.close();
  });

  it('when its key no longer holds its in-flight marker at commit, then it answers 409 and nothing of it is counted', async () => {
    const key = 'lease/taken-over';
    const lines = Array.from({ length: 50 }, (_, i) => `${JSON.stringify({ key, value: i + 1 })}\n`);
    const url = new URL('/api/data/ingest', h.baseUrl);
    const request = http.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', 'idempotency-key': 'taken-over-1' },
    });
    const answer = new Promise<{ status: number; body: any }>((resolve, reject) => {
      request.on('response', (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString()));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) }));
      });
      request.on('error', reject);
    });
    request.write(lines.slice(0, 25).join(''));
    // The request holds its key; a resend takes it over, as after this request stalled past its lease.
    const idemKey = await waitFor(async () => (await h.redis.keys(`${h.config.QUEUE_NAME}:idem:*`))[0], 10_000, 'the key in flight');
    await h.redis.set(idemKey, JSON.stringify({ inFlight: true, id: 'a-later-request' }), 'EX', 60);
    request.end(lines.slice(25).join(''));

    const { status, body } = await answer;
    expect(status).toBe(409);
    expect(body.error.code).toBe('IDEMPOTENCY_LEASE_EXPIRED');
    // Its chunks ran and found the batch uncommitted: nothing counted, nothing stored.
    await waitFor(async () => ((await h.api.queue.getJobCounts()).completed >= 1 ? true : undefined), 20_000, 'its chunk to run');
    expect((await getJson(h.baseUrl, `/api/data/stats/${encodeURIComponent(key)}`)).status).toBe(404);
    expect(await storedPoints(h.db, { key })).toBe(0);
    // The later request's marker is left as it was.
    expect(JSON.parse((await h.redis.get(idemKey)) ?? '{}')).toEqual({ inFlight: true, id: 'a-later-request' });
  });
});
