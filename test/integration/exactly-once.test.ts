import type { HistoryStore } from '../../src/storage/contract';
import type { JobPayload } from '../../src/domain/job-payload';
import { getJson, postJson, startHarness, waitFor, waitForBatch, type Harness } from '../support/harness';
import { storedPoints } from '../support/stored-history';

const HOUR = 3600 * 1000;

/** A history repository whose first insert "crashes" the worker after the aggregates were written. */
function crashingHistory(real: HistoryStore): HistoryStore {
  const crashing = Object.create(real) as HistoryStore;
  crashing.insertJobs = () => Promise.reject(new Error('worker killed between the aggregate and history writes'));
  return crashing;
}

async function countOf(h: Harness, key: string): Promise<{ count: number; sum: number }> {
  const { body } = await getJson(h.baseUrl, `/api/data/stats/${encodeURIComponent(key)}`);
  return { count: body.count, sum: body.sum };
}

describe('exactly-once effect under at-least-once delivery', () => {
  let h: Harness;

  beforeAll(async () => {
    // No worker yet: the tests decide who runs each job and when.
    h = await startHarness({}, { workers: 0 });
  });

  afterAll(async () => {
    await h.close();
  });

  /** Posts points and returns the queued job (one chunk) without running it. */
  async function enqueue(points: { key: string; value: number }[]): Promise<{ batchId: string; jobId: string; data: JobPayload }> {
    const { status, body } = await postJson(h.baseUrl, points);
    expect(status).toBe(202);
    const jobId = `${body.batchId}:0`;
    const job = await h.api.queue.getJob(jobId);
    if (!job) throw new Error(`job ${jobId} is not in the queue`);
    return { batchId: body.batchId, jobId, data: job.data };
  }

  it('when a finished job is delivered again, then no count changes and no record is stored twice', async () => {
    const job = await enqueue([
      { key: 'replay', value: 2 },
      { key: 'replay', value: 3 },
    ]);
    const processor = await h.buildProcessor();
    expect(await processor.process({ id: job.jobId, data: job.data, attempt: 1 })).toMatchObject({ status: 'processed', points: 2 });
    for (let attempt = 2; attempt <= 5; attempt += 1) {
      expect(await processor.process({ id: job.jobId, data: job.data, attempt })).toEqual({ status: 'already-processed' });
    }
    expect(await countOf(h, 'replay')).toEqual({ count: 2, sum: 5 });
    expect(await storedPoints(h.db, { key: 'replay' })).toBe(2);
  });

  it('when a worker dies after the aggregates but before the history, then the re-run stores the history and counts nothing twice', async () => {
    const job = await enqueue([
      { key: 'crash/a', value: 10 },
      { key: 'crash/b', value: 1 },
    ]);
    const crashing = await h.buildProcessor((deps) => ({ history: crashingHistory(deps.history) }));
    await expect(crashing.process({ id: job.jobId, data: job.data, attempt: 1 })).rejects.toThrow(/worker killed/);
    // The aggregates were written by the crashed run...
    expect(await countOf(h, 'crash/a')).toEqual({ count: 1, sum: 10 });

    // ...and Bull hands the same job to a healthy worker.
    await h.startWorker();
    const batch = await waitForBatch(h.baseUrl, job.batchId);
    expect(batch).toMatchObject({ status: 'completed', processedPoints: 2 });
    expect(await countOf(h, 'crash/a')).toEqual({ count: 1, sum: 10 });
    expect(await countOf(h, 'crash/b')).toEqual({ count: 1, sum: 1 });
    expect(await storedPoints(h.db, { batchId: job.batchId })).toBe(2);
    await Promise.all(h.workers.splice(0).map((worker) => worker.close()));
  });

  describe('the guard window: a job interrupted mid-write and re-run later, after a newer job touched the same key', () => {
    const t0 = Date.UTC(2026, 0, 1, 0, 30);

    async function interruptThenRerunAfter(key: string, delayMs: number): Promise<{ count: number; sum: number }> {
      const first = await enqueue([{ key, value: 100 }]);
      const crashing = await h.buildProcessor((deps) => ({ history: crashingHistory(deps.history), clock: () => t0 }));
      await expect(crashing.process({ id: first.jobId, data: first.data, attempt: 1 })).rejects.toThrow(/worker killed/);

      const later = await h.buildProcessor(() => ({ clock: () => t0 + delayMs }));
      const newer = await enqueue([{ key, value: 1 }]);
      await later.process({ id: newer.jobId, data: newer.data, attempt: 1 });
      await later.process({ id: first.jobId, data: first.data, attempt: 2 });
      return countOf(h, key);
    }

    it('when the re-run comes 23 h later, then the job is counted once', async () => {
      expect(await interruptThenRerunAfter('window/inside', 23 * HOUR)).toEqual({ count: 2, sum: 101 });
    });

    it('when the re-run comes 31 h later, past the documented 24 h window, then it is counted again (where the promise ends)', async () => {
      expect(await interruptThenRerunAfter('window/outside', 31 * HOUR)).toEqual({ count: 3, sum: 201 });
    });
  });

  // The MongoDB profile forced on FerretDB is tested with one writer: FerretDB 1.24 loses concurrent updates of a document.
  const concurrentWriters = process.env.STORAGE_PROFILE === 'mongodb' ? it.skip : it;

  concurrentWriters(
    'when two workers process the same queue at once, then every count and sum is exact and no record is duplicated',
    async () => {
      await h.startWorker();
      await h.startWorker();
      const keys = ['pair/a', 'pair/b', 'pair/c'];
      const requests = Array.from({ length: 30 }, (_, r) =>
        Array.from({ length: 200 }, (_, i) => ({ key: keys[(r + i) % keys.length] as string, value: r * 1000 + i })),
      );
      const answers = await Promise.all(requests.map((points) => postJson(h.baseUrl, points)));
      expect(answers.every((answer) => answer.status === 202)).toBe(true);
      await Promise.all(answers.map((answer) => waitForBatch(h.baseUrl, answer.body.batchId, 60_000)));

      for (const key of keys) {
        const sent = requests.flat().filter((point) => point.key === key);
        expect(await countOf(h, key)).toEqual({ count: sent.length, sum: sent.reduce((total, point) => total + point.value, 0) });
      }
      const stored = await storedPoints(h.db, { key: { $in: keys } });
      expect(stored).toBe(30 * 200);
      const jobsPerWorker = await waitFor(async () => {
        const records = await h.db.collection('processedrecords').countDocuments({ batchId: { $in: answers.map((a) => a.body.batchId) } });
        return records === 30 ? records : undefined;
      });
      expect(jobsPerWorker).toBe(30);
    },
  );
});
