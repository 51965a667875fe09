import type { Point } from '../domain/point-schema';
import type { BucketDelta } from '../domain/series';
import type { KeyDelta } from '../domain/stats';
import {
  isRefusal,
  isRefusedData,
  type AggregateStore,
  type HistoryStore,
  type ProcessedRecord,
  type ProcessedRecordStore,
  type SeriesStore,
} from '../storage/contract';
import type { JobGuard } from '../exactly-once/guard';
import { takeOnePerLane } from '../exactly-once/lane-pool';
import { PermanentJobError } from './job-errors';

/** Everything one job writes to MongoDB. */
export interface JobWrites {
  guard: JobGuard;
  deltas: readonly KeyDelta[];
  /** The job's rollup buckets (domain/series.ts). */
  buckets: readonly BucketDelta[];
  batchId: string;
  points: readonly Point[];
  receivedAt: Date;
  /** When the job started: the record's duration runs from here to its write. */
  startedAt: number;
  /** Written last: a job with a record is done. */
  record: Omit<ProcessedRecord, 'processedAt' | 'durationMs'>;
}

export interface WriteCombinerDeps {
  aggregates: AggregateStore;
  history: Pick<HistoryStore, 'insertJobs'>;
  processed: ProcessedRecordStore;
  series: SeriesStore;
  clock: () => number;
  /** Most points written together; a single larger job is still written alone. */
  maxPoints: number;
  /** How long a group waits for jobs still arriving (default 50 ms); 0 for callers that hand whole groups at once. */
  gatherMs?: number;
  /** Called once a group's statistics are stored, before its history is written. */
  statsStored?: (jobs: readonly JobWrites[]) => Promise<void>;
  /** Told each group's size and how long each of its writes took (worker metrics). */
  observer?: WriteObserver;
}

/** The writes of a group, in their order. */
export type StoreWrite = 'statistics' | 'series' | 'history' | 'processed';

export interface WriteObserver {
  group(jobs: number, points: number): void;
  storeWrite(write: StoreWrite, seconds: number): void;
}

/** Runs `write` and tells the observer how long it took, failed or not. */
async function timed<T>(observer: WriteObserver | undefined, write: StoreWrite, run: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await run();
  } finally {
    observer?.storeWrite(write, (performance.now() - started) / 1000);
  }
}

interface Pending {
  writes: JobWrites;
  resolve: () => void;
  reject: (error: unknown) => void;
}

// Before a group is taken, wait while jobs keep arriving (every few ms), up to a bound: the jobs Bull hands over
// after a group completes arrive one by one, and without this the first of them would be written alone.
const GATHER_STEP_MS = 5;
const GATHER_MAX_MS = 50;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Group commit for the jobs one worker runs at once. While one group is
 * being written, the jobs that finish their preparation queue up; the next
 * group writes them together: one guarded update per key for all of them
 * (see AggregateStore.applyGroup), then the rollup buckets the same way, then `statsStored` (the worker
 * publishes the new statistics), one history insert, one insert of
 * processed records. The cost of a job's aggregate writes depends on its
 * number of keys, not its points, so under load a worker pays it once per
 * group instead of once per job. A job's promise settles when its group is
 * written; if the store refuses the group, its jobs are written again one
 * by one (see `settle`), so one bad job never takes the others down.
 */
export class WriteCombiner {
  private readonly pending: Pending[] = [];
  private writing = false;

  constructor(private readonly deps: WriteCombinerDeps) {}

  /** Resolves once the job's aggregates, history and processed record are written. */
  write(writes: JobWrites): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ writes, resolve, reject });
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      for (let group = await this.gatherGroup(); group.length > 0; group = await this.gatherGroup()) {
        await this.settle(group);
      }
    } finally {
      this.writing = false;
    }
    // A job that arrived while the last (empty) group was being taken would otherwise wait for the next arrival.
    if (this.pending.length > 0) void this.drain();
  }

  /**
   * Writes a group and settles its jobs. When the store refuses some of the group's statements, the group is
   * written again one job at a time: a job whose data the store refuses fails alone, the others complete now
   * instead of after a retry. When the store does not answer (down, unreachable, timed out), the whole group fails
   * at once and is retried, and so do the jobs still to be written alone.
   */
  private async settle(group: readonly Pending[]): Promise<void> {
    try {
      await this.writeGroup(group.map((entry) => entry.writes));
      for (const entry of group) entry.resolve();
    } catch (error) {
      if (group.length === 1 || !isRefusal(error)) {
        for (const entry of group) entry.reject(error);
        return;
      }
      for (const [index, entry] of group.entries()) {
        try {
          await this.writeGroup([entry.writes]);
          entry.resolve();
        } catch (alone) {
          entry.reject(alone);
          if (alone instanceof PermanentJobError || isRefusal(alone)) continue;
          for (const rest of group.slice(index + 1)) rest.reject(alone);
          return;
        }
      }
    }
  }

  /** Waits while jobs keep arriving (see GATHER_STEP_MS), then takes a group. */
  private async gatherGroup(): Promise<Pending[]> {
    // Jobs handed over in the same turn of the event loop are all pending once this resumes.
    await Promise.resolve();
    const deadline = Date.now() + (this.deps.gatherMs ?? GATHER_MAX_MS);
    let seen = this.pending.length;
    while (seen > 0 && this.pendingPoints() < this.deps.maxPoints && Date.now() < deadline) {
      await sleep(GATHER_STEP_MS);
      if (this.pending.length === seen) break;
      seen = this.pending.length;
    }
    return this.takeGroup();
  }

  private pendingPoints(): number {
    return this.pending.reduce((total, entry) => total + entry.writes.points.length, 0);
  }

  /** The oldest pending jobs up to `maxPoints`, at most one per lane (exactly-once/window.ts, "one lane per group"). */
  private takeGroup(): Pending[] {
    return takeOnePerLane(
      this.pending,
      (entry) => entry.writes.guard,
      (entry) => entry.writes.points.length,
      this.deps.maxPoints,
    );
  }

  private async writeGroup(jobs: readonly JobWrites[]): Promise<void> {
    const now = new Date(this.deps.clock());
    this.deps.observer?.group(
      jobs.length,
      jobs.reduce((total, job) => total + job.points.length, 0),
    );
    try {
      await timed(this.deps.observer, 'statistics', () => this.deps.aggregates.applyGroup(jobs, now));
    } catch (error) {
      if (jobs.length > 1 || !isRefusedData(error)) throw error;
      // A job alone whose statistics the store refuses: its points still go to history, so none is lost and no
      // key counts points that history lacks; then it fails for good, since the same update would be refused again.
      await this.insertHistory(jobs, now, { counted: false });
      throw new PermanentJobError(
        `the database refused to update the statistics of this batch's keys (a stored statistic is out of range); ` +
          `its ${jobs[0]?.points.length ?? 0} points are in history, and the statistics of its keys may not count them`,
      );
    }
    await timed(this.deps.observer, 'series', () =>
      this.deps.series.applyGroup(
        jobs.map((job) => ({ buckets: job.buckets, guard: job.guard })),
        now,
      ),
    );
    // Subscribers hear of the new statistics now, not after the history insert, which is most of a group's time.
    await this.deps.statsStored?.(jobs);
    await this.insertHistory(jobs, now);
    const recordedAt = this.deps.clock();
    await timed(this.deps.observer, 'processed', () =>
      this.deps.processed.recordAll(jobs.map((job) => ({ ...job.record, durationMs: recordedAt - job.startedAt, processedAt: now }))),
    );
  }

  /** One history insert for the jobs; a job alone whose points the store refuses fails for good. */
  private async insertHistory(jobs: readonly JobWrites[], now: Date, options?: { counted: boolean }): Promise<void> {
    try {
      await timed(this.deps.observer, 'history', () => this.deps.history.insertJobs(jobs, now, options));
    } catch (error) {
      if (jobs.length > 1 || !isRefusedData(error)) throw error;
      throw new PermanentJobError(`the database refused to store some of this batch's points in history`);
    }
  }
}
