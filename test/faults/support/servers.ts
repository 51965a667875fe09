import fs, { type WriteStream } from 'node:fs';
import path from 'node:path';
import { probeMongo, probeRedis, type Probe } from '../../../scripts/stack/endpoints';
import { ferretdbArgs, resolveFerretdb } from '../../../scripts/stack/ferretdb';
import { redisServerArgs, SERVER_READY_TIMEOUT_MS, waitUntilUp, which } from '../../../scripts/stack/processes';
import { Child } from './child';

/**
 * A back-end server of the suite's own (own port, own data directory), which a scenario can kill and start again
 * on the same data.
 */
abstract class ServerProcess {
  private child: Child | undefined;

  protected constructor(
    readonly name: string,
    readonly port: number,
    protected readonly dataDir: string,
    private readonly log: WriteStream,
    private readonly pidFile: string,
  ) {}

  protected abstract command(): Promise<{ bin: string; args: string[] }>;
  protected abstract probe(): Promise<Probe>;

  get running(): boolean {
    return this.child?.running ?? false;
  }

  /** Starts the server on its data directory (kept across restarts) and waits until it answers. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running`);
    if ((await this.probe()).state === 'up') throw new Error(`something else already answers on port ${this.port}; stop it first`);
    fs.mkdirSync(this.dataDir, { recursive: true });
    const { bin, args } = await this.command();
    const child = await Child.spawn(this.name, bin, args, { log: this.log, pidFile: this.pidFile });
    this.child = child;
    const waited = await waitUntilUp(
      () => this.probe(),
      () => !child.running,
      SERVER_READY_TIMEOUT_MS,
    );
    if (waited.result === 'exited') throw new Error(`${this.name} exited before it answered (${JSON.stringify(child.exitStatus)})`);
    if (waited.result === 'timeout') throw new Error(`${this.name} did not answer within ${SERVER_READY_TIMEOUT_MS} ms: ${waited.last}`);
  }

  /** Kills the server (SIGKILL: a crash, nothing flushed on the way out) and waits until it is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.child?.stop(signal);
  }
}

/** redis-server with AOF and `appendfsync always`: every acknowledged write survives a kill. */
export class RedisServer extends ServerProcess {
  constructor(port: number, dataDir: string, log: WriteStream, pidFile: string) {
    super('redis', port, dataDir, log, pidFile);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  protected command(): Promise<{ bin: string; args: string[] }> {
    const bin = which('redis-server');
    if (!bin) throw new Error('redis-server is not on PATH');
    const settings = {
      port: String(this.port),
      bind: '127.0.0.1',
      daemonize: 'no',
      appendonly: 'yes',
      appendfsync: 'always',
      save: '',
      dir: this.dataDir,
      'maxmemory-policy': 'noeviction',
    };
    return Promise.resolve({ bin, args: redisServerArgs(settings) });
  }

  protected probe(): Promise<Probe> {
    return probeRedis(this.url, 500);
  }
}

/** FerretDB v1.24.2 on SQLite (built or reused by scripts/stack/ferretdb.ts), with its own data directory. */
export class FerretServer extends ServerProcess {
  constructor(port: number, dataDir: string, log: WriteStream, pidFile: string) {
    super('ferretdb', port, dataDir, log, pidFile);
  }

  uri(database: string): string {
    return `mongodb://127.0.0.1:${this.port}/${database}`;
  }

  protected async command(): Promise<{ bin: string; args: string[] }> {
    const bin = await resolveFerretdb((message) => this.logLine(message));
    if (!bin) throw new Error('neither ferretdb nor go (to build it) is on PATH');
    const sqlite = path.join(this.dataDir, 'sqlite');
    const state = path.join(this.dataDir, 'state');
    fs.mkdirSync(sqlite, { recursive: true });
    fs.mkdirSync(state, { recursive: true });
    return { bin, args: ferretdbArgs({ listen: `127.0.0.1:${this.port}`, stateDir: state, backend: { sqliteDir: sqlite } }) };
  }

  protected probe(): Promise<Probe> {
    return probeMongo(this.uri('admin'), 500);
  }

  private logLine(message: string): void {
    process.stderr.write(`[faults] ${message}\n`);
  }
}
