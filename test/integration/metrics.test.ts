import fs from 'node:fs';
import path from 'node:path';
import { createWorkerComponents, type WorkerComponents } from '../../src/composition';
import { createLogger } from '../../src/logger';
import { createMetrics, createWorkerMetrics } from '../../src/metrics';
import { postJson, startHarness, waitFor, waitForBatch, type Harness } from '../support/harness';
import { freePort } from '../../scripts/free-port';

let h: Harness;
let worker: WorkerComponents;
let metricsPort: number;

/** One sample's value from a Prometheus text exposition, or undefined. */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

beforeAll(async () => {
  h = await startHarness({}, { workers: 0 });
  metricsPort = await freePort();
  worker = await createWorkerComponents({ ...h.config, METRICS_PORT: metricsPort }, createLogger('silent', 'test'));
  worker.start();
});

afterAll(async () => {
  await worker.close();
  await h.close();
});

describe('metrics', () => {
  it('when a batch is processed, then the worker’s /metrics counts its points, its job, its group and its store writes', async () => {
    const socket = await h.connect();
    await socket.emitWithAck('subscribe', { keys: ['metrics/a'] });
    const { body } = await postJson(h.baseUrl, { points: [1, 2, 3].map((value) => ({ key: 'metrics/a', value })) });
    await waitForBatch(h.baseUrl, body.batchId);

    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(sample(text, 'worker_points_processed_total')).toBe(3);
    expect(sample(text, 'worker_jobs_total{outcome="processed"}')).toBe(1);
    expect(sample(text, 'worker_group_points_sum')).toBe(3);
    expect(sample(text, 'worker_group_jobs_count')).toBe(1);
    for (const write of ['statistics', 'history', 'processed']) {
      expect(sample(text, `store_write_duration_seconds_count{write="${write}"}`)).toBe(1);
    }
    expect(sample(text, 'worker_job_duration_seconds_count')).toBe(1);
    expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);

    const api = await waitFor(async () => {
      const scraped = await (await fetch(`${h.baseUrl}/metrics`)).text();
      return (sample(scraped, 'socket_events_emitted_total{event="stats:update"}') ?? 0) >= 1 ? scraped : undefined;
    });
    expect(sample(api, 'socket_connections')).toBe(1);
    expect(sample(api, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    socket.disconnect();
    await waitFor(async () => (sample(await (await fetch(`${h.baseUrl}/metrics`)).text(), 'socket_connections') === 0 ? true : undefined));
  });

  it('when a second worker on the machine finds METRICS_PORT taken, then it runs without metrics and the first keeps serving them', async () => {
    const second = await createWorkerComponents({ ...h.config, METRICS_PORT: metricsPort }, createLogger('silent', 'test'));
    try {
      second.start();
      expect((await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).status).toBe(200);
    } finally {
      await second.close();
    }
    expect((await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).status).toBe(200);
  });

  it('when the worker’s metrics port is asked for anything but GET /metrics, then it answers 404', async () => {
    expect((await fetch(`http://127.0.0.1:${metricsPort}/`)).status).toBe(404);
  });
});

describe('docs/grafana-dashboard.json', () => {
  const dashboard = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'grafana-dashboard.json'), 'utf8'));
  const panels: any[] = dashboard.panels;

  it('when imported into Grafana, then it has the shape of a dashboard with a Prometheus data source input', () => {
    expect(dashboard).toMatchObject({ title: expect.any(String), uid: expect.any(String), schemaVersion: expect.any(Number) });
    expect(dashboard.__inputs).toEqual([expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' })]);
    expect(new Set(panels.map((panel) => panel.id)).size).toBe(panels.length);
    for (const panel of panels) {
      expect(panel).toMatchObject({
        type: expect.stringMatching(/^(timeseries|stat)$/),
        title: expect.any(String),
        datasource: { type: 'prometheus', uid: '${DS_PROMETHEUS}' },
        gridPos: { x: expect.any(Number), y: expect.any(Number), w: expect.any(Number), h: expect.any(Number) },
      });
      expect(panel.targets.length).toBeGreaterThan(0);
      for (const target of panel.targets) expect(target).toMatchObject({ refId: expect.any(String), expr: expect.any(String) });
    }
  });

  it('when its queries run, then every metric they name is one the API or a worker exports', async () => {
    const exported = new Set<string>();
    const registries = [
      createMetrics({
        queueCounts: () => Promise.resolve({ waiting: 0, active: 0, delayed: 0, failed: 0 }),
        processedPoints: () => Promise.resolve(0),
      }).registry,
      createWorkerMetrics().registry,
    ];
    for (const registry of registries) {
      for (const metric of await registry.getMetricsAsJSON()) {
        exported.add(metric.name);
        if (String(metric.type) === 'histogram')
          for (const suffix of ['_bucket', '_sum', '_count']) exported.add(`${metric.name}${suffix}`);
      }
    }
    const named = new Set<string>();
    for (const panel of panels) {
      for (const target of panel.targets) {
        // Drop label lists, selectors and ranges; what is left is functions and metric names.
        const bare = (target.expr as string).replace(/\b(by|without)\s*\([^)]*\)/g, ' ').replace(/\{[^}]*\}|\[[^\]]*\]/g, ' ');
        for (const word of bare.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? []) {
          if (!['sum', 'max', 'min', 'avg', 'rate', 'irate', 'increase', 'histogram_quantile'].includes(word)) named.add(word);
        }
      }
    }
    expect(named.size).toBeGreaterThan(10);
    expect([...named].filter((name) => !exported.has(name))).toEqual([]);
  });
});
