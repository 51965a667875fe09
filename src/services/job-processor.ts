import type Redis from 'ioredis';
import type { Logger } from 'pino';
import { jobIdOf, jobPayloadSchema, type JobPayload } from '../domain/job-payload';
import { describeIssues } from '../domain/point-schema';
import { groupByKey } from '../domain/stats';
import type { AggregateStore, HistoryStore, ProcessedRecordStore, SeriesStore } from '../storage/contract';
import { bucketDeltas, newestMinutes, type SeriesRetention } from '../domain/series';
import type { BatchDone, BatchStore } from '../exactly-once/batch-store';
import type { JobEvent } from '../queue/events';
import { execOrThrow } from '../queue/redis';
import { formatGuard, parseGuard, type JobGuard } from '../exactly-once/guard';
import type { LanePool } from '../exactly-once/lane-pool';
import { CLAIM_TTL_SECONDS } from '../exactly-once/window';
import { PermanentJobError } from './job-errors';
import { WriteCombiner, type JobWrites, type WriteObserver } from './write-combiner';

export interface JobInput {
  id: string;
  data: unknown;
  attempt: number;
}

export type JobOutcome =
  | { status: 'processed'; points: number; keys: number; guard: string; adopted: boolean }
  | { status: 'already-processed' }
  | { status: 'abandoned' };

export interface JobProcessorDeps {
  aggregates: AggregateStore;
  history: HistoryStore;
  processed: ProcessedRecordStore;
  series: SeriesStore;
  batches: BatchStore;
  lanes: LanePool;
  publisher: Redis;
  channel: string;
  logger: Logger;
  /** Injected so tests can run a job "a day later". */
  clock?: () => number;
  /** WORKER_GROUP_POINTS: most points the jobs running at once write together (see write-combiner.ts). */
  maxGroupPoints: number;
  /** Told the size and write times of each group (worker metrics). */
  observer?: WriteObserver;
}

/**
 * Runs one job: aggregates (one bulkWrite), rollup buckets, a pub/sub message that its
 * keys changed, history (one unordered insert), a processed record (all
 * shared with the other jobs running at the same time, see
 * write-combiner.ts), the batch's progress, then a pub/sub message that the
 * job is done. Safe to run any number of times for the same job (see lane-pool.ts).
 */
export class JobProcessor {
  private readonly clock: () => number;
  private readonly combiner: WriteCombiner;

  constructor(private readonly deps: JobProcessorDeps) {
    this.clock = deps.clock ?? Date.now;
    this.combiner = new WriteCombiner({
      aggregates: deps.aggregates,
      history: deps.history,
      processed: deps.processed,
      series: deps.series,
      clock: this.clock,
      maxPoints: deps.maxGroupPoints,
      statsStored: (jobs) => this.publishStats(jobs),
      observer: deps.observer,
    });
  }

  async process(delivered: JobInput): Promise<JobOutcome> {
    const payload = parsePayload(delivered.data);
    // A job is known by what it carries, not by its queue id: a copy of a chunk under another Bull id (re-added by
    // hand, restored from a backup) is the same job, so it finds the same claim and the same processed record.
    const job = { ...delivered, id: jobIdOf(payload.batchId, payload.chunk) };
    const started = this.clock();
    const proposed = this.deps.lanes.acquire(started);
    let succeeded = false;
    try {
      // Claim first, then look for the processed record; never both at once (exactly-once/window.ts, "claim then
      // record"). In parallel, the record could be read just before it is written and the claim just after it is
      // dropped: a fresh claim, a new lane, and the job counted twice.
      const begun = await this.deps.batches.beginJob(job.id, payload.batchId, formatGuard(proposed), CLAIM_TTL_SECONDS);
      const done = await this.deps.processed.exists(job.id);
      if (begun.batchStatus === 'receiving') {
        // A streamed request that never completed: nothing of it was accepted.
        succeeded = true;
        return { status: 'abandoned' };
      }
      if (done) {
        await this.finish(job.id, payload);
        succeeded = true;
        return { status: 'already-processed' };
      }
      const guard = parseGuard(begun.claim);
      if (!guard) throw new PermanentJobError(`job ${job.id} has an unreadable claim`);
      const writes = jobWrites(payload, guard, job.attempt, this.deps.series.retention, started);
      await this.combiner.write(writes);
      await this.finish(job.id, payload);
      succeeded = true;
      return {
        status: 'processed',
        points: payload.points.length,
        keys: writes.deltas.length,
        guard: writes.record.guard,
        adopted: writes.record.guard !== formatGuard(proposed),
      };
    } finally {
      this.deps.lanes.release(proposed, succeeded);
    }
  }

  /**
   * Tells the API instances which keys' statistics a group of jobs changed, as soon as they are stored (one
   * `stage: 'stats'` message per job, in one round trip): `stats:update` does not wait for the history insert.
   */
  private async publishStats(jobs: readonly JobWrites[]): Promise<void> {
    const now = this.clock();
    const pipeline = this.deps.publisher.pipeline();
    for (const job of jobs) {
      const minutes = newestMinutes(job.buckets);
      const event: JobEvent = {
        stage: 'stats',
        batchId: job.batchId,
        jobId: job.record._id,
        keys: job.deltas.map((delta) => delta.key),
        minutes: job.deltas.map((delta) => minutes.get(delta.key) ?? null),
        receivedAt: job.receivedAt.getTime(),
        processedAt: now,
        batchDone: null,
      };
      pipeline.publish(this.deps.channel, JSON.stringify(event));
    }
    await execOrThrow(pipeline);
  }

  /** Marks the chunk done (its history is written too) and tells the API instances; both are idempotent. */
  private async finish(jobId: string, payload: JobPayload): Promise<void> {
    const now = this.clock();
    const batchDone = await this.deps.batches.finishJob(jobId, payload.batchId, payload.chunk, payload.points.length, now);
    await this.publish({
      stage: 'done',
      batchId: payload.batchId,
      jobId,
      keys: [],
      receivedAt: payload.receivedAt,
      processedAt: now,
      batchDone,
    });
  }

  /** Marks the batch of a job that failed for good, and tells the subscribers once. */
  async failBatch(jobId: string, data: unknown, reason: string): Promise<BatchDone | null> {
    const batchId = typeof data === 'object' && data !== null && 'batchId' in data ? String(data.batchId) : undefined;
    if (!batchId) return null;
    const now = this.clock();
    const batchDone = await this.deps.batches.failBatch(batchId, reason, now);
    if (batchDone) await this.publish({ stage: 'done', batchId, jobId, keys: [], receivedAt: now, processedAt: now, batchDone });
    return batchDone;
  }

  private async publish(event: JobEvent): Promise<void> {
    await this.deps.publisher.publish(this.deps.channel, JSON.stringify(event));
  }
}

/**
 * What one run of a job writes, all under its guard: the statistics deltas and rollup buckets of its keys, its
 * points as history, its processed record. The worker and the bench's storage ceiling both build it here.
 */
export function jobWrites(payload: JobPayload, guard: JobGuard, attempt: number, retention: SeriesRetention, startedAt: number): JobWrites {
  const deltas = groupByKey(payload.points);
  return {
    guard,
    deltas,
    buckets: bucketDeltas(payload.points, retention, startedAt),
    batchId: payload.batchId,
    points: payload.points,
    receivedAt: new Date(payload.receivedAt),
    startedAt,
    record: {
      _id: jobIdOf(payload.batchId, payload.chunk),
      batchId: payload.batchId,
      chunk: payload.chunk,
      points: payload.points.length,
      keys: deltas.length,
      guard: formatGuard(guard),
      attempt,
    },
  };
}

function parsePayload(data: unknown): JobPayload {
  const parsed = jobPayloadSchema.safeParse(data);
  if (!parsed.success) throw new PermanentJobError(`invalid job payload: ${describeIssues(parsed.error)}`);
  return parsed.data;
}
