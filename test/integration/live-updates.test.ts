import type { BatchDone } from '../../src/exactly-once/batch-store';
import type { HistoryStore } from '../../src/storage/contract';
import type { StatsUpdate } from '../../src/sockets/socket-events';
import { postJson, startHarness, waitFor, type Harness } from '../support/harness';
import { storedPoints } from '../support/stored-history';

let h: Harness;

beforeAll(async () => {
  // No Bull worker: the test runs the batch's job itself, with its history insert held back.
  h = await startHarness({}, { workers: 0 });
});

afterAll(async () => {
  await h.close();
});

/** The real history repository, whose inserts wait until `release` is called. */
function heldHistory(real: HistoryStore): { history: HistoryStore; release: () => void } {
  let release = (): void => undefined;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const history = Object.create(real) as HistoryStore;
  history.insertJobs = async (jobs, processedAt) => {
    await gate;
    return real.insertJobs(jobs, processedAt);
  };
  return { history, release };
}

describe('live updates while a job is written', () => {
  it('when a job has stored its statistics but not yet its history, then subscribers get stats:update, and batch:done only once the history is written', async () => {
    const key = 'live/early';
    const socket = await h.connect();
    expect((await socket.emitWithAck('subscribe', { keys: [key], jobs: true })).ok).toBe(true);
    const updates: StatsUpdate[] = [];
    const done: BatchDone[] = [];
    socket.on('stats:update', (update) => updates.push(update));
    socket.on('batch:done', (event) => done.push(event));

    const accepted = await postJson(h.baseUrl, { points: [1, 2, 3].map((value) => ({ key, value })) });
    expect(accepted.status).toBe(202);
    const batchId = String(accepted.body.batchId);
    const job = await h.api.queue.getJob(`${batchId}:0`);
    if (!job) throw new Error('the batch has no job');

    let held: ReturnType<typeof heldHistory> | undefined;
    const processor = await h.buildProcessor((deps) => {
      held = heldHistory(deps.history);
      return { history: held.history };
    });
    const running = processor.process({ id: String(job.id), data: job.data, attempt: 1 });

    const update = await waitFor(() => updates.find((candidate) => candidate.batchId === batchId), 20_000, 'stats:update');
    expect(update.stats).toMatchObject({ key, count: 3, sum: 6, min: 1, max: 3 });
    // Not yet in history, so the batch is not done either.
    expect(await storedPoints(h.db, { key })).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(done.filter((event) => event.batchId === batchId)).toEqual([]);

    held?.release();
    await expect(running).resolves.toMatchObject({ status: 'processed', points: 3 });
    const finished = await waitFor(() => done.find((event) => event.batchId === batchId), 20_000, 'batch:done');
    expect(finished).toMatchObject({ status: 'completed', points: 3, keys: 1 });
    expect(await storedPoints(h.db, { key })).toBe(3);
    // One stats:update for the job, not a second one when it is done.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(updates.filter((candidate) => candidate.batchId === batchId)).toHaveLength(1);
  });
});
