import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface ApiMetrics {
  registry: Registry;
  ingested: Counter;
  rejected: Counter;
  jobLatency: Histogram;
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
  return { registry, ingested, rejected, jobLatency };
}
