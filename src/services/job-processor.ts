import type Redis from 'ioredis';
import type { Logger } from 'pino';
import { LRUCache } from 'lru-cache';
import { jobPayloadSchema, type JobPayload } from '../domain/job-payload';
import { describeIssues } from '../domain/point-schema';
import { groupByKey } from '../domain/stats';
import type { AggregateRepository } from '../repositories/aggregate-repository';
import type { HistoryRepository } from '../repositories/history-repository';
import type { ProcessedRecordRepository } from '../repositories/processed-record-repository';
import type { BatchDone, BatchStore } from '../queue/batch-store';
import type { JobEvent } from '../queue/events';
import type { KeyLocks } from '../queue/key-locks';
import { CLAIM_TTL_SECONDS, formatGuard, parseGuard, type LanePool } from './lane-pool';

/** A job that can never succeed (bad payload): fail it at once, do not retry. */
export class PermanentJobError extends Error {
  override name = 'PermanentJobError';
}

export interface JobInput {
  id: string;
  data: unknown;
  attempt: number;
}

export type JobOutcome =
  | { status: 'processed'; points: number; keys: number; appliedKeys: number; guard: string; adopted: boolean }
  | { status: 'already-processed' }
  | { status: 'abandoned' };

export interface JobProcessorDeps {
  aggregates: AggregateRepository;
  history: HistoryRepository;
  processed: ProcessedRecordRepository;
  batches: BatchStore;
  lanes: LanePool;
  locks: KeyLocks;
  publisher: Redis;
  channel: string;
  logger: Logger;
  /** Injected so tests can run a job "a day later". */
  clock?: () => number;
}

// Keys whose aggregate document is known to exist skip the create step; 100k keys is ~10 MB.
const KNOWN_KEYS_CAPACITY = 100_000;

/**
 * Runs one job: aggregates (one bulkWrite), history (one unordered insert),
 * a processed record, the batch's progress, then one pub/sub message.
 * Safe to run any number of times for the same job (see lane-pool.ts).
 */
export class JobProcessor {
  private readonly knownKeys = new LRUCache<string, true>({ max: KNOWN_KEYS_CAPACITY });
  private readonly clock: () => number;

  constructor(private readonly deps: JobProcessorDeps) {
    this.clock = deps.clock ?? Date.now;
  }

  async process(job: JobInput): Promise<JobOutcome> {
    const payload = parsePayload(job.data);
    const started = this.clock();
    const proposed = this.deps.lanes.acquire(started);
    let succeeded = false;
    try {
      const [begun, done] = await Promise.all([
        this.deps.batches.beginJob(job.id, payload.batchId, formatGuard(proposed), CLAIM_TTL_SECONDS),
        this.deps.processed.exists(job.id),
      ]);
      if (begun.batchStatus === 'receiving') {
        // A streamed request that never completed: nothing of it was accepted.
        succeeded = true;
        return { status: 'abandoned' };
      }
      if (done) {
        await this.finish(job.id, payload, []);
        succeeded = true;
        return { status: 'already-processed' };
      }
      const guard = parseGuard(begun.claim);
      if (!guard) throw new PermanentJobError(`job ${job.id} has an unreadable claim`);
      const deltas = groupByKey(payload.points);
      const keys = deltas.map((delta) => delta.key);
      const now = new Date(this.clock());
      const appliedKeys = await this.deps.locks.withLocks(keys, async () => {
        const unknownKeys = keys.filter((key) => !this.knownKeys.has(key));
        if (unknownKeys.length > 0) {
          await this.deps.aggregates.ensureExists(unknownKeys, now);
          for (const key of unknownKeys) this.knownKeys.set(key, true);
        }
        return this.deps.aggregates.applyDeltas(deltas, guard, now);
      });
      await this.deps.history.insertPoints(payload.batchId, payload.points, new Date(payload.receivedAt), now);
      const claim = formatGuard(guard);
      await this.deps.processed.record({
        _id: job.id,
        batchId: payload.batchId,
        chunk: payload.chunk,
        points: payload.points.length,
        keys: keys.length,
        guard: claim,
        attempt: job.attempt,
        durationMs: this.clock() - started,
        processedAt: now,
      });
      await this.finish(job.id, payload, keys);
      succeeded = true;
      return {
        status: 'processed',
        points: payload.points.length,
        keys: keys.length,
        appliedKeys,
        guard: claim,
        adopted: claim !== formatGuard(proposed),
      };
    } finally {
      this.deps.lanes.release(proposed, succeeded);
    }
  }

  /** Marks the chunk done and tells the API instances; both are idempotent. */
  private async finish(jobId: string, payload: JobPayload, keys: string[]): Promise<void> {
    const now = this.clock();
    const batchDone = await this.deps.batches.finishJob(jobId, payload.batchId, payload.chunk, payload.points.length, now);
    await this.publish({ batchId: payload.batchId, jobId, keys, receivedAt: payload.receivedAt, processedAt: now, batchDone });
  }

  /** Marks the batch of a job that failed for good, and tells the subscribers once. */
  async failBatch(jobId: string, data: unknown, reason: string): Promise<BatchDone | null> {
    const batchId = typeof data === 'object' && data !== null && 'batchId' in data ? String(data.batchId) : undefined;
    if (!batchId) return null;
    const now = this.clock();
    const batchDone = await this.deps.batches.failBatch(batchId, reason, now);
    if (batchDone) await this.publish({ batchId, jobId, keys: [], receivedAt: now, processedAt: now, batchDone });
    return batchDone;
  }

  private async publish(event: JobEvent): Promise<void> {
    await this.deps.publisher.publish(this.deps.channel, JSON.stringify(event));
  }
}

function parsePayload(data: unknown): JobPayload {
  const parsed = jobPayloadSchema.safeParse(data);
  if (!parsed.success) throw new PermanentJobError(`invalid job payload: ${describeIssues(parsed.error)}`);
  return parsed.data;
}
