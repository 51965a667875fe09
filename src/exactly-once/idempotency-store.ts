import { randomBytes } from 'node:crypto';
import type Redis from 'ioredis';
import type { Swap } from './batch-store';
import { IDEMPOTENCY_TTL_SECONDS } from './window';
import { withScripts, type ScriptCommands } from '../queue/lua-scripts';

export interface StoredResponse {
  status: number;
  body: unknown;
}

/** An Idempotency-Key as the client sent it, within the scope of the caller that sent it. */
export interface IdempotencyKey {
  /** The caller's principal (one API key's requests never see another's). */
  scope: string;
  key: string;
}

/** One request's hold on its key: the in-flight marker it set. Each request has its own, even for the same key. */
export interface KeyHold {
  redisKey: string;
  marker: string;
}

export type IdempotencyState =
  { state: 'new'; hold: KeyHold } | { state: 'in-flight' } | { state: 'done'; fingerprint: string; response: StoredResponse };

// A release that could not reach Redis (the request failed because Redis went down) is tried again this often.
const RELEASE_RETRY_MS = 1000;

interface StoredRecord {
  inFlight?: boolean;
  fingerprint?: string;
  status?: number;
  body?: unknown;
}

function storedRecord(fingerprint: string, response: StoredResponse): string {
  const record: StoredRecord = { fingerprint, ...response };
  return JSON.stringify(record);
}

/**
 * Idempotency keys in Redis, as the IETF Idempotency-Key draft describes
 * them: the first request reserves its key, a concurrent one finds it in
 * flight, a later one gets the stored response when its body has the same
 * fingerprint.
 */
export class IdempotencyStore {
  /** The timer that renews each marker this instance set and has not completed or released yet, by marker. */
  private readonly renewals = new Map<string, NodeJS.Timeout>();
  private readonly leaseMs: number;
  private readonly redis: Redis & ScriptCommands;

  constructor(
    redis: Redis,
    private readonly namespace: string,
    /** IDEMPOTENCY_LEASE_MS: how long an in-flight marker lives unless renewed (every third of it). */
    options: { leaseMs: number },
  ) {
    this.redis = withScripts(redis);
    this.leaseMs = options.leaseMs;
  }

  private keyOf({ scope, key }: IdempotencyKey): string {
    return `${this.namespace}:idem:${scope}:${key}`;
  }

  /** Reserves the key for this request, or tells what an earlier request with it got. */
  async begin(key: IdempotencyKey): Promise<IdempotencyState> {
    const hold = { redisKey: this.keyOf(key), marker: JSON.stringify({ inFlight: true, id: randomBytes(8).toString('hex') }) };
    let reserved: string | null;
    try {
      reserved = await this.redis.set(hold.redisKey, hold.marker, 'PX', this.leaseMs, 'NX');
    } catch (error) {
      // Redis may have set the key before the connection broke: take it back once Redis answers again.
      this.releaseLater(hold, Date.now() + this.leaseMs);
      throw error;
    }
    if (reserved === 'OK') {
      this.renew(hold);
      return { state: 'new', hold };
    }
    const stored = await this.redis.get(hold.redisKey);
    if (stored === null) return this.begin(key);
    const parsed = JSON.parse(stored) as StoredRecord;
    if (parsed.inFlight) return { state: 'in-flight' };
    return { state: 'done', fingerprint: parsed.fingerprint ?? '', response: { status: parsed.status ?? 202, body: parsed.body } };
  }

  /**
   * Stores the response for replays, with the fingerprint of the body that got it, while the key still holds this
   * request's marker (a request that stalled past its lease leaves a later one's marker or answer as it is).
   */
  async complete(hold: KeyHold, fingerprint: string, response: StoredResponse): Promise<void> {
    await this.redis.idempotencyComplete(hold.redisKey, hold.marker, storedRecord(fingerprint, response), IDEMPOTENCY_TTL_SECONDS);
    this.completed(hold);
  }

  /**
   * What `complete` stores, as a compare-and-set for a transaction of the caller's (see BatchStore.commitIn): the
   * response replaces this request's in-flight marker only if the key still holds it, in the same step as what it
   * answers for. Call `completed` once that transaction ran.
   */
  completion(hold: KeyHold, fingerprint: string, response: StoredResponse): Swap {
    return { key: hold.redisKey, expected: hold.marker, value: storedRecord(fingerprint, response), ttlSeconds: IDEMPOTENCY_TTL_SECONDS };
  }

  /** Stops renewing the in-flight marker of a request whose response was stored (or whose swap found it gone). */
  completed(hold: KeyHold): void {
    this.stopRenewing(hold);
  }

  /**
   * Frees the key after a request that was not accepted, so the client can retry (with a fixed body, or the same
   * one after a 503). When Redis cannot be reached, which is why such a request failed, the release is tried again
   * every second until Redis is back or the lease has run out: otherwise every resend would get 409 until the
   * marker expired. A request that already completed has nothing to release.
   */
  async release(hold: KeyHold): Promise<void> {
    if (!this.renewals.has(hold.marker)) return;
    this.stopRenewing(hold);
    try {
      // Only while it holds this request's marker: never a stored response, never a later request's marker.
      await this.redis.idempotencyRelease(hold.redisKey, hold.marker);
    } catch (error) {
      // Not renewed any more, the marker is gone within the lease anyway.
      this.releaseLater(hold, Date.now() + this.leaseMs);
      throw error;
    }
  }

  private renew(hold: KeyHold): void {
    const renewal = setInterval(() => {
      // A failed renewal (Redis down) is not retried: the next one comes a third of the lease later.
      this.redis.idempotencyRenew(hold.redisKey, hold.marker, this.leaseMs).catch(() => undefined);
    }, this.leaseMs / 3);
    // Renewals never keep a stopping process alive.
    renewal.unref();
    this.renewals.set(hold.marker, renewal);
  }

  private stopRenewing(hold: KeyHold): void {
    clearInterval(this.renewals.get(hold.marker));
    this.renewals.delete(hold.marker);
  }

  private releaseLater(hold: KeyHold, giveUpAt: number): void {
    const retry = setTimeout(() => {
      this.redis.idempotencyRelease(hold.redisKey, hold.marker).catch(() => {
        if (Date.now() < giveUpAt) this.releaseLater(hold, giveUpAt);
      });
    }, RELEASE_RETRY_MS);
    // Pending releases never keep a stopping process alive.
    retry.unref();
  }
}
