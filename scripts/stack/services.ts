import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  errorMessage,
  hostPort,
  isLoopback,
  listenHost,
  parseMongoUri,
  parseRedisUrl,
  probeMongo,
  probeRedis,
  redact,
  type Endpoint,
  type Probe,
} from './endpoints';
import { ferretdbArgs, resolveFerretdb } from './ferretdb';
import { isAlive, isOurProcess, redisServerArgs, SERVER_READY_TIMEOUT_MS, sleep, terminate, waitUntilUp, which } from './processes';

/*
 * The stack's services: Redis and a MongoDB-compatible server answering at the configured URLs, reused when they
 * answer, else started from PATH (FerretDB built once when there is no mongod), detached, with pid files and logs
 * in .stack/.
 */

export interface StackOptions {
  redisUrl: string;
  mongoUri: string;
  log?: (msg: string) => void;
}

export interface StackInfo {
  redisUrl: string;
  mongoUri: string;
  /** Names of the services this call started, e.g. ['redis', 'ferretdb']. */
  started: string[];
}

type Log = (msg: string) => void;
type ServiceName = 'redis' | 'mongod' | 'ferretdb';
type Kind = 'redis' | 'mongo';

interface PidRecord {
  name: ServiceName;
  pid: number;
  port: number;
  bin: string;
  startedAt: string;
}

interface Launch {
  name: ServiceName;
  bin: string;
  args: string[];
}

interface ServiceDef {
  kind: Kind;
  /** Redacted URL, safe to print. */
  label: string;
  endpoint: Endpoint;
  /** Set when the URL cannot describe a single server we could start (mongodb+srv, several hosts). */
  notStartable?: string;
  probe: (timeoutMs: number) => Promise<Probe>;
  /** Resolves the binary and arguments; only called when a server has to be started (may build FerretDB). */
  prepare: (log: Log) => Launch | Promise<Launch>;
}

const ROOT = path.resolve(__dirname, '..', '..');
const STACK_DIR = path.join(ROOT, '.stack');
// Long enough to cover another process building FerretDB for the first time.
const LOCK_TIMEOUT_MS = 10 * 60_000;

const defaultLog: Log = (msg) => process.stderr.write(`[stack] ${msg}\n`);

// Guards against pid reuse; without /proc (macOS) the pid is trusted: stopping is SIGTERM, and the record is ours.
function isOurs(rec: PidRecord): boolean {
  return isOurProcess(rec.pid, rec.bin) ?? true;
}

function pidFilePath(name: ServiceName, port: number): string {
  return path.join(STACK_DIR, `${name}-${port}.pid`);
}

function logFilePath(name: ServiceName, port: number): string {
  return path.join(STACK_DIR, `${name}-${port}.log`);
}

function readPidFile(file: string): PidRecord | undefined {
  let data: unknown;
  try {
    data = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
  if (typeof data !== 'object' || data === null) return undefined;
  const r = data as Record<string, unknown>;
  const names: readonly unknown[] = ['redis', 'mongod', 'ferretdb'];
  if (!names.includes(r.name) || typeof r.pid !== 'number' || typeof r.port !== 'number') return undefined;
  if (typeof r.bin !== 'string' || typeof r.startedAt !== 'string') return undefined;
  return { name: r.name as ServiceName, pid: r.pid, port: r.port, bin: r.bin, startedAt: r.startedAt };
}

function namesFor(kind: Kind): ServiceName[] {
  return kind === 'redis' ? ['redis'] : ['mongod', 'ferretdb'];
}

function findPidRecord(kind: Kind, port: number): PidRecord | undefined {
  for (const name of namesFor(kind)) {
    const rec = readPidFile(pidFilePath(name, port));
    if (rec) return rec;
  }
  return undefined;
}

function listPidFiles(): string[] {
  try {
    return fs
      .readdirSync(STACK_DIR)
      .filter((f) => f.endsWith('.pid'))
      .map((f) => path.join(STACK_DIR, f));
  } catch {
    return [];
  }
}

function logTail(file: string, fromOffset = 0, lines = 20): string {
  try {
    const buf = fs.readFileSync(file);
    const text = buf.subarray(Math.min(fromOffset, buf.length)).toString('utf8').trim();
    const tail = text.split('\n').slice(-lines).join('\n');
    return tail ? `last lines of ${path.relative(ROOT, file)}:\n${tail}` : `${path.relative(ROOT, file)} is empty`;
  } catch {
    return `no log at ${path.relative(ROOT, file)}`;
  }
}

async function withLock<T>(key: string, log: Log, fn: (contended: boolean) => Promise<T>): Promise<T> {
  fs.mkdirSync(STACK_DIR, { recursive: true });
  const lockFile = path.join(STACK_DIR, `${key}.lock`);
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  let contended = false;
  for (;;) {
    try {
      const fd = fs.openSync(lockFile, 'wx');
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder = 0;
    try {
      holder = Number(fs.readFileSync(lockFile, 'utf8'));
    } catch {
      continue; // released between our attempts
    }
    // An empty lock file is being written right now; a dead holder left a stale lock.
    if (holder > 0 && !isAlive(holder)) {
      fs.rmSync(lockFile, { force: true });
      continue;
    }
    if (!contended) log(`${key}: another stack process (pid ${holder || '?'}) is starting it; waiting`);
    contended = true;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${lockFile} (held by pid ${holder})`);
    await sleep(250);
  }
  try {
    return await fn(contended);
  } finally {
    fs.rmSync(lockFile, { force: true });
  }
}

async function startAndWait(def: ServiceDef, launch: Launch, log: Log): Promise<ServiceName | undefined> {
  const { name, bin, args } = launch;
  const { port } = def.endpoint;
  const pidFile = pidFilePath(name, port);
  const logFile = logFilePath(name, port);
  const offset = fs.existsSync(logFile) ? fs.statSync(logFile).size : 0;
  const fd = fs.openSync(logFile, 'a');
  fs.writeSync(fd, `\n--- ${new Date().toISOString()} stack: ${bin} ${args.join(' ')}\n`);

  log(`${name}: starting on ${hostPort(def.endpoint)} (log ${path.relative(ROOT, logFile)})`);
  let child: ChildProcess;
  try {
    // Detached with file stdio, so the caller (Jest globalSetup, npm start) can exit while it keeps running.
    child = spawn(bin, args, { cwd: ROOT, detached: true, stdio: ['ignore', fd, fd], env: process.env });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
  } catch (err) {
    throw new Error(`${name}: could not run ${bin}: ${errorMessage(err)}`);
  } finally {
    fs.closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name}: ${bin} started without a pid`);
  let exit: string | undefined;
  child.once('exit', (code, signal) => {
    exit = signal ? `signal ${signal}` : `code ${code}`;
  });
  child.unref();
  const rec: PidRecord = { name, pid, port, bin, startedAt: new Date().toISOString() };
  fs.writeFileSync(pidFile, `${JSON.stringify(rec)}\n`);

  const waited = await waitUntilUp(def.probe, () => exit !== undefined, SERVER_READY_TIMEOUT_MS);
  let result = waited.result;
  const last = waited.last;
  if (result === 'up') {
    // What answered may be a server another process started a moment earlier while ours fails to bind.
    await sleep(300);
    if (exit !== undefined) result = 'exited';
  }
  if (result === 'up') {
    log(`${name}: started (pid ${pid}), answers at ${def.label}`);
    return name;
  }
  if (result === 'timeout') {
    await terminate(pid);
    fs.rmSync(pidFile, { force: true });
    throw new Error(
      `${name} did not answer at ${def.label} within ${SERVER_READY_TIMEOUT_MS / 1000} s (${last}); stopped it.\n${logTail(logFile, offset)}`,
    );
  }
  fs.rmSync(pidFile, { force: true });
  // Typically a race: another process bound the port first and that server answers now.
  const again = await def.probe(1500);
  if (again.state === 'up') {
    log(`${name}: could not start (exited with ${exit}), but ${def.label} answers now; reusing it`);
    return undefined;
  }
  throw new Error(`${name} exited with ${exit} before answering at ${def.label}.\n${logTail(logFile, offset)}`);
}

async function ensureService(def: ServiceDef, log: Log): Promise<ServiceName | undefined> {
  const { kind, label, endpoint } = def;
  const reuse = (how: string): undefined => {
    const rec = findPidRecord(kind, endpoint.port);
    const owner = rec && isOurs(rec) ? `, ${rec.name} started by stack, pid ${rec.pid}` : '';
    log(`${kind}: reusing ${label} (${how}${owner})`);
    return undefined;
  };

  const first = await def.probe(kind === 'mongo' ? 1500 : 1000);
  if (first.state === 'up') return reuse('already answers');
  if (first.state === 'error') {
    throw new Error(`${kind}: something answers at ${label} but the check failed: ${first.detail}`);
  }
  if (first.state === 'starting') {
    log(`${kind}: ${label} answers but is not ready (${first.detail}); waiting`);
    const w = await waitUntilUp(def.probe, () => false, SERVER_READY_TIMEOUT_MS);
    if (w.result === 'up') return reuse('became ready');
    throw new Error(`${kind}: ${label} did not become ready within ${SERVER_READY_TIMEOUT_MS / 1000} s (${w.last})`);
  }
  if (!isLoopback(endpoint.host)) {
    throw new Error(`${kind}: nothing answers at ${label} (${first.detail}); not starting anything for non-loopback host ${endpoint.host}`);
  }
  if (def.notStartable) throw new Error(`${kind}: nothing answers at ${label}, and ${def.notStartable}`);

  return withLock(`${kind}-${endpoint.port}`, log, async (contended) => {
    if (contended && (await def.probe(1500)).state === 'up') return reuse('started by a concurrent stack process');

    const rec = findPidRecord(kind, endpoint.port);
    if (rec && isOurs(rec)) {
      // An earlier start left it running but it does not answer (yet); a second copy could not bind anyway.
      log(`${kind}: ${rec.name} (pid ${rec.pid}) from an earlier start does not answer yet; waiting`);
      const w = await waitUntilUp(def.probe, () => !isAlive(rec.pid), SERVER_READY_TIMEOUT_MS);
      if (w.result === 'up') return reuse('earlier start became ready');
      throw new Error(
        `${kind}: ${rec.name} (pid ${rec.pid}) is running but does not answer at ${label} (${w.last}); ` +
          `run \`npx tsx scripts/stack.ts stop\` and retry.\n${logTail(logFilePath(rec.name, rec.port))}`,
      );
    }
    if (rec) fs.rmSync(pidFilePath(rec.name, rec.port), { force: true });

    return startAndWait(def, await def.prepare(log), log);
  });
}

function redisDef(url: string): ServiceDef {
  const endpoint = parseRedisUrl(url);
  return {
    kind: 'redis',
    label: redact(url),
    endpoint,
    probe: (timeoutMs) => probeRedis(url, timeoutMs),
    prepare: () => {
      const bin = which('redis-server');
      if (!bin) {
        throw new Error(
          `redis: nothing answers at ${redact(url)} and redis-server is not on PATH. ` +
            'Run `docker compose up -d redis`, install redis-server, or set REDIS_URL to a running Redis.',
        );
      }
      // Per-port data dir, so stacks on different ports never share AOF/RDB files.
      const dir = path.join(STACK_DIR, 'redis', String(endpoint.port));
      fs.mkdirSync(dir, { recursive: true });
      return {
        name: 'redis',
        bin,
        args: redisServerArgs({
          port: String(endpoint.port),
          bind: listenHost(endpoint.host),
          daemonize: 'no',
          appendonly: 'yes',
          appendfsync: 'everysec',
          dir,
          'maxmemory-policy': 'noeviction',
        }),
      };
    },
  };
}

function mongoDef(uri: string): ServiceDef {
  const { endpoint, notStartable } = parseMongoUri(uri);
  return {
    kind: 'mongo',
    label: redact(uri),
    endpoint,
    notStartable,
    probe: (timeoutMs) => probeMongo(uri, timeoutMs),
    prepare: async (log) => {
      const host = listenHost(endpoint.host);
      const mongod = which('mongod');
      if (mongod) {
        const dbpath = path.join(STACK_DIR, 'mongo', String(endpoint.port));
        fs.mkdirSync(dbpath, { recursive: true });
        const args = ['--dbpath', dbpath, '--bind_ip', host, '--port', String(endpoint.port)];
        if (host.includes(':')) args.push('--ipv6');
        return { name: 'mongod', bin: mongod, args };
      }
      const args = stackFerretdbArgs(endpoint); // validates FERRETDB_HANDLER before a possibly long build
      const ferretdb = await resolveFerretdb(log);
      if (!ferretdb) {
        throw new Error(
          `mongo: nothing answers at ${redact(uri)}, and neither mongod, ferretdb nor go (to build FerretDB) is on PATH. ` +
            'Run `docker compose up -d mongo`, or set MONGODB_URI to a running MongoDB.',
        );
      }
      return { name: 'ferretdb', bin: ferretdb, args };
    },
  };
}

/** FerretDB's command line for the stack's port: its data under .stack/, its backend by FERRETDB_HANDLER. */
function stackFerretdbArgs(endpoint: Endpoint): string[] {
  const port = String(endpoint.port);
  const stateDir = path.join(STACK_DIR, 'ferretdb-state', port);
  fs.mkdirSync(stateDir, { recursive: true });
  const handler = process.env.FERRETDB_HANDLER || 'sqlite';
  if (handler === 'postgresql') {
    return ferretdbArgs({ listen: hostPort(endpoint), stateDir, backend: { postgresqlUrl: process.env.FERRETDB_POSTGRESQL_URL } });
  }
  if (handler !== 'sqlite') throw new Error(`FERRETDB_HANDLER must be 'sqlite' or 'postgresql' (got '${handler}')`);
  const sqliteDir = path.join(STACK_DIR, 'ferretdb', port);
  fs.mkdirSync(sqliteDir, { recursive: true });
  return ferretdbArgs({ listen: hostPort(endpoint), stateDir, backend: { sqliteDir } });
}

/** Makes Redis and MongoDB answer at the given URLs, starting local servers when needed, and leaves them running. */
export async function ensureStack(opts: StackOptions): Promise<StackInfo> {
  const log = opts.log ?? defaultLog;
  const defs = [redisDef(opts.redisUrl), mongoDef(opts.mongoUri)];
  // allSettled: if one fails, the other still finishes (and records its pid file) before we throw.
  const results = await Promise.allSettled(defs.map((def) => ensureService(def, log)));
  const errors = results.flatMap((r) => (r.status === 'rejected' ? [errorMessage(r.reason)] : []));
  if (errors.length > 0) throw new Error(errors.join('\n'));
  const started = results.flatMap((r) => (r.status === 'fulfilled' && r.value ? [r.value] : []));
  return { redisUrl: opts.redisUrl, mongoUri: opts.mongoUri, started };
}

/** Stops the servers this script started (per the pid files in .stack/); returns their names. */
export async function stopStack(opts: { log?: (msg: string) => void } = {}): Promise<string[]> {
  const log = opts.log ?? defaultLog;
  const stopped: string[] = [];
  await Promise.all(
    listPidFiles().map(async (file) => {
      const rec = readPidFile(file);
      if (!rec) {
        log(`removing unreadable pid file ${path.relative(ROOT, file)}`);
      } else if (!isOurs(rec)) {
        log(`${rec.name} on port ${rec.port} (pid ${rec.pid}) was not running`);
      } else {
        log(`${rec.name}: stopping pid ${rec.pid} (port ${rec.port})`);
        await terminate(rec.pid);
        if (isAlive(rec.pid)) throw new Error(`${rec.name}: pid ${rec.pid} did not exit`);
        stopped.push(rec.name);
      }
      fs.rmSync(file, { force: true });
    }),
  );
  return stopped;
}

/** Prints whether each server answers and what the stack started; true when both answer. */
export async function printStatus(redisUrl: string, mongoUri: string): Promise<boolean> {
  const defs = [redisDef(redisUrl), mongoDef(mongoUri)];
  const probes = await Promise.all(defs.map((d) => d.probe(1500)));
  let allUp = true;
  defs.forEach((def, i) => {
    const p = probes[i];
    const rec = findPidRecord(def.kind, def.endpoint.port);
    const owner = rec && isOurs(rec) ? ` (${rec.name} started by stack, pid ${rec.pid})` : '';
    if (p?.state === 'up') {
      console.log(`${def.kind}: answers at ${def.label}${owner}`);
    } else {
      allUp = false;
      console.log(`${def.kind}: does not answer at ${def.label}: ${p?.detail ?? 'unknown'}${owner}`);
    }
  });
  const ports = new Set(defs.map((d) => d.endpoint.port));
  for (const file of listPidFiles()) {
    const rec = readPidFile(file);
    if (rec && !ports.has(rec.port)) {
      console.log(`also: ${rec.name} on port ${rec.port}, pid ${rec.pid}, ${isOurs(rec) ? 'running' : 'not running'}`);
    }
  }
  return allUp;
}
