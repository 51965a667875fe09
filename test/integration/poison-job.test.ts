import { applyJob } from '../support/store-writes';
import type { KeyDelta } from '../../src/domain/stats';
import { PermanentJobError } from '../../src/services/job-errors';
import type { JobProcessorDeps } from '../../src/services/job-processor';
import { WriteCombiner, type JobWrites } from '../../src/services/write-combiner';
import { countingAggregates, jobWrites } from '../support/group-writes';
import { getJson, postJson, startHarness, waitForBatch, type Harness } from '../support/harness';
import { storedPoints } from '../support/stored-history';

let h: Harness;
let deps: JobProcessorDeps;

beforeAll(async () => {
  h = await startHarness();
  await h.buildProcessor((built) => {
    deps = built;
    return {};
  });
});

afterAll(async () => {
  await h.close();
});

/**
 * Stores the largest double as the sum of `key`, as data written before values were bounded could hold: a point of
 * 1e292 more makes the store refuse the update (FerretDB: BadValue, an infinite sum).
 */
async function poisonAggregate(key: string, lane: string): Promise<void> {
  const max = Number.MAX_VALUE;
  const delta: KeyDelta = { key, count: 1, sum: max, min: max, max, firstTs: 1, lastTs: 1, lastValue: max };
  await applyJob(deps.aggregates, [delta], { slot: 1000, lane, seq: 1 });
}

const job = (lane: string, points: [string, number][]): JobWrites => jobWrites(lane, 1, points, 'poison-batch');

async function stats(key: string): Promise<{ status: number; body: any }> {
  return getJson(h.baseUrl, `/api/data/stats/${encodeURIComponent(key)}`);
}

describe('a value that would overflow a sum', () => {
  it('when two points of 1.7976931348623157e308 are posted, then the request is a 400 naming the allowed range and nothing is stored', async () => {
    const body = '[{"key":"poison/max","value":1.7976931348623157e308},{"key":"poison/max","value":1.7976931348623157e308}]';
    const answer = await postJson(h.baseUrl, body);
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('NO_VALID_POINTS');
    expect(answer.body.error.details).toEqual([
      { index: 0, message: "value must be between -1e292 and 1e292, so that the sum of a key's values stays finite" },
      { index: 1, message: "value must be between -1e292 and 1e292, so that the sum of a key's values stays finite" },
    ]);
    expect((await stats('poison/max')).status).toBe(404);
  });

  it('when points of the largest allowed magnitude are posted, then they are counted and the sum is finite', async () => {
    const answer = await postJson(h.baseUrl, [
      { key: 'poison/edge', value: 1e292 },
      { key: 'poison/edge', value: 1e292 },
      { key: 'poison/edge', value: -1e292 },
    ]);
    expect(answer.status).toBe(202);
    expect((await waitForBatch(h.baseUrl, answer.body.batchId)).status).toBe('completed');
    const { body } = await stats('poison/edge');
    expect(body).toMatchObject({ count: 3, sum: 1e292, min: -1e292, max: 1e292 });
  });
});

describe('a job whose data the store refuses, grouped with healthy jobs', () => {
  it('when the group is refused, then the healthy jobs are written alone at once and only the bad one fails, its points kept in history', async () => {
    await poisonAggregate('poison/grouped', 'seeda');
    const groups: number[] = [];
    const writer = new WriteCombiner({
      ...deps,
      aggregates: countingAggregates(deps.aggregates, groups),
      clock: Date.now,
      maxPoints: 20_000,
    });
    const healthyA = job('lanea', [
      ['poison/healthy-a', 1],
      ['poison/healthy-a', 2],
    ]);
    const bad = job('laneb', [
      ['poison/grouped', 1e292],
      ['poison/healthy-a', 100],
    ]);
    const healthyB = job('lanec', [['poison/healthy-b', 5]]);
    const outcomes = await Promise.allSettled([writer.write(healthyA), writer.write(bad), writer.write(healthyB)]);

    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const failure = (outcomes[1] as PromiseRejectedResult).reason as Error;
    expect(failure).toBeInstanceOf(PermanentJobError);
    expect(failure.message).toMatch(/refused to update the statistics/);
    // One try as a group, then each job alone.
    expect(groups).toEqual([3, 1, 1, 1]);
    expect((await stats('poison/healthy-b')).body).toMatchObject({ count: 1, sum: 5 });
    expect(await storedPoints(h.db, { batchId: { $in: [healthyA.batchId, healthyB.batchId, bad.batchId] } })).toBe(5);
    const records = h.db.collection('processedrecords');
    expect(await records.countDocuments({ batchId: { $in: [healthyA.batchId, healthyB.batchId] } })).toBe(2);
    expect(await records.countDocuments({ batchId: bad.batchId })).toBe(0);
  });

  it('when a batch hits a refused aggregate in the worker, then it fails at once with a message of ours and a batch sent beside it completes on its first attempt', async () => {
    await poisonAggregate('poison/worker', 'seedb');
    const [bad, healthy] = await Promise.all([
      postJson(h.baseUrl, [{ key: 'poison/worker', value: 1e292 }]),
      postJson(
        h.baseUrl,
        Array.from({ length: 50 }, (_, i) => ({ key: 'poison/beside', value: i })),
      ),
    ]);
    expect([bad.status, healthy.status]).toEqual([202, 202]);

    const badStatus = await waitForBatch(h.baseUrl, bad.body.batchId);
    const healthyStatus = await waitForBatch(h.baseUrl, healthy.body.batchId);
    expect(badStatus.status).toBe('failed');
    expect(badStatus.error).toMatch(/^the database refused to update the statistics of this batch's keys/);
    expect(badStatus.error).not.toMatch(/invalid value|Inf|MongoServerError|BulkWrite/);
    expect(healthyStatus).toMatchObject({ status: 'completed', processedPoints: 50 });
    expect((await stats('poison/beside')).body).toMatchObject({ count: 50, sum: 1225 });

    // Failed for good on its first attempt: no retries meanwhile.
    const [failedJob] = await h.api.queue.getFailed();
    expect(failedJob?.attemptsMade).toBe(1);
    const records = await h.db.collection('processedrecords').find({ batchId: healthy.body.batchId }).toArray();
    expect(records.map((record) => record.attempt)).toEqual([1]);
    // Its point is kept for audit.
    expect(await storedPoints(h.db, { batchId: bad.body.batchId })).toBe(1);
  });
});
