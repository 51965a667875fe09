import { randomBytes } from 'node:crypto';
import type { Point } from '../../src/domain/point-schema';
import { bucketDeltas } from '../../src/domain/series';
import { groupByKey } from '../../src/domain/stats';
import type { AggregateStore } from '../../src/storage/contract';
import type { JobGuard } from '../../src/exactly-once/guard';
import type { JobWrites } from '../../src/services/write-combiner';

const SLOT = 1000;

/** What one job of lane `lane` (its `seq`-th) writes: `points` as [key, value], a batch of its own. */
export function jobWrites(lane: string, seq: number, points: [string, number][], batchPrefix = 'group-batch'): JobWrites {
  const batchId = `${batchPrefix}-${randomBytes(4).toString('hex')}`;
  const pointList: Point[] = points.map(([key, value], i) => ({ key, value, ts: 1_700_000_000_000 + i, i }));
  const guard: JobGuard = { slot: SLOT, lane, seq };
  return {
    guard,
    deltas: groupByKey(pointList),
    buckets: bucketDeltas(pointList, { '1m': null, '1h': null, '1d': null }, Date.now()),
    batchId,
    points: pointList,
    receivedAt: new Date(),
    startedAt: Date.now(),
    record: { _id: `${batchId}:0`, batchId, chunk: 0, points: pointList.length, keys: 1, guard: `${SLOT}.${lane}.${seq}`, attempt: 1 },
  };
}

/** The aggregate store with a record of the number of jobs in each group write. */
export function countingAggregates(real: AggregateStore, groups: number[]): AggregateStore {
  const counting = Object.create(real) as AggregateStore;
  counting.applyGroup = (jobs, now) => {
    groups.push(jobs.length);
    return real.applyGroup(jobs, now);
  };
  return counting;
}
