import type { Logger } from 'pino';
import type { IngestQueue } from '../queue/ingest-queue';
import type { WorkerMetrics } from '../metrics';
import { batchFailureMessage, PermanentJobError } from './job-errors';
import type { JobProcessor } from './job-processor';
import type { OutageWait } from './outage-wait';

export interface JobRunnerDeps {
  queue: IngestQueue;
  processor: JobProcessor;
  outages: OutageWait;
  metrics: WorkerMetrics;
  logger: Logger;
  concurrency: number;
}

/**
 * The worker's side of Bull: takes jobs, runs each through the processor (waiting out outages of MongoDB and Redis
 * without using an attempt), discards the ones that can never succeed, and marks a batch failed once one of its jobs
 * has failed for good.
 */
export class JobRunner {
  private stopping = false;

  constructor(private readonly deps: JobRunnerDeps) {
    deps.queue.on('failed', (job, error) => {
      const final = error instanceof PermanentJobError || job.attemptsMade >= (job.opts.attempts ?? 1);
      deps.metrics.jobs.inc({ outcome: final ? 'failed' : 'retried' });
      deps.logger.warn(
        { jobId: job.id, attempt: job.attemptsMade, final, err: error.message },
        final ? 'job failed for good' : 'job failed; it will be retried',
      );
      if (!final) return;
      deps.processor
        .failBatch(String(job.id), job.data, batchFailureMessage(error, job.attemptsMade))
        .catch((failure: unknown) => deps.logger.error({ err: failure }, 'could not mark a batch failed'));
    });
  }

  /** Starts taking jobs. */
  start(): void {
    const { queue, processor, outages, metrics, logger } = this.deps;
    const taking = queue.process(this.deps.concurrency, async (job) => {
      try {
        const stopTimer = metrics.jobDuration.startTimer();
        const outcome = await outages.run(
          String(job.id),
          () => processor.process({ id: String(job.id), data: job.data, attempt: job.attemptsMade + 1 }),
          () => this.stopping,
        );
        stopTimer();
        metrics.jobs.inc({ outcome: outcome.status.replace('-', '_') });
        if (outcome.status === 'processed') metrics.pointsProcessed.inc(outcome.points);
        logger.debug({ jobId: job.id, outcome }, 'job done');
        return outcome;
      } catch (error) {
        if (error instanceof PermanentJobError) void job.discard();
        throw error;
      }
    });
    // Bull's process() rejects when its connection closes under it: a stop right after start, not a failure.
    taking.catch((error: unknown) => {
      if (!this.stopping) logger.error({ err: error }, 'the worker stopped taking jobs');
    });
  }

  /** Takes no new job; a job waiting out an outage gives up and fails as usual. Bull's close waits for the rest. */
  stop(): void {
    this.stopping = true;
  }
}
