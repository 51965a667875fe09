import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { MongoClient, type Db } from 'mongodb';
import { io as connectSocket, type Socket } from 'socket.io-client';
import { type Config, DEFAULT_MONGODB_URI, DEFAULT_REDIS_URL, loadConfig } from '../../src/config/config';
import {
  createApiComponents,
  createJobProcessor,
  createWorkerComponents,
  type ApiComponents,
  type WorkerComponents,
  type WorkerOptions,
} from '../../src/composition';
import { connectMongo } from '../../src/storage/connect';
import { createLogger } from '../../src/logger';
import { createRedis } from '../../src/queue/redis';
import type { JobProcessor, JobProcessorDeps } from '../../src/services/job-processor';
import { createRepositories } from '../../src/storage';
import type { ClientToServerEvents, ServerToClientEvents } from '../../src/sockets/socket-events';

export type TestSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface Harness {
  config: Config;
  api: ApiComponents;
  baseUrl: string;
  db: Db;
  redis: Redis;
  workers: WorkerComponents[];
  startWorker(options?: WorkerOptions): Promise<WorkerComponents>;
  connect(): Promise<TestSocket>;
  /** A job processor outside any Bull worker, wired as the worker wires it; `override` swaps parts (to inject a crash). */
  buildProcessor(override?: (deps: JobProcessorDeps) => Partial<JobProcessorDeps>): Promise<JobProcessor>;
  close(): Promise<void>;
}

/** The MongoDB-compatible server the tests use (MONGODB_URI without its database); each test names a database of its own. */
export function mongoServerUri(): string {
  return (process.env.MONGODB_URI ?? DEFAULT_MONGODB_URI).replace(/^(mongodb(?:\+srv)?:\/\/[^/]+)\/?[^?]*/, '$1');
}

/**
 * An API and workers in this process against the real Redis and
 * MongoDB-compatible server, with a database and a queue of their own.
 */
export async function startHarness(overrides: Record<string, string> = {}, options: { workers?: number } = {}): Promise<Harness> {
  const suffix = randomBytes(4).toString('hex');
  const baseUri = mongoServerUri();
  const config = loadConfig({
    MONGODB_URI: `${baseUri}/test_${suffix}`,
    REDIS_URL: process.env.REDIS_URL ?? DEFAULT_REDIS_URL,
    QUEUE_NAME: `test-${suffix}`,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    // CI runs the integration suite once per storage profile (see storage/profile.ts).
    STORAGE_PROFILE: process.env.STORAGE_PROFILE ?? 'auto',
    // Retries come quickly in tests; production uses 1 s.
    JOB_BACKOFF_MS: '100',
    // Harnesses run side by side: none serves worker metrics unless a test asks for a port.
    METRICS_PORT: '0',
    ...overrides,
  });
  const logger = createLogger(config.LOG_LEVEL, 'test');
  const api = await createApiComponents(config, logger);
  const port = await api.listen(0);
  const baseUrl = `http://127.0.0.1:${port}`;
  const mongo = await MongoClient.connect(baseUri);
  const db = mongo.db(`test_${suffix}`);
  const redis = new Redis(config.REDIS_URL);
  const workers: WorkerComponents[] = [];
  const sockets: TestSocket[] = [];
  const extraClosers: (() => Promise<unknown>)[] = [];

  const harness: Harness = {
    config,
    api,
    baseUrl,
    db,
    redis,
    workers,
    async startWorker(workerOptions = {}) {
      const worker = await createWorkerComponents(config, logger, workerOptions);
      worker.start();
      workers.push(worker);
      return worker;
    },
    async connect() {
      const socket: TestSocket = connectSocket(baseUrl, { path: '/ws', transports: ['websocket'], forceNew: true });
      sockets.push(socket);
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('connect_error', reject);
      });
      return socket;
    },
    async buildProcessor(override) {
      const connection = await connectMongo(config.MONGODB_URI, logger, false);
      // As the worker's own: same retry options.
      const publisher = createRedis(config.REDIS_URL, 'worker', logger);
      extraClosers.push(
        () => connection.close(),
        () => publisher.quit(),
      );
      const repos = await createRepositories({ connection, config, redis: publisher, logger });
      return createJobProcessor({ repos, redis: publisher, config, logger }, override);
    },
    async close() {
      for (const socket of sockets) socket.disconnect();
      for (const closeExtra of extraClosers) await closeExtra();
      await Promise.all(workers.map((worker) => worker.close()));
      await api.close();
      await db.dropDatabase();
      await mongo.close();
      for (const pattern of [`bull:${config.QUEUE_NAME}:*`, `${config.QUEUE_NAME}:*`]) {
        const keys = await redis.keys(pattern);
        if (keys.length > 0) await redis.del(...keys);
      }
      await redis.quit();
    },
  };
  for (let index = 0; index < (options.workers ?? 1); index += 1) await harness.startWorker();
  return harness;
}

/** Polls until `check` returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function postJson(
  baseUrl: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(`${baseUrl}/api/data/ingest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json(), headers: response.headers };
}

export async function getJson(baseUrl: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const response = await fetch(`${baseUrl}${path}`, { headers });
  return { status: response.status, body: await response.json() };
}

/** Waits until the batch reached a final state and returns its status body. */
export async function waitForBatch(
  baseUrl: string,
  batchId: string,
  timeoutMs = 30_000,
  headers: Record<string, string> = {},
): Promise<any> {
  return waitFor(
    async () => {
      const { status, body } = await getJson(baseUrl, `/api/data/batches/${batchId}`, headers);
      return status === 200 && (body.status === 'completed' || body.status === 'failed') ? body : undefined;
    },
    timeoutMs,
    `batch ${batchId} to finish`,
  );
}
