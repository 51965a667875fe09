import Queue from 'bull';
import type { ChainableCommander } from 'ioredis';
import type { JobPayload } from '../domain/job-payload';

/*
 * Every use of Bull's private API, in one place (bull is pinned to an exact version in package.json):
 * test/integration/bull-internals.test.ts fails when an upgrade changes any of them.
 */

type IngestQueue = Queue.Queue<JobPayload>;

/** What Bull keeps for its own Lua commands: `promote` is the script behind `Job#promote` (lib/scripts.js). */
interface BullQueueInternals {
  keys: Record<'delayed' | 'wait' | 'paused' | 'meta-paused' | 'priority', string>;
  token: string;
  toKey(type: string): string;
  setWorkerName(): Promise<unknown>;
}

/** Bull's processJob(job, notFetch) (lib/queue.js): not typed in its declarations. */
type ProcessJob = (this: IngestQueue, job: unknown, notFetch?: boolean) => Promise<unknown>;

const internalsOf = (queue: IngestQueue): BullQueueInternals => queue as unknown as BullQueueInternals;

/** Queues Bull's own `promote` script for one delayed job (exactly the call `Job#promote` makes) in a transaction. */
export function promoteIn(transaction: ChainableCommander, queue: IngestQueue, jobId: string): void {
  const bull = internalsOf(queue);
  const keys = [bull.keys.delayed, bull.keys.wait, bull.keys.paused, bull.keys['meta-paused'], bull.keys.priority];
  (transaction as unknown as { promote(args: string[]): ChainableCommander }).promote([...keys, bull.toKey(''), jobId, bull.token]);
}

/**
 * Makes a worker's queue fetch its next job with a call of its own instead of in the same script that marks a job
 * completed. Bull 4 fetches the next job in that script, and when `close()` comes while the script runs, it drops
 * the job it got back: the job stays in the active list, locked by nobody who works on it, until its lock runs out
 * and another worker takes it over as stalled (BullMQ fixed the same race in taskforcesh/bullmq#3059). A fetch of its
 * own is skipped once the queue closes, and a job it returns is processed and waited for by `close()`. It costs one
 * Redis round trip per job.
 */
export function fetchOnlyWhileOpen(queue: IngestQueue): void {
  const processJob = (Queue.prototype as unknown as { processJob: ProcessJob }).processJob;
  Object.assign(queue, { processJob: (job: unknown) => processJob.call(queue, job, true) });
}

/**
 * Bull's process() names the worker's blocking connection without waiting for it (`setWorkerName`), and that
 * promise's own error handler fails on the undefined error a connection closed under it gives: a close right after
 * process() became an unhandled rejection. The name is only a label (CLIENT SETNAME): failing to set it is ignored.
 */
export function nameWorkerQuietly(queue: IngestQueue): void {
  const naming = internalsOf(queue);
  const setWorkerName = naming.setWorkerName.bind(queue);
  naming.setWorkerName = () => setWorkerName().catch(() => undefined);
}

/**
 * What the functions above rely on, as found on this queue and Bull's prototype; an empty list when all is there.
 * The queue's client must be ready (Bull defines its commands, `promote` among them, when it connects).
 */
export function missingBullInternals(queue: IngestQueue): string[] {
  const bull = internalsOf(queue);
  const missing: string[] = [];
  const processJob = (Queue.prototype as unknown as { processJob?: unknown }).processJob;
  if (typeof processJob !== 'function' || processJob.length < 1) missing.push('Queue.prototype.processJob(job, notFetch)');
  if (typeof bull.setWorkerName !== 'function') missing.push('queue.setWorkerName()');
  if (typeof bull.toKey !== 'function') missing.push('queue.toKey()');
  if (typeof bull.token !== 'string') missing.push('queue.token');
  const keys = bull.keys as Partial<Record<string, unknown>> | undefined;
  for (const name of ['delayed', 'wait', 'paused', 'meta-paused', 'priority']) {
    if (typeof keys?.[name] !== 'string') missing.push(`queue.keys['${name}']`);
  }
  if (typeof (queue.client as unknown as { promote?: unknown }).promote !== 'function') missing.push('queue.client.promote (its script)');
  return missing;
}
