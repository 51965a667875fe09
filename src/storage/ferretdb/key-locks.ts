import { randomBytes } from 'node:crypto';
import type Redis from 'ioredis';
import { withScripts, type ScriptCommands } from '../../queue/lua-scripts';

export interface KeyLockSettings {
  /** A lock left by a worker that died frees itself after this (the worker uses JOB_LOCK_MS); a live holder renews it every third of it. */
  ttlMs: number;
  /** How long a job waits for its keys before it fails (and Bull retries it). */
  waitMs: number;
}

export class KeyLockTimeoutError extends Error {
  override name = 'KeyLockTimeoutError';
}

/**
 * Short Redis locks around the writes of one job's aggregates.
 *
 * Why: FerretDB v1 applies an update as read, modify, write without locking
 * the document, so concurrent updates of one document lose writes
 * (docs/architecture.md). MongoDB does not need this, and costs one Redis round trip more per job for
 * it; counts are exact on both.
 */
export class KeyLocks {
  private readonly redis: Redis & ScriptCommands;

  constructor(
    redis: Redis,
    private readonly namespace: string,
    private readonly settings: KeyLockSettings,
    /** Told when renewal finds locks gone (Redis lost them): the writes under them may race. */
    private readonly onLost?: (lostKeys: number) => void,
  ) {
    this.redis = withScripts(redis);
  }

  async withLocks<T>(keys: readonly string[], work: () => Promise<T>): Promise<T> {
    const lockKeys = keys.map((key) => `${this.namespace}:lock:${key}`);
    const token = randomBytes(8).toString('hex');
    const deadline = Date.now() + this.settings.waitMs;
    let pause = 5;
    // Every lock or none (key-locks-acquire.lua), so two writers never hold half of each other's locks.
    while ((await this.redis.locksAcquire(lockKeys.length, ...lockKeys, token, this.settings.ttlMs)) !== 1) {
      if (Date.now() > deadline) throw new KeyLockTimeoutError(`waited ${this.settings.waitMs} ms for the locks of ${keys.length} keys`);
      // Jittered, growing pause (at most 40 ms: a shard lock is held for one group's updates, ~0.1 s): contenders
      // spread out instead of retrying in lockstep, and a waiting worker starts soon after the lock is free.
      await new Promise((resolve) => setTimeout(resolve, pause + Math.random() * pause));
      pause = Math.min(pause * 2, 20);
    }
    // Renewed while the work runs, so a slow write (a large FerretDB) never outlives its locks.
    const renewal = setInterval(() => {
      this.redis.locksExtend(lockKeys.length, ...lockKeys, token, this.settings.ttlMs).then(
        (owned) => {
          if (owned !== lockKeys.length) this.onLost?.(keys.length - Number(owned));
        },
        () => undefined,
      );
    }, this.settings.ttlMs / 3);
    try {
      return await work();
    } finally {
      clearInterval(renewal);
      await this.redis.locksRelease(lockKeys.length, ...lockKeys, token);
    }
  }
}
