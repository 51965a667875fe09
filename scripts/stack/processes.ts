import fs from 'node:fs';
import path from 'node:path';
import type { Probe } from './endpoints';

/*
 * Process handling shared by the stack (scripts/stack.ts) and the fault suite (test/faults/support/servers.ts).
 */

const STOP_TIMEOUT_MS = 10_000;

/** A started Redis or FerretDB answers within this (FerretDB on a large SQLite file takes the longest). */
export const SERVER_READY_TIMEOUT_MS = 30_000;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, cmd);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

export function isExecutableFile(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: the pid exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // A zombie still accepts signal 0 but is gone for our purposes.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/**
 * Whether `pid` still runs the program `bin` that was started under it (a recycled pid belongs to another program):
 * undefined when this system cannot tell (no /proc), and each caller decides whether to trust the pid then.
 */
export function isOurProcess(pid: number, bin: string): boolean | undefined {
  if (!isAlive(pid)) return false;
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(path.basename(bin));
  } catch {
    return undefined;
  }
}

/** Probes until the server answers, its process exits, or `timeoutMs` passes; `last` is the last probe's detail. */
export async function waitUntilUp(
  probe: (timeoutMs: number) => Promise<Probe>,
  exited: () => boolean,
  timeoutMs: number,
): Promise<{ result: 'up' | 'exited' | 'timeout'; last: string }> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (exited()) return { result: 'exited', last };
    const p = await probe(500);
    if (p.state === 'up') return { result: 'up', last };
    last = p.detail;
    await sleep(200);
  }
  return { result: 'timeout', last };
}

/** SIGTERM, then SIGKILL after STOP_TIMEOUT_MS; resolves once the process is gone. */
export async function terminate(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return;
    await sleep(100);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  for (let i = 0; i < 50 && isAlive(pid); i++) await sleep(100);
}

/** The settings of a redis-server command line (`--<name> <value>` each). */
export function redisServerArgs(settings: Record<string, string>): string[] {
  return Object.entries(settings).flatMap(([key, value]) => [`--${key}`, value]);
}
