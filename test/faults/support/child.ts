import { spawn, type ChildProcess } from 'node:child_process';
import fs, { type WriteStream } from 'node:fs';
import readline from 'node:readline';
import { isOurProcess } from '../../../scripts/stack/processes';

// Above the processes' SHUTDOWN_TIMEOUT_MS (10 s): a graceful stop the suite checks is never cut short by SIGKILL.
const CHILD_STOP_TIMEOUT_MS = 15_000;

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ChildOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Every line of stdout and stderr goes here, prefixed with the child's name. */
  log: WriteStream;
  /** Where the pid is recorded, so a later run can stop what a run that was itself killed left behind. */
  pidFile: string;
}

/**
 * A process the fault suite started and owns: its output goes to the scenario's log, it can be killed with any
 * signal, and `exited` tells how it ended. Never detached, so nothing outlives the suite unless Jest itself is killed.
 */
export class Child {
  readonly exited: Promise<ExitStatus>;
  private status: ExitStatus | undefined;
  private readonly listeners = new Set<(line: string) => void>();

  private constructor(
    readonly name: string,
    private readonly process: ChildProcess,
    private readonly log: WriteStream,
  ) {
    this.exited = new Promise((resolve) => {
      // 'close', not 'exit': every line of its output has been read by then.
      process.once('close', (code, signal) => {
        this.status = { code, signal };
        this.write(`exited (${signal ? `signal ${signal}` : `code ${code}`})`);
        resolve(this.status);
      });
    });
    for (const stream of [process.stdout, process.stderr]) {
      if (!stream) continue;
      readline.createInterface({ input: stream }).on('line', (line) => {
        this.write(line);
        for (const listener of this.listeners) listener(line);
      });
    }
  }

  /** Starts `bin` and resolves once the OS has started it (not once it is ready: see `waitForLine`). */
  static async spawn(name: string, bin: string, args: readonly string[], options: ChildOptions): Promise<Child> {
    const child = spawn(bin, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    fs.appendFileSync(options.pidFile, `${child.pid ?? ''} ${bin}\n`);
    const owned = new Child(name, child, options.log);
    owned.write(`started: ${bin} ${args.join(' ')} (pid ${child.pid ?? '?'})`);
    return owned;
  }

  get pid(): number {
    const pid = this.process.pid;
    if (pid === undefined) throw new Error(`${this.name} has no pid`);
    return pid;
  }

  get running(): boolean {
    return this.status === undefined;
  }

  get exitStatus(): ExitStatus | undefined {
    return this.status;
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.running) return;
    this.write(`sending ${signal}`);
    this.process.kill(signal);
  }

  /** Sends `signal` and waits for the exit; SIGKILL after `timeoutMs` if it is still running. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = CHILD_STOP_TIMEOUT_MS): Promise<ExitStatus> {
    if (this.status) return this.status;
    this.signal(signal);
    const timer = setTimeout(() => this.signal('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves with the first output line that matches, or fails after `timeoutMs` or when the process exits first. */
  waitForLine(matches: (line: string) => boolean, timeoutMs: number, what: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const done = (error: Error | undefined, line?: string): void => {
        clearTimeout(timer);
        this.listeners.delete(listener);
        if (error) reject(error);
        else resolve(line ?? '');
      };
      const listener = (line: string): void => {
        if (matches(line)) done(undefined, line);
      };
      const timer = setTimeout(() => done(new Error(`${this.name}: no ${what} within ${timeoutMs} ms`)), timeoutMs);
      this.listeners.add(listener);
      void this.exited.then((status) => done(new Error(`${this.name} exited (${JSON.stringify(status)}) before ${what}`)));
    });
  }

  private write(line: string): void {
    this.log.write(`${new Date().toISOString()} [${this.name}] ${line}\n`);
  }
}

/**
 * SIGKILLs the processes an earlier run recorded in `pidFile` that still run the binary it started (a run that
 * was itself killed, so its afterAll never ran). A pid now used by another program is left alone.
 */
export function killLeftovers(pidFile: string): number {
  let lines: string[];
  try {
    lines = fs.readFileSync(pidFile, 'utf8').split('\n');
  } catch {
    return 0;
  }
  let killed = 0;
  for (const line of lines) {
    const [pidText = '', bin = ''] = line.split(' ');
    const pid = Number(pidText);
    if (!Number.isInteger(pid) || pid <= 0 || !bin) continue;
    // Only a pid known to run it still: SIGKILL on a guess could hit another program.
    if (isOurProcess(pid, bin) !== true) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed += 1;
    } catch {
      // Gone meanwhile.
    }
  }
  return killed;
}
