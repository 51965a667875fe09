import { spawn } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createApiComponents, type ApiComponents } from '../../src/composition';
import { createLogger } from '../../src/logger';
import { postJson, startHarness, type Harness } from '../support/harness';

const ROOT = path.join(__dirname, '..', '..');

interface LoadTestExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The one-line JSON summary (`--json`), when it printed one. */
  summary: any;
  /** Progress and the readable summary. */
  stderr: string;
}

/**
 * `npm run load-test` as a user runs it: a process of its own, so a run that never ends shows as one that had to be
 * killed after `killAfterMs`. `onStderr` runs once, when stderr first matches its pattern.
 */
function runLoadTest(args: string[], killAfterMs: number, onStderr?: [RegExp, () => Promise<void>]): Promise<LoadTestExit> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'load-test.ts', '--json', ...args], {
    cwd: ROOT,
    env: { ...process.env, API_KEY: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let reacted: Promise<void> | undefined;
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    if (onStderr && !reacted && onStderr[0].test(stderr)) reacted = onStderr[1]();
  });
  const guard = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  return new Promise((resolve, reject) =>
    child.once('exit', (code, signal) => {
      clearTimeout(guard);
      const summaryLine = stdout.trim().split('\n').pop() ?? '';
      const summary: unknown = summaryLine.startsWith('{') ? JSON.parse(summaryLine) : undefined;
      (reacted ?? Promise.resolve()).then(() => resolve({ code, signal, summary, stderr }), reject);
    }),
  );
}

describe('npm run load-test against a real API', () => {
  let h: Harness | undefined;
  let restartedApi: ApiComponents | undefined;

  afterEach(async () => {
    await restartedApi?.close();
    restartedApi = undefined;
    await h?.close();
    h = undefined;
  });

  it('when its status reads run into the rate limit, then it waits the limit out, finishes EXACT and exits 0', async () => {
    // 80 requests, then at least 80 status reads: more than the minute allows, so the reads meet 429 once. Few keys,
    // so the batches are done within that minute on either profile (the MongoDB one forced on FerretDB costs per key).
    h = await startHarness({ RATE_LIMIT_PER_MINUTE: '100' });

    const exit = await runLoadTest(['--url', h.baseUrl, '--points', '8000', '--batch', '100', '--keys', '10', '--timeout', '120'], 140_000);

    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
    expect(exit.summary).toMatchObject({ exact: true, timedOut: false, acceptedPoints: 8000, countedPoints: 8000 });
    expect(exit.summary.statusRetries).toBeGreaterThan(0);
    expect(exit.stderr).toMatch(/last answer: 429/);
  }, 180_000);

  it('when no worker takes the batches, then it stops at --timeout, exits 1 and lists the pending batches with their last answer', async () => {
    h = await startHarness({}, { workers: 0 });

    const exit = await runLoadTest(['--url', h.baseUrl, '--points', '5000', '--batch', '500', '--timeout', '3'], 40_000);

    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 1, signal: null });
    expect(exit.summary).toMatchObject({ exact: false, timedOut: true, acceptedPoints: 5000, pendingBatches: 10 });
    expect(exit.summary.pending).toHaveLength(10);
    const [oldest] = exit.summary.pending;
    expect(oldest).toEqual({ batchId: expect.any(String), lastAnswer: 'queued' });
    expect(exit.stderr).toMatch(/TIMED OUT after 3 s of waiting with 10 batch\(es\) pending/);
    expect(exit.stderr).toContain(`${oldest.batchId}: queued`);
  });

  it('when the API restarts while it waits, then it reads the statuses again once the API is back, finishes EXACT and exits 0', async () => {
    const harness = await startHarness({}, { workers: 0 });
    h = harness;
    const port = Number(new URL(harness.baseUrl).port);
    const restart = async (): Promise<void> => {
      await harness.api.close();
      await sleep(1500);
      restartedApi = await createApiComponents(harness.config, createLogger('silent', 'test'));
      await restartedApi.listen(port);
      await harness.startWorker();
    };

    // The last progress line of the sending: every request was accepted and the wait has begun.
    const exit = await runLoadTest(['--url', harness.baseUrl, '--points', '5000', '--batch', '500', '--timeout', '30'], 50_000, [
      /sent [\d,]+ points, accepted/,
      restart,
    ]);

    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
    expect(exit.summary).toMatchObject({ exact: true, timedOut: false, countedPoints: 5000 });
    expect(exit.summary.statusRetries).toBeGreaterThan(0);
  });

  it('when the API refuses every request with 503 (its backlog full), then it gives up --timeout after the last accepted one and exits 1 saying why', async () => {
    // No worker, and a backlog already over its limit: two jobs (counted as 1000 points each) wait, the limit is 1000.
    h = await startHarness({ MAX_QUEUE_BACKLOG: '1000' }, { workers: 0 });
    const fill = Array.from({ length: 1001 }, (_, value) => ({ key: 'load-test-fill', value }));
    expect((await postJson(h.baseUrl, { points: fill })).status).toBe(202);
    // The API reads the backlog at most every 250 ms: the load test must meet a fresh read, not the one before the fill.
    await sleep(400);

    const exit = await runLoadTest(
      ['--url', h.baseUrl, '--points', '10000', '--batch', '500', '--concurrency', '1', '--timeout', '3'],
      40_000,
    );

    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 1, signal: null });
    expect(exit.stderr).toMatch(
      /load-test failed: POST \/api\/data\/ingest: nothing accepted for 3 s \(--timeout\); the last answer was 503/,
    );
  });
});
