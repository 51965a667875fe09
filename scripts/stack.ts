// Makes Redis and a MongoDB-compatible server available for local development and tests.
// Usage: npx tsx scripts/stack.ts start|stop|status   (reads REDIS_URL and MONGODB_URI, loads .env)
import { ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { config as loadDotenv } from 'dotenv';
import { Redis, ReplyError } from 'ioredis';
import { MongoClient, MongoServerError } from 'mongodb';

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

export type Probe =
  | { state: 'up' }
  | { state: 'down'; detail: string }
  // Something answers but is not ready yet (e.g. Redis loading its AOF).
  | { state: 'starting'; detail: string }
  // Something answers but the command failed (e.g. bad credentials): starting another server would not help.
  | { state: 'error'; detail: string };

interface Endpoint {
  host: string;
  port: number;
}

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

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_MONGODB_URI = 'mongodb://127.0.0.1:27017/realtime';

const FERRETDB_VERSION = 'v1.24.2';
const FERRETDB_MODULE = 'github.com/FerretDB/FerretDB';
const ROOT = path.resolve(__dirname, '..');
const STACK_DIR = path.join(ROOT, '.stack');
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
// Long enough to cover another process building FerretDB for the first time.
const LOCK_TIMEOUT_MS = 10 * 60_000;

const defaultLog: Log = (msg) => process.stderr.write(`[stack] ${msg}\n`);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function redact(url: string): string {
  return url.replace(/\/\/([^/@:]*):([^/@]*)@/, '//$1:***@');
}

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

// 'localhost' may resolve to ::1 first; servers listen on IPv4 loopback, which clients fall back to.
function listenHost(host: string): string {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' ? '127.0.0.1' : h;
}

function hostPort(ep: Endpoint): string {
  const h = listenHost(ep.host);
  return h.includes(':') ? `[${h}]:${ep.port}` : `${h}:${ep.port}`;
}

function parseRedisUrl(url: string): Endpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`REDIS_URL is not a valid URL: ${redact(url)}`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new Error(`REDIS_URL must start with redis:// or rediss:// (got ${redact(url)})`);
  }
  return { host: u.hostname || '127.0.0.1', port: u.port ? Number(u.port) : 6379 };
}

function parseMongoUri(uri: string): { endpoint: Endpoint; notStartable?: string } {
  const m = /^mongodb(\+srv)?:\/\/(?:[^@/]*@)?([^/?]+)/.exec(uri);
  const hosts = m?.[2];
  if (!m || !hosts) throw new Error(`MONGODB_URI is not a valid MongoDB URI: ${redact(uri)}`);
  const first = hosts.split(',')[0] ?? '';
  const hp = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(first);
  if (!hp?.[1]) throw new Error(`cannot parse host in MONGODB_URI: ${redact(uri)}`);
  const endpoint = { host: hp[1], port: hp[2] ? Number(hp[2]) : 27017 };
  if (m[1]) return { endpoint, notStartable: 'a mongodb+srv:// URI names a DNS seed list, not a local server' };
  if (hosts.includes(',')) return { endpoint, notStartable: 'the URI lists several hosts (a replica set)' };
  return { endpoint };
}

export async function probeRedis(url: string, timeoutMs = 1000): Promise<Probe> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  // Without a listener ioredis logs "Unhandled error event"; the event also has the useful cause (ECONNREFUSED).
  let lastError: string | undefined;
  client.on('error', (err: Error) => {
    lastError = err.message;
  });
  try {
    await client.connect();
    await client.ping();
    return { state: 'up' };
  } catch (err) {
    const detail = errorMessage(err);
    if (err instanceof ReplyError) {
      return detail.startsWith('LOADING') ? { state: 'starting', detail } : { state: 'error', detail };
    }
    return { state: 'down', detail: lastError ?? detail };
  } finally {
    client.disconnect();
  }
}

export async function probeMongo(uri: string, timeoutMs = 1500): Promise<Probe> {
  let client: MongoClient;
  try {
    client = new MongoClient(uri, { serverSelectionTimeoutMS: timeoutMs, connectTimeoutMS: timeoutMs });
  } catch (err) {
    throw new Error(`invalid MONGODB_URI ${redact(uri)}: ${errorMessage(err)}`);
  }
  try {
    await client.connect();
    await client.db('admin').command({ ping: 1 });
    return { state: 'up' };
  } catch (err) {
    // Only a reply from a server (e.g. auth failure) means something answers; the rest is network or DNS.
    const detail = errorMessage(err);
    return err instanceof MongoServerError ? { state: 'error', detail } : { state: 'down', detail };
  } finally {
    await client.close().catch(() => undefined);
  }
}

export function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, cmd);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

function isExecutableFile(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function isAlive(pid: number): boolean {
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

// Guards against pid reuse: a recycled pid must still look like the binary we started.
function isOurProcess(rec: PidRecord): boolean {
  if (!isAlive(rec.pid)) return false;
  try {
    const cmdline = fs.readFileSync(`/proc/${rec.pid}/cmdline`, 'utf8');
    return cmdline.includes(path.basename(rec.bin));
  } catch {
    return true; // no /proc (macOS): trust the pid
  }
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

async function waitUntilUp(
  probe: ServiceDef['probe'],
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

async function terminate(pid: number): Promise<void> {
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

  const waited = await waitUntilUp(def.probe, () => exit !== undefined, READY_TIMEOUT_MS);
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
      `${name} did not answer at ${def.label} within ${READY_TIMEOUT_MS / 1000} s (${last}); stopped it.\n${logTail(logFile, offset)}`,
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
    const owner = rec && isOurProcess(rec) ? `, ${rec.name} started by stack, pid ${rec.pid}` : '';
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
    const w = await waitUntilUp(def.probe, () => false, READY_TIMEOUT_MS);
    if (w.result === 'up') return reuse('became ready');
    throw new Error(`${kind}: ${label} did not become ready within ${READY_TIMEOUT_MS / 1000} s (${w.last})`);
  }
  if (!isLoopback(endpoint.host)) {
    throw new Error(`${kind}: nothing answers at ${label} (${first.detail}); not starting anything for non-loopback host ${endpoint.host}`);
  }
  if (def.notStartable) throw new Error(`${kind}: nothing answers at ${label}, and ${def.notStartable}`);

  return withLock(`${kind}-${endpoint.port}`, log, async (contended) => {
    if (contended && (await def.probe(1500)).state === 'up') return reuse('started by a concurrent stack process');

    const rec = findPidRecord(kind, endpoint.port);
    if (rec && isOurProcess(rec)) {
      // An earlier start left it running but it does not answer (yet); a second copy could not bind anyway.
      log(`${kind}: ${rec.name} (pid ${rec.pid}) from an earlier start does not answer yet; waiting`);
      const w = await waitUntilUp(def.probe, () => !isAlive(rec.pid), READY_TIMEOUT_MS);
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
        args: Object.entries({
          port: String(endpoint.port),
          bind: listenHost(endpoint.host),
          daemonize: 'no',
          appendonly: 'yes',
          appendfsync: 'everysec',
          dir,
          'maxmemory-policy': 'noeviction',
        }).flatMap(([key, value]) => [`--${key}`, value]),
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
      const args = ferretdbArgs(endpoint); // validates FERRETDB_HANDLER before a possibly long build
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

function ferretdbArgs(endpoint: Endpoint): string[] {
  const port = String(endpoint.port);
  const stateDir = path.join(STACK_DIR, 'ferretdb-state', port);
  fs.mkdirSync(stateDir, { recursive: true });
  const args = [
    `--listen-addr=${hostPort(endpoint)}`,
    '--telemetry=disable',
    // '-' disables the debug HTTP listener, so several instances never collide on its port.
    '--debug-addr=-',
    '--log-level=warn',
    `--state-dir=${stateDir}`,
  ];
  const handler = process.env.FERRETDB_HANDLER || 'sqlite';
  if (handler === 'postgresql') {
    args.unshift('--handler=postgresql');
    if (process.env.FERRETDB_POSTGRESQL_URL) args.push(`--postgresql-url=${process.env.FERRETDB_POSTGRESQL_URL}`);
  } else if (handler === 'sqlite') {
    const dataDir = path.join(STACK_DIR, 'ferretdb', port);
    fs.mkdirSync(dataDir, { recursive: true });
    // FerretDB requires the directory to exist and the URL to end with '/'.
    args.unshift('--handler=sqlite', `--sqlite-url=file:${dataDir}/`);
  } else {
    throw new Error(`FERRETDB_HANDLER must be 'sqlite' or 'postgresql' (got '${handler}')`);
  }
  return args;
}

function ferretdbCachePath(): string {
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(cache, 'realtime-data-service', `ferretdb-${FERRETDB_VERSION}`, 'ferretdb');
}

export async function resolveFerretdb(log: Log): Promise<string | undefined> {
  const onPath = which('ferretdb');
  if (onPath) return onPath;
  const cached = ferretdbCachePath();
  if (isExecutableFile(cached)) return cached;
  const go = which('go');
  if (!go) return undefined;
  await buildFerretdb(go, cached, log);
  return cached;
}

class CommandError extends Error {
  constructor(
    message: string,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

function run(cmd: string, args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, GOWORK: 'off' } }, (err, stdout, stderr) => {
      if (err) reject(new CommandError(err.message, stdout, stderr));
      else resolve({ stdout, stderr });
    });
  });
}

function outputOf(err: unknown): string {
  return err instanceof CommandError ? `${err.stdout}\n${err.stderr}`.trim() || err.message : errorMessage(err);
}

// Module-cache files are read-only; the copy needs to be writable to add version.txt and to be removed later.
function makeWritable(dir: string): void {
  fs.chmodSync(dir, 0o755);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) makeWritable(p);
    else if (entry.isFile()) fs.chmodSync(p, fs.statSync(p).mode | 0o200);
  }
}

// `go install ...@v1.24.2` yields a binary that panics at start ("Invalid build/version/version.txt file
// content"): the module lacks that generated file. So build from a copy of the module with the file added.
async function buildFerretdb(go: string, target: string, log: Log): Promise<void> {
  const started = Date.now();
  log(`ferretdb: building FerretDB ${FERRETDB_VERSION} into ${target} (about 75 s the first time, a few s later)`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferretdb-build-'));
  const tmpBinary = `${target}.tmp-${process.pid}`;
  try {
    let downloaded: string;
    try {
      downloaded = (await run(go, ['mod', 'download', '-json', `${FERRETDB_MODULE}@${FERRETDB_VERSION}`], work)).stdout;
    } catch (err) {
      throw new Error(`ferretdb: go mod download failed:\n${outputOf(err)}`);
    }
    const info = JSON.parse(downloaded) as { Dir?: unknown };
    if (typeof info.Dir !== 'string') throw new Error(`ferretdb: go mod download gave no Dir:\n${downloaded}`);

    const src = path.join(work, 'src');
    fs.cpSync(info.Dir, src, { recursive: true });
    makeWritable(src);
    fs.writeFileSync(path.join(src, 'build', 'version', 'version.txt'), `${FERRETDB_VERSION}\n`);

    // Build next to the target and rename, so a half-built binary is never picked up.
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const build = (extra: string[]) => run(go, ['build', ...extra, '-o', tmpBinary, './cmd/ferretdb'], src);
    try {
      await build([]);
    } catch (err) {
      // Newer Go toolchains reject some of FerretDB's go:linkname uses.
      if (!outputOf(err).includes('invalid reference to runtime.')) {
        throw new Error(`ferretdb: go build failed:\n${outputOf(err)}`);
      }
      log('ferretdb: retrying the build with -ldflags=-checklinkname=0');
      try {
        await build(['-ldflags=-checklinkname=0']);
      } catch (err2) {
        throw new Error(`ferretdb: go build failed:\n${outputOf(err2)}`);
      }
    }
    fs.renameSync(tmpBinary, target);
    log(`ferretdb: built in ${Math.round((Date.now() - started) / 1000)} s`);
  } finally {
    fs.rmSync(tmpBinary, { force: true });
    fs.rmSync(work, { recursive: true, force: true });
  }
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
      } else if (!isOurProcess(rec)) {
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

async function status(redisUrl: string, mongoUri: string): Promise<boolean> {
  const defs = [redisDef(redisUrl), mongoDef(mongoUri)];
  const probes = await Promise.all(defs.map((d) => d.probe(1500)));
  let allUp = true;
  defs.forEach((def, i) => {
    const p = probes[i];
    const rec = findPidRecord(def.kind, def.endpoint.port);
    const owner = rec && isOurProcess(rec) ? ` (${rec.name} started by stack, pid ${rec.pid})` : '';
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
      console.log(`also: ${rec.name} on port ${rec.port}, pid ${rec.pid}, ${isOurProcess(rec) ? 'running' : 'not running'}`);
    }
  }
  return allUp;
}

async function main(argv: string[]): Promise<number> {
  const envFile = path.join(ROOT, '.env');
  if (fs.existsSync(envFile)) loadDotenv({ path: envFile, quiet: true });
  const redisUrl = process.env.REDIS_URL || DEFAULT_REDIS_URL;
  const mongoUri = process.env.MONGODB_URI || DEFAULT_MONGODB_URI;
  const log: Log = (msg) => console.log(msg);

  switch (argv[0]) {
    case 'start': {
      const info = await ensureStack({ redisUrl, mongoUri, log });
      console.log(`stack ready (${info.started.length ? `started: ${info.started.join(', ')}` : 'all reused'})`);
      return 0;
    }
    case 'stop': {
      const stopped = await stopStack({ log });
      console.log(stopped.length ? `stopped: ${stopped.join(', ')}` : 'nothing to stop');
      return 0;
    }
    case 'status':
      return (await status(redisUrl, mongoUri)) ? 0 : 1;
    default:
      console.error('usage: tsx scripts/stack.ts start|stop|status');
      return 2;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`stack: ${errorMessage(err)}`);
      process.exit(1);
    },
  );
}
