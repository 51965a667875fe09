import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Queue from 'bull';
import { describe } from '../load-test';
export { freePort } from '../scripts/free-port';

export const ROOT = path.resolve(__dirname, '..');

// What a failing process last said goes into the error message; more would drown it.
const OUTPUT_TAIL_CHARS = 4000;
const STOP_TIMEOUT_MS = 15_000;

/** A child process of the bench, with the tail of its output kept for error messages. */
export class BenchProcess {
  private output = '';
  readonly exited: Promise<number | null>;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    const keep = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /** `node <args>` in the project directory. */
  static start(name: string, args: string[], env: NodeJS.ProcessEnv): BenchProcess {
    const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    return new BenchProcess(name, child);
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.name} did not start`);
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  describe(): string {
    return `${this.name} (pid ${this.child.pid ?? '?'}) said:\n${this.output.trim() || '(nothing)'}`;
  }

  /** Peak resident set size so far (VmHWM), in bytes; null once the process is gone. */
  peakRssBytes(): number | null {
    try {
      const status = fs.readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
      return match ? Number(match[1]) * 1024 : null;
    } catch {
      return null;
    }
  }

  /** SIGTERM (the processes shut down cleanly), SIGKILL if that takes too long. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = sleep(STOP_TIMEOUT_MS).then(() => 'timeout' as const);
    if ((await Promise.race([this.exited, timer])) === 'timeout') {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}

export async function stopAll(processes: readonly BenchProcess[]): Promise<void> {
  await Promise.all(processes.map((process) => process.stop()));
}

/** Waits until `url` answers 200, failing early when the process dies. */
export async function waitForHttp(url: string, process: BenchProcess, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = '';
  while (performance.now() < deadline) {
    if (!process.running) throw new Error(`${process.name} exited before ${url} answered.\n${process.describe()}`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await response.text();
      if (response.status === 200) return;
      last = `status ${response.status}`;
    } catch (error) {
      last = describe(error);
    }
    await sleep(200);
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs / 1000} s (${last}).\n${process.describe()}`);
}

/**
 * Waits until `count` processes take jobs from the queue: Bull names each
 * consumer's blocking connection after the queue, so CLIENT LIST shows them.
 */
export async function waitForConsumers(
  redisUrl: string,
  queueName: string,
  workers: readonly BenchProcess[],
  timeoutMs: number,
): Promise<void> {
  const queue = new Queue(queueName, redisUrl);
  try {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const dead = workers.find((worker) => !worker.running);
      if (dead) throw new Error(`${dead.name} exited before taking jobs.\n${dead.describe()}`);
      const consumers = await queue.getWorkers();
      if (consumers.length >= workers.length) return;
      if (performance.now() >= deadline) {
        throw new Error(`${consumers.length} of ${workers.length} workers took jobs within ${timeoutMs / 1000} s`);
      }
      await sleep(200);
    }
  } finally {
    await queue.close();
  }
}
