import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type Redis from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from './config/config';
import { AccessControl } from './http/access';
import { createApp } from './http/app';
import { closeHttpServer, createHttpServer } from './http/http-server';
import { closeServer, serveMetrics } from './http/metrics-server';
import { RateLimiter } from './http/rate-limit';
import { createShutdown, type ShutdownStep } from './lifecycle/shutdown';
import { createMetrics, createWorkerMetrics } from './metrics';
import { BatchStore } from './exactly-once/batch-store';
import { eventsChannel } from './queue/events';
import { IdempotencyStore } from './exactly-once/idempotency-store';
import { createIngestQueue, type IngestQueue, type QueueSettings } from './queue/ingest-queue';
import { createRedis } from './queue/redis';
import { IngestService } from './services/ingest-service';
import { JobProcessor, type JobProcessorDeps } from './services/job-processor';
import { LanePool } from './exactly-once/lane-pool';
import { JobRunner } from './services/job-runner';
import { OUTAGE_WAIT_DEFAULTS, OutageWait } from './services/outage-wait';
import { createRepositories, type Repositories } from './storage';
import { connectMongo } from './storage/connect';
import { attachSocketServer, type SocketServer } from './sockets/socket-server';

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
  const httpServer = createHttpServer(app, config.REQUEST_TIMEOUT_MS);
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
    { name: 'http and socket.io', run: () => closeHttpServer(httpServer, sockets.close()) },
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
  const metricsServer = config.METRICS_PORT > 0 ? await serveMetrics(metrics.registry, config.METRICS_PORT, logger) : undefined;
  const outages = new OutageWait(
    [
      { name: 'mongodb', check: async () => connection.db?.admin().ping() },
      { name: 'redis', check: () => redis.ping() },
    ],
    { ...OUTAGE_WAIT_DEFAULTS, budgetMs: config.JOB_OUTAGE_WAIT_MS },
    logger,
  );
  const runner = new JobRunner({ queue, processor, outages, metrics, logger, concurrency: config.WORKER_CONCURRENCY });

  const steps: ShutdownStep[] = [
    // Bull's close stops taking jobs and waits for the active ones to finish.
    {
      name: 'queue',
      run: () => {
        runner.stop();
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
    start: () => runner.start(),
    close: createShutdown(steps, logger, config.SHUTDOWN_TIMEOUT_MS),
  };
}
