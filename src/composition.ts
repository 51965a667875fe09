import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import mongoose, { type Connection } from 'mongoose';
import type Redis from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from './config/config';
import { AccessControl } from './http/access';
import { createApp } from './http/app';
import { answerClientError } from './http/error-middleware';
import { RateLimiter } from './http/rate-limit';
import { createShutdown, type ShutdownStep } from './lifecycle/shutdown';
import { createMetrics, createWorkerMetrics, type WorkerMetrics } from './metrics';
import { BatchStore } from './exactly-once/batch-store';
import { eventsChannel } from './queue/events';
import { IdempotencyStore } from './exactly-once/idempotency-store';
import { createIngestQueue, type IngestQueue, type QueueSettings } from './queue/ingest-queue';
import { createRedis } from './queue/redis';
import { IngestService } from './services/ingest-service';
import { batchFailureMessage, PermanentJobError } from './services/job-errors';
import { JobProcessor, type JobProcessorDeps } from './services/job-processor';
import { LanePool } from './exactly-once/lane-pool';
import { OUTAGE_WAIT_DEFAULTS, OutageWait } from './services/outage-wait';
import { createRepositories, type Repositories } from './storage';
import { attachSocketServer, type SocketServer } from './sockets/socket-server';

// Server selection gives up after 5 s, so a request or job fails (and is retried) instead of hanging while MongoDB is down.
const SERVER_SELECTION_TIMEOUT_MS = 5000;
const CONNECT_RETRY_MS = 2000;
// A command with no answer for 60 s fails (the job is retried, the request gets 503) instead of hanging forever;
// far above any healthy command.
const SOCKET_TIMEOUT_MS = 60_000;

/**
 * Connects to MongoDB. The worker waits as long as it takes (`patient`); the
 * API gives up after its first attempts, so a misconfigured URI is reported.
 */
export async function connectMongo(uri: string, logger: Logger, patient: boolean): Promise<Connection> {
  for (let attempt = 1; ; attempt += 1) {
    const connection = mongoose.createConnection(uri, {
      bufferCommands: false,
      autoIndex: false,
      autoCreate: false,
      serverSelectionTimeoutMS: SERVER_SELECTION_TIMEOUT_MS,
      socketTimeoutMS: SOCKET_TIMEOUT_MS,
    });
    try {
      await connection.asPromise();
      return connection;
    } catch (error) {
      await connection.close().catch(() => undefined);
      if (!patient && attempt >= 3) throw error;
      logger.warn({ attempt, err: (error as Error).message }, 'MongoDB is not reachable yet; retrying');
      await new Promise((resolve) => setTimeout(resolve, CONNECT_RETRY_MS));
    }
  }
}

/** The queue as the processes open it, from the config. */
export function queueSettings(config: Config): QueueSettings {
  return {
    redisUrl: config.REDIS_URL,
    name: config.QUEUE_NAME,
    attempts: config.JOB_ATTEMPTS,
    backoffMs: config.JOB_BACKOFF_MS,
    lockMs: config.JOB_LOCK_MS,
    stalledIntervalMs: config.JOB_STALLED_INTERVAL_MS,
    keepCompletedJobs: config.KEEP_COMPLETED_JOBS,
  };
}

export interface ApiComponents {
  httpServer: HttpServer;
  sockets: SocketServer;
  queue: IngestQueue;
  listen(port: number): Promise<number>;
  close: () => Promise<void>;
}

/** Wires the API: HTTP and Socket.io on one server, not listening yet. */
export async function createApiComponents(config: Config, logger: Logger): Promise<ApiComponents> {
  const connection = await connectMongo(config.MONGODB_URI, logger, false);
  const redis = createRedis(config.REDIS_URL, 'api', logger);
  const { aggregates, history, series } = await createRepositories({ connection, config, redis, logger });
  const subscriber = createRedis(config.REDIS_URL, 'subscriber', logger);
  const { queue, close: closeQueue } = createIngestQueue(queueSettings(config), 'api', logger);
  const batches = new BatchStore(redis, config.QUEUE_NAME);
  const metrics = createMetrics({
    queueCounts: async () => {
      const counts = await queue.getJobCounts();
      return { waiting: counts.waiting, active: counts.active, delayed: counts.delayed, failed: counts.failed };
    },
    processedPoints: () => batches.processedPoints(),
  });
  const ingest = new IngestService(
    queue,
    batches,
    new IdempotencyStore(redis, config.QUEUE_NAME, { leaseMs: config.IDEMPOTENCY_LEASE_MS }),
    { chunkSize: config.JOB_CHUNK_SIZE, maxQueueBacklog: config.MAX_QUEUE_BACKLOG, maxPointsPerRequest: config.MAX_POINTS_PER_REQUEST },
    logger,
    (points) => metrics.rejected.inc(points),
  );
  const access = new AccessControl({ ingestKeys: config.INGEST_API_KEYS, readKeys: config.READ_API_KEYS });
  const app = createApp({
    logger,
    access,
    queue,
    adminKeys: config.ADMIN_API_KEYS,
    rateLimiter:
      config.RATE_LIMIT_PER_MINUTE > 0 ? new RateLimiter(redis, config.QUEUE_NAME, config.RATE_LIMIT_PER_MINUTE, logger) : undefined,
    trustProxy: config.TRUST_PROXY,
    metrics,
    ingest,
    aggregates,
    history,
    series,
    batches,
    maxBodyBytes: config.MAX_BODY_BYTES,
    corsOrigins: config.CORS_ORIGINS,
    readiness: [
      {
        name: 'mongodb',
        check: async () => {
          await connection.db?.admin().ping();
        },
      },
      {
        name: 'redis',
        check: async () => {
          await redis.ping();
        },
      },
    ],
  });
  // A request whose body has not fully arrived within REQUEST_TIMEOUT_MS is answered 408 and its connection closed
  // (slow or stalled uploads). Node checks every connectionsCheckingInterval, 30 s by default: far too coarse here.
  const httpServer = createServer(
    {
      requestTimeout: config.REQUEST_TIMEOUT_MS,
      headersTimeout: Math.min(60_000, config.REQUEST_TIMEOUT_MS),
      connectionsCheckingInterval: Math.min(1000, config.REQUEST_TIMEOUT_MS / 2),
    },
    app,
  );
  // Requests Node refuses before Express (bad Content-Length, headers over 16 KiB, the 408 above) get the contract's
  // JSON error instead of an empty body; an Expect other than 100-continue is ignored instead of an empty 417.
  httpServer.on('clientError', answerClientError);
  httpServer.on('checkExpectation', app);
  const sockets = attachSocketServer(httpServer, {
    aggregates,
    series,
    subscriber,
    channel: eventsChannel(config.QUEUE_NAME),
    logger,
    metrics,
    maxKeysPerSocket: config.MAX_KEYS_PER_SOCKET,
    eventsPerSecond: config.SOCKET_EVENTS_PER_SECOND,
    access,
    corsOrigins: config.CORS_ORIGINS,
  });
  await sockets.ready;

  const steps: ShutdownStep[] = [
    {
      name: 'http and socket.io',
      run: async () => {
        // Stop accepting, drop idle keep-alive connections, let in-flight requests finish. A connection whose
        // request finishes later turns idle too and is dropped within 100 ms, not after the 5 s keep-alive timeout.
        const closed = sockets.close();
        httpServer.closeIdleConnections();
        const dropIdle = setInterval(() => httpServer.closeIdleConnections(), 100);
        await closed.finally(() => clearInterval(dropIdle));
      },
    },
    { name: 'queue', run: closeQueue },
    {
      name: 'redis',
      run: async () => {
        await Promise.allSettled([redis.quit(), subscriber.quit()]);
      },
    },
    { name: 'mongodb', run: () => connection.close() },
  ];
  return {
    httpServer,
    sockets,
    queue,
    listen: (port) =>
      new Promise((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(port, () => resolve((httpServer.address() as AddressInfo).port));
      }),
    close: createShutdown(steps, logger, config.SHUTDOWN_TIMEOUT_MS),
  };
}

export interface WorkerComponents {
  queue: IngestQueue;
  processor: JobProcessor;
  /** Starts taking jobs. */
  start(): void;
  close: () => Promise<void>;
}

export interface WorkerOptions {
  clock?: () => number;
}

/**
 * GET /metrics of the worker's registry on `port`; the worker serves nothing else. A port already taken (a second
 * worker on the machine) leaves this worker without metrics, with a warning, rather than without a worker.
 */
async function serveMetrics(metrics: WorkerMetrics, port: number, logger: Logger): Promise<HttpServer | undefined> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('Not found: the worker serves GET /metrics only.\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text),
      (error: unknown) => {
        logger.warn({ err: error }, 'metrics could not be collected');
        res.writeHead(500, { 'Content-Type': 'text/plain' }).end('metrics could not be collected\n');
      },
    );
  });
  const listening = await new Promise<boolean>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(false) : reject(error)));
    server.listen(port, () => resolve(true));
  });
  if (!listening) {
    logger.warn(
      { port },
      'METRICS_PORT is in use (another worker on this machine?): this worker serves no metrics; give each worker its own METRICS_PORT',
    );
    return undefined;
  }
  logger.info({ port: (server.address() as AddressInfo).port }, 'worker metrics on /metrics');
  return server;
}

function closeServer(server: HttpServer | undefined): Promise<void> {
  return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
}

/** What a job processor is built from: a process's repositories, its Redis client (claims, publishes) and config. */
export interface JobProcessorParts {
  repos: Repositories;
  redis: Redis;
  config: Config;
  logger: Logger;
}

/**
 * The one place a JobProcessor is wired: the worker, the tests and the fault suite build theirs here. `overrides`
 * replaces parts (a clock, an observer), or wraps them when it is a function of the wired ones (a failing store).
 */
export function createJobProcessor(
  { repos, redis, config, logger }: JobProcessorParts,
  overrides: Partial<JobProcessorDeps> | ((deps: JobProcessorDeps) => Partial<JobProcessorDeps>) = {},
): JobProcessor {
  const deps: JobProcessorDeps = {
    aggregates: repos.aggregates,
    history: repos.history,
    processed: repos.processed,
    series: repos.series,
    batches: new BatchStore(redis, config.QUEUE_NAME),
    lanes: new LanePool(),
    publisher: redis,
    channel: eventsChannel(config.QUEUE_NAME),
    logger,
    maxGroupPoints: config.WORKER_GROUP_POINTS,
  };
  return new JobProcessor({ ...deps, ...(typeof overrides === 'function' ? overrides(deps) : overrides) });
}

/** Wires the worker: the queue consumer, the repositories and the publisher. */
export async function createWorkerComponents(config: Config, logger: Logger, options: WorkerOptions = {}): Promise<WorkerComponents> {
  const connection = await connectMongo(config.MONGODB_URI, logger, true);
  const redis = createRedis(config.REDIS_URL, 'worker', logger);
  const repos = await createRepositories({ connection, config, redis, logger });
  await repos.retention.start();
  const { queue, close: closeQueue } = createIngestQueue(queueSettings(config), 'worker', logger);
  const metrics = createWorkerMetrics();
  const processor = createJobProcessor(
    { repos, redis, config, logger },
    {
      clock: options.clock,
      observer: {
        group(jobs, points) {
          metrics.groupJobs.observe(jobs);
          metrics.groupPoints.observe(points);
        },
        storeWrite(write, seconds) {
          metrics.storeWrite.observe({ write }, seconds);
        },
      },
    },
  );
  const metricsServer = config.METRICS_PORT > 0 ? await serveMetrics(metrics, config.METRICS_PORT, logger) : undefined;
  const outages = new OutageWait(
    [
      { name: 'mongodb', check: async () => connection.db?.admin().ping() },
      { name: 'redis', check: () => redis.ping() },
    ],
    { ...OUTAGE_WAIT_DEFAULTS, budgetMs: config.JOB_OUTAGE_WAIT_MS },
    logger,
  );

  queue.on('failed', (job, error) => {
    const final = error instanceof PermanentJobError || job.attemptsMade >= (job.opts.attempts ?? 1);
    metrics.jobs.inc({ outcome: final ? 'failed' : 'retried' });
    logger.warn(
      { jobId: job.id, attempt: job.attemptsMade, final, err: error.message },
      final ? 'job failed for good' : 'job failed; it will be retried',
    );
    if (final) {
      processor
        .failBatch(String(job.id), job.data, batchFailureMessage(error, job.attemptsMade))
        .catch((failure: unknown) => logger.error({ err: failure }, 'could not mark a batch failed'));
    }
  });

  let stopping = false;
  const steps: ShutdownStep[] = [
    // Bull's close stops taking jobs and waits for the active ones to finish.
    {
      name: 'queue',
      run: () => {
        stopping = true;
        return closeQueue();
      },
    },
    { name: 'history retention', run: () => repos.retention.stop() },
    { name: 'metrics', run: () => closeServer(metricsServer) },
    {
      name: 'redis',
      run: async () => {
        await redis.quit();
      },
    },
    { name: 'mongodb', run: () => connection.close() },
  ];
  return {
    queue,
    processor,
    start() {
      const taking = queue.process(config.WORKER_CONCURRENCY, async (job) => {
        try {
          const stopTimer = metrics.jobDuration.startTimer();
          const outcome = await outages.run(
            String(job.id),
            () => processor.process({ id: String(job.id), data: job.data, attempt: job.attemptsMade + 1 }),
            () => stopping,
          );
          stopTimer();
          metrics.jobs.inc({ outcome: outcome.status.replace('-', '_') });
          if (outcome.status === 'processed') metrics.pointsProcessed.inc(outcome.points);
          logger.debug({ jobId: job.id, outcome }, 'job done');
          return outcome;
        } catch (error) {
          if (error instanceof PermanentJobError) void job.discard();
          throw error;
        }
      });
      // Bull's process() rejects when its connection closes under it: a stop right after start, not a failure.
      taking.catch((error: unknown) => {
        if (!stopping) logger.error({ err: error }, 'the worker stopped taking jobs');
      });
    },
    close: createShutdown(steps, logger, config.SHUTDOWN_TIMEOUT_MS),
  };
}
