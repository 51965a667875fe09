import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface ApiMetrics {
  registry: Registry;
  ingested: Counter;
  rejected: Counter;
  jobLatency: Histogram;
  /** Events sent to sockets, by event name (one per room emit). */
  socketEvents: Counter<'event'>;
  /** Open Socket.io connections. */
  socketConnections: Gauge;
}

export interface MetricSources {
  queueCounts: () => Promise<Record<'waiting' | 'active' | 'delayed' | 'failed', number>>;
  processedPoints: () => Promise<number>;
}

/**
 * A registry per app (not prom-client's global one), so tests can build many
 * apps in one process. Queue depth and processed points are read at scrape
 * time, since the workers, not this process, do the processing.
 */
export function createMetrics(sources: MetricSources): ApiMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const ingested = new Counter({
    name: 'ingest_points_accepted_total',
    help: 'Points accepted (202) by this API instance',
    registers: [registry],
  });
  const rejected = new Counter({
    name: 'ingest_points_rejected_total',
    help: 'Points rejected by validation in this API instance',
    registers: [registry],
  });
  const jobLatency = new Histogram({
    name: 'job_latency_seconds',
    help: 'From a batch being received to one of its jobs being persisted, as seen by this API instance',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  new Gauge({
    name: 'queue_jobs',
    help: 'Jobs in the ingest queue by state',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const counts = await sources.queueCounts();
      for (const [state, count] of Object.entries(counts)) this.set({ state }, count);
    },
  });
  new Gauge({
    name: 'ingest_points_processed',
    help: 'Points persisted by all workers, each job counted once',
    registers: [registry],
    async collect() {
      this.set(await sources.processedPoints());
    },
  });
  const socketEvents = new Counter({
    name: 'socket_events_emitted_total',
    help: 'Events this API instance sent to Socket.io rooms, by event',
    labelNames: ['event'],
    registers: [registry],
  });
  const socketConnections = new Gauge({
    name: 'socket_connections',
    help: 'Open Socket.io connections on this API instance',
    registers: [registry],
  });
  return { registry, ingested, rejected, jobLatency, socketEvents, socketConnections };
}

/** What a worker measures of its own work; served on METRICS_PORT. */
export interface WorkerMetrics {
  registry: Registry;
  /** Points this worker persisted (each job once: re-runs of done jobs add nothing). */
  pointsProcessed: Counter;
  /** Jobs by outcome: processed, already_processed, abandoned, retried, failed. */
  jobs: Counter<'outcome'>;
  jobDuration: Histogram;
  groupJobs: Histogram;
  groupPoints: Histogram;
  /** One group's write to the store, by what it wrote: statistics, history or processed (records). */
  storeWrite: Histogram<'write'>;
}

export function createWorkerMetrics(): WorkerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    pointsProcessed: new Counter({
      name: 'worker_points_processed_total',
      help: 'Points this worker persisted, each job counted once',
      registers: [registry],
    }),
    jobs: new Counter({
      name: 'worker_jobs_total',
      help: 'Jobs this worker ran, by outcome',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    jobDuration: new Histogram({
      name: 'worker_job_duration_seconds',
      help: 'From a job starting on this worker to its points being persisted',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    groupJobs: new Histogram({
      name: 'worker_group_jobs',
      help: 'Jobs written together in one group commit',
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers: [registry],
    }),
    groupPoints: new Histogram({
      name: 'worker_group_points',
      help: 'Points written together in one group commit',
      buckets: [10, 100, 1000, 4000, 16000, 64000],
      registers: [registry],
    }),
    storeWrite: new Histogram({
      name: 'store_write_duration_seconds',
      help: "One group's write to the store, by what it wrote (history includes the recent tier on FerretDB)",
      labelNames: ['write'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
  };
}
