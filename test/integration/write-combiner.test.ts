import { applyJob } from '../support/store-writes';
import type { AggregateStore } from '../../src/storage/contract';
import type { JobProcessorDeps } from '../../src/services/job-processor';
import { WriteCombiner, type JobWrites } from '../../src/services/write-combiner';
import { countingAggregates, jobWrites } from '../support/group-writes';
import { getJson, startHarness, type Harness } from '../support/harness';
import { storedPoints } from '../support/stored-history';

let h: Harness;
let deps: JobProcessorDeps;

beforeAll(async () => {
  h = await startHarness({}, { workers: 0 });
  await h.buildProcessor((built) => {
    deps = built;
    return {};
  });
});

afterAll(async () => {
  await h.close();
});

const job = (lane: string, seq: number, points: [string, number][]): JobWrites => jobWrites(lane, seq, points, 'combiner-batch');

async function stats(key: string): Promise<{ count: number; sum: number; min: number; max: number }> {
  const { body } = await getJson(h.baseUrl, `/api/data/stats/${encodeURIComponent(key)}`);
  return { count: body.count, sum: body.sum, min: body.min, max: body.max };
}

function combiner(aggregates: AggregateStore, maxPoints = 20_000): WriteCombiner {
  return new WriteCombiner({ ...deps, aggregates, clock: Date.now, maxPoints });
}

describe('the write combiner (group commit of the jobs a worker runs at once)', () => {
  it('when several jobs are ready at once, then they are written as one group and each counts once', async () => {
    const groups: number[] = [];
    const writer = combiner(countingAggregates(deps.aggregates, groups));
    await Promise.all([
      writer.write(job('lanea', 1, [['comb/a', 1]])),
      writer.write(
        job('laneb', 1, [
          ['comb/a', 2],
          ['comb/b', 5],
        ]),
      ),
      writer.write(job('lanec', 1, [['comb/a', 4]])),
    ]);
    expect(groups).toEqual([3]);
    expect(await stats('comb/a')).toEqual({ count: 3, sum: 7, min: 1, max: 4 });
    expect(await stats('comb/b')).toEqual({ count: 1, sum: 5, min: 5, max: 5 });
    expect(await storedPoints(h.db, { key: { $in: ['comb/a', 'comb/b'] } })).toBe(4);
    expect(await h.db.collection('processedrecords').countDocuments({ batchId: { $regex: '^combiner-batch-' } })).toBe(3);
  });

  it('when a group holds a job that was already applied to a key (a re-run), then only the others are added there', async () => {
    const rerun = job('laned', 7, [
      ['comb/rerun', 100],
      ['comb/rerun-other', 1000],
    ]);
    // The first run wrote its aggregates, then its worker died.
    await applyJob(deps.aggregates, rerun.deltas, rerun.guard);

    const groups: number[] = [];
    const writer = combiner(countingAggregates(deps.aggregates, groups));
    await Promise.all([
      writer.write(job('lanee', 1, [['comb/elsewhere', 1]])),
      writer.write(rerun),
      writer.write(job('lanef', 1, [['comb/rerun', 10]])),
    ]);
    expect(groups).toEqual([3]);
    expect(await stats('comb/rerun')).toEqual({ count: 2, sum: 110, min: 10, max: 100 });
    expect(await stats('comb/rerun-other')).toEqual({ count: 1, sum: 1000, min: 1000, max: 1000 });
  });

  it('when pending jobs hold more points than the group limit, or two of one lane, then they go in separate groups', async () => {
    const groups: number[] = [];
    const writer = combiner(countingAggregates(deps.aggregates, groups), 3);
    await Promise.all([
      writer.write(job('laneg', 1, [['comb/limit', 1]])),
      writer.write(
        job('laneh', 1, [
          ['comb/limit', 1],
          ['comb/limit', 1],
        ]),
      ),
      writer.write(
        job('lanei', 1, [
          ['comb/limit', 1],
          ['comb/limit', 1],
        ]),
      ),
      writer.write(job('lanej', 1, [['comb/limit', 1]])),
      writer.write(job('lanej', 2, [['comb/limit', 1]])),
    ]);
    // g and h (3 points, the limit) | i and the first of lane j | the second of lane j.
    expect(groups).toEqual([2, 2, 1]);
    expect(await stats('comb/limit')).toMatchObject({ count: 7, sum: 7 });
  });

  it('when a job arrives the moment the one before it is written, then it is written without waiting for another', async () => {
    const writer = combiner(deps.aggregates);
    // The first write awaited through a helper, as a job processor does: its caller resumes just as the combiner
    // takes its next (empty) group. Nothing is written after the second job.
    const writeFirst = async (): Promise<void> => writer.write(job('lanek', 1, [['comb/next', 1]]));
    await writeFirst();
    await Promise.race([
      writer.write(job('lanel', 1, [['comb/next', 2]])),
      new Promise((_, reject) => setTimeout(() => reject(new Error('the second job was not written within 10 s')), 10_000)),
    ]);
    expect(await stats('comb/next')).toMatchObject({ count: 2, sum: 3 });
  });
});
