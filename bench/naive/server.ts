/**
 * The original design's API, re-created as the benchmark's baseline: every
 * point of a request becomes one Bull job. Not part of the service.
 */
import { randomUUID } from 'node:crypto';
import Queue from 'bull';
import express from 'express';
import { readNaiveEnv, type NaiveJob } from './model';

function parsePoints(body: unknown): NaiveJob[] | null {
  if (typeof body !== 'object' || body === null || !('points' in body) || !Array.isArray(body.points)) return null;
  const points: NaiveJob[] = [];
  for (const item of body.points as unknown[]) {
    if (typeof item !== 'object' || item === null) return null;
    const { key, value, timestamp } = item as Record<string, unknown>;
    if (typeof key !== 'string' || typeof value !== 'number' || typeof timestamp !== 'number') return null;
    points.push({ key, value, timestamp });
  }
  return points;
}

function main(): void {
  const env = readNaiveEnv(process.env);
  // Completed jobs are removed: the original kept them, which only costs Redis memory, not time.
  const queue = new Queue<NaiveJob>(env.queueName, env.redisUrl, { defaultJobOptions: { removeOnComplete: true } });
  const app = express();
  app.use(express.json({ limit: '16mb' }));
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.post('/api/data/ingest', async (req, res) => {
    const points = parsePoints(req.body);
    if (!points) {
      res.status(400).json({ error: 'expected {"points": [{"key", "value", "timestamp"}]}' });
      return;
    }
    // One job per point (added in one round trip, which is kinder to the baseline than one add per point).
    await queue.addBulk(points.map((point) => ({ data: point })));
    res.status(202).json({ batchId: randomUUID(), accepted: points.length, rejected: [] });
  });
  const server = app.listen(env.port, '127.0.0.1');
  const stop = (): void => {
    server.close();
    void queue.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main();
