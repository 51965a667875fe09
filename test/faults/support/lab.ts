import fs, { type WriteStream } from 'node:fs';
import path from 'node:path';
import Redis from 'ioredis';
import { MongoClient, type Db } from 'mongodb';
import { Child, killLeftovers } from './child';
import { FerretServer, RedisServer } from './servers';
import { freePort } from '../../../scripts/free-port';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
/** Data and logs of the suite's own Redis and FerretDB, and one log per scenario; wiped at the start of each run. */
export const FAULTS_DIR = path.join(ROOT, '.stack', 'faults');
/** Every process the suite starts, one `<pid> <binary>` a line. */
const PID_FILE = path.join(FAULTS_DIR, 'pids');
const REDIS_PORT = 6390;
const FERRETDB_PORT = 27030;

/**
 * What every API and worker of the suite runs with; the rest are the defaults. Locks of 4 s (30 s by default) so
 * a killed worker's jobs are taken over within seconds; chunks of 250 points (1000 by default) so a load has many
 * jobs to kill mid-batch.
 */
export const FAULT_SETTINGS = {
  JOB_CHUNK_SIZE: '250',
  JOB_LOCK_MS: '4000',
  JOB_STALLED_INTERVAL_MS: '4000',
  SHUTDOWN_TIMEOUT_MS: '10000',
  // Every completed job stays readable: the checks count the jobs that were taken over (their stalledCounter).
  KEEP_COMPLETED_JOBS: '1000000',
} as const;

export interface QueueCounts {
  waiting: number;
  active: number;
  /** Delayed jobs due within the hour: retries waiting for their backoff. */
  delayed: number;
  /** Delayed jobs due later: chunks of a streamed upload that never completed, held 24 h and dropped then. */
  held: number;
  failed: number;
}

const HOUR_MS = 3600 * 1000;
// Bull scores a delayed job with its due time times 4096 (the low bits order jobs due in the same millisecond).
const DELAY_SCORE_FACTOR = 4096;

function openLog(file: string): WriteStream {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  return fs.createWriteStream(file, { flags: 'a' });
}

function closeLog(log: WriteStream): Promise<void> {
  return new Promise((resolve) => log.end(resolve));
}

/** The suite's Redis and FerretDB, started fresh for the run; scenarios get a queue and a database of their own on them. */
export class Lab {
  private readonly scenarios: Scenario[] = [];

  private constructor(
    readonly redis: RedisServer,
    readonly ferret: FerretServer,
    private readonly log: WriteStream,
  ) {}

  static async start(): Promise<Lab> {
    const leftovers = killLeftovers(PID_FILE);
    if (leftovers > 0) process.stderr.write(`[faults] stopped ${leftovers} processes an interrupted run left behind\n`);
    fs.rmSync(FAULTS_DIR, { recursive: true, force: true });
    const log = openLog(path.join(FAULTS_DIR, 'servers.log'));
    const lab = new Lab(
      new RedisServer(REDIS_PORT, path.join(FAULTS_DIR, `redis-${REDIS_PORT}`), log, PID_FILE),
      new FerretServer(FERRETDB_PORT, path.join(FAULTS_DIR, `ferretdb-${FERRETDB_PORT}`), log, PID_FILE),
      log,
    );
    try {
      await Promise.all([lab.redis.start(), lab.ferret.start()]);
    } catch (error) {
      await lab.close();
      throw error;
    }
    return lab;
  }

  async scenario(id: string): Promise<Scenario> {
    const scenario = await Scenario.open(this, id);
    this.scenarios.push(scenario);
    return scenario;
  }

  /** Stops everything the suite started, scenarios first; safe to call after a failure, and twice. */
  async close(): Promise<void> {
    for (const scenario of this.scenarios.splice(0)) await scenario.close();
    await Promise.allSettled([this.redis.kill('SIGTERM'), this.ferret.kill('SIGTERM')]);
    if (!this.log.closed) await closeLog(this.log);
  }
}

/**
 * One scenario: its own queue and database, its own API port, the API and worker processes it started, and
 * clients to look at Redis and the database from outside.
 */
export class Scenario {
  private readonly children = new Set<Child>();
  private closed = false;

  private constructor(
    readonly id: string,
    readonly lab: Lab,
    readonly port: number,
    readonly logFile: string,
    private readonly log: WriteStream,
    readonly redis: Redis,
    private readonly mongo: MongoClient,
  ) {}

  static async open(lab: Lab, id: string): Promise<Scenario> {
    const logFile = path.join(FAULTS_DIR, 'logs', `${id}.log`);
    // Patient like a worker: the inspection client waits out a Redis restart instead of failing.
    const redis = new Redis(lab.redis.url, { maxRetriesPerRequest: null, retryStrategy: () => 200 });
    redis.on('error', () => undefined);
    const mongo = await MongoClient.connect(lab.ferret.uri(id), { serverSelectionTimeoutMS: 60_000 });
    return new Scenario(id, lab, await freePort(), logFile, openLog(logFile), redis, mongo);
  }

  get queue(): string {
    return id(this.id);
  }

  get db(): Db {
    return this.mongo.db(id(this.id));
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The environment of an API or worker of this scenario; `extra` overrides the suite's settings. */
  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PORT: String(this.port),
      MONGODB_URI: this.lab.ferret.uri(id(this.id)),
      REDIS_URL: this.lab.redis.url,
      QUEUE_NAME: id(this.id),
      LOG_LEVEL: 'info',
      // Several workers on one machine would share the default port.
      METRICS_PORT: '0',
      ...FAULT_SETTINGS,
      ...extra,
    };
  }

  /** Starts `node dist/server.js` on the scenario's port and waits until it listens. */
  async startApi(name = 'api', extra: Record<string, string> = {}): Promise<Child> {
    const child = await this.spawnNode(name, 'server.js', extra);
    await child.waitForLine((line) => line.includes('"msg":"API listening'), 30_000, 'listening message');
    return child;
  }

  /** Starts `node dist/worker.js` and waits until it takes jobs. */
  async startWorker(name: string, extra: Record<string, string> = {}): Promise<Child> {
    const child = await this.spawnNode(name, 'worker.js', extra);
    await child.waitForLine((line) => line.includes('"msg":"worker started"'), 60_000, 'start message');
    return child;
  }

  note(message: string): void {
    this.log.write(`${new Date().toISOString()} [test] ${message}\n`);
  }

  /** Bull's lists of this scenario's queue, read straight from Redis. */
  async queueCounts(): Promise<QueueCounts> {
    const key = (name: string): string => `bull:${this.queue}:${name}`;
    const inAnHour = (Date.now() + HOUR_MS) * DELAY_SCORE_FACTOR;
    const [waiting, paused, active, delayed, allDelayed, failed] = await Promise.all([
      this.redis.llen(key('wait')),
      this.redis.llen(key('paused')),
      this.redis.llen(key('active')),
      this.redis.zcount(key('delayed'), '-inf', inAnHour),
      this.redis.zcard(key('delayed')),
      this.redis.zcard(key('failed')),
    ]);
    return { waiting: waiting + paused, active, delayed, held: allDelayed - delayed, failed };
  }

  /** Ids of the delayed jobs due in more than an hour (see QueueCounts.held). */
  heldJobIds(): Promise<string[]> {
    return this.redis.zrangebyscore(`bull:${this.queue}:delayed`, `(${(Date.now() + HOUR_MS) * DELAY_SCORE_FACTOR}`, '+inf');
  }

  /** The status of a batch in the API's batch store (`receiving` for a stream that was never committed). */
  batchStatus(batchId: string): Promise<string | null> {
    return this.redis.hget(`${this.queue}:batch:${batchId}`, 'status');
  }

  /** Ids of the jobs in Bull's active list right now. */
  activeJobIds(): Promise<string[]> {
    return this.redis.lrange(`bull:${this.queue}:active`, 0, -1);
  }

  /** A field of a job's hash in Bull (`stalledCounter`, `attemptsMade`, `finishedOn`...), or null. */
  jobField(jobId: string, field: string): Promise<string | null> {
    return this.redis.hget(`bull:${this.queue}:${jobId}`, field);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // SIGKILL after 15 s: a process that does not stop must not keep Jest alive.
    await Promise.allSettled([...this.children].map((child) => child.stop('SIGTERM', 15_000)));
    await this.mongo.close().catch(() => undefined);
    // disconnect, not quit: quit would wait for a Redis that a failed scenario left down.
    this.redis.disconnect();
    await closeLog(this.log);
  }

  private async spawnNode(name: string, script: string, extra: Record<string, string>): Promise<Child> {
    if (this.closed) throw new Error(`scenario ${this.id} is closed`);
    const child = await Child.spawn(name, process.execPath, [path.join(ROOT, 'dist', script)], {
      cwd: ROOT,
      env: this.env(extra),
      log: this.log,
      pidFile: PID_FILE,
    });
    this.children.add(child);
    void child.exited.then(() => this.children.delete(child));
    return child;
  }
}

/** Queue and database name of a scenario: letters, digits and '_' only, valid for both. */
function id(scenarioId: string): string {
  return `faults_${scenarioId}`;
}
