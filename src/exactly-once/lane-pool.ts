import { randomBytes } from 'node:crypto';
import { laneOf, slotOf, type JobGuard } from './guard';

/**
 * Exactly-once counting without transactions.
 *
 * Each worker runs jobs on lanes. A lane has an id and a sequence number that
 * grows by one per job, and it runs one job at a time; it takes its next job
 * only after every write of the current one was acknowledged. Any failure
 * retires the lane for good. So for every key, "the highest sequence of lane
 * L applied here" tells exactly whether job (L, s) was applied: it was iff
 * that number is >= s. Before writing, a job claims its (lane, seq) in Redis;
 * a re-run of the job (stalled lock, retry) adopts that claim instead of
 * taking a new one, so every run of a job writes under the same identity.
 *
 * Lanes are renewed every slot (6 h, see guard.ts for how long their entries are kept): a job run again
 * within 24 h of its first run is never counted twice.
 */
export interface Lane {
  slot: number;
  id: string;
  seq: number;
}

export class LanePool {
  private readonly idle: Lane[] = [];
  private readonly leased = new Map<string, Lane>();

  /** A lane of the current slot for one job, with its sequence already advanced for that job. */
  acquire(nowMs: number): JobGuard {
    const slot = slotOf(nowMs);
    let lane = this.idle.pop();
    while (lane && lane.slot !== slot) lane = this.idle.pop();
    const current = lane ?? { slot, id: randomBytes(6).toString('hex'), seq: 0 };
    current.seq += 1;
    this.leased.set(current.id, current);
    return { slot: current.slot, lane: current.id, seq: current.seq };
  }

  /** Gives a lane back after its job; a lane whose job failed is never used again. */
  release(guard: JobGuard, succeeded: boolean): void {
    const lane = this.leased.get(guard.lane);
    if (!lane) return;
    this.leased.delete(guard.lane);
    if (succeeded) this.idle.push(lane);
  }
}

/**
 * Takes out of `pending` (in place) its oldest entries up to `maxSize` in all, at most one per lane: one write raises
 * a lane once (window.ts, "one lane per group"). The first entry is taken whatever its size.
 */
export function takeOnePerLane<T>(pending: T[], guardOf: (entry: T) => JobGuard, sizeOf: (entry: T) => number, maxSize: number): T[] {
  const group: T[] = [];
  const lanes = new Set<string>();
  let size = 0;
  for (let index = 0; index < pending.length;) {
    const entry = pending[index] as T;
    const lane = laneOf(guardOf(entry));
    const entrySize = sizeOf(entry);
    if (group.length > 0 && (lanes.has(lane) || size + entrySize > maxSize)) {
      index += 1;
      continue;
    }
    group.push(entry);
    lanes.add(lane);
    size += entrySize;
    pending.splice(index, 1);
  }
  return group;
}
