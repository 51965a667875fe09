import type { Logger } from 'pino';
import { isRedisUnavailable } from '../queue/redis';
import { isRefusal, isUnanswered } from '../storage/contract';
import { PermanentJobError } from './job-errors';

/** Answers (resolves) when one of the services a job needs is reachable; rejects or hangs when it is not. */
export interface HealthProbe {
  name: string;
  check: () => Promise<unknown>;
}

export interface OutageWaitSettings {
  /** JOB_OUTAGE_WAIT_MS: how long one run of a job waits out an outage before it fails as usual (and Bull backs off). */
  budgetMs: number;
  /** Pause between looks at the services; doubles from `firstPauseMs` up to `maxPauseMs`. */
  firstPauseMs: number;
  maxPauseMs: number;
  /** A probe that has not answered within this is taken as down. */
  probeTimeoutMs: number;
}

export const OUTAGE_WAIT_DEFAULTS: Omit<OutageWaitSettings, 'budgetMs'> = { firstPauseMs: 250, maxPauseMs: 2000, probeTimeoutMs: 2000 };

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Tells an outage of the service's own infrastructure apart from a failure of the job itself, and waits the first
 * out inside the job's run. Bull's retry counts every failure as an attempt and backs off exponentially (1, 3, 7 ...
 * 255 s): a job that failed a few times while MongoDB or Redis restarted would otherwise wait minutes after they
 * came back, with its statistics stored and its history not. Here a run that failed for want of an answer (a broken
 * connection), or while MongoDB or Redis does not answer, waits until both do (looking every 0.25-2 s) and runs
 * again, without using an attempt. A failure while both answer is the job's own (bad data, a refused write, a lock
 * it could not get) and keeps Bull's backoff; so does a job that keeps failing past the budget (one that brings the
 * database down itself must still fail alone).
 */
export class OutageWait {
  constructor(
    private readonly probes: readonly HealthProbe[],
    private readonly settings: OutageWaitSettings,
    private readonly logger: Logger,
  ) {}

  /** Runs `job`, again after each outage it ran into, until it succeeds, fails on its own, or the budget is spent. */
  async run<T>(jobId: string, job: () => Promise<T>, stopping: () => boolean): Promise<T> {
    const deadline = Date.now() + this.settings.budgetMs;
    for (let outages = 1; ; outages += 1) {
      try {
        return await job();
      } catch (error) {
        if (!mayBeOutage(error) || stopping()) throw error;
        const down = await this.unreachable();
        // "No answer" from a service that answers again by now (a connection that broke in its restart) is an outage too.
        if (down.length === 0 && !isUnansweredCall(error)) throw error;
        this.logger.warn(
          { jobId, unreachable: down, err: error instanceof Error ? error.message : String(error), outages },
          'job ran into an outage; it waits for the services and runs again without using an attempt',
        );
        if (!(await this.waitUntilReachable(deadline, stopping))) throw error;
      }
    }
  }

  /** Names of the services that do not answer now. */
  async unreachable(): Promise<string[]> {
    const answers = await Promise.all(this.probes.map(async (probe) => ((await this.answers(probe)) ? undefined : probe.name)));
    return answers.filter((name): name is string => name !== undefined);
  }

  /** Looks every 0.25-2 s until every probe answers (true), or the deadline passes or the worker stops (false). */
  private async waitUntilReachable(deadline: number, stopping: () => boolean): Promise<boolean> {
    for (let wait = this.settings.firstPauseMs; ; wait = Math.min(wait * 2, this.settings.maxPauseMs)) {
      if (stopping() || Date.now() + wait > deadline) return false;
      await pause(wait);
      if ((await this.unreachable()).length === 0) return true;
    }
  }

  private async answers(probe: HealthProbe): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), this.settings.probeTimeoutMs);
    });
    const answered = probe.check().then(
      () => true,
      () => false,
    );
    try {
      return await Promise.race([answered, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A call that got no answer: MongoDB's connection failed or broke, or Redis was out of reach. */
function isUnansweredCall(error: unknown): boolean {
  return isUnanswered(error) || (error instanceof Error && isRedisUnavailable(error));
}

/** Failures that say something about the job itself, whatever the services' state: never waited out. */
function mayBeOutage(error: unknown): boolean {
  return !(error instanceof PermanentJobError) && !isRefusal(error);
}
