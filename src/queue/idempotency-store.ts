import { randomBytes } from 'node:crypto';
import type { ChainableCommander, default as Redis } from 'ioredis';

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

export type IdempotencyState = { state: 'new' } | { state: 'in-flight' } | { state: 'done'; fingerprint: string; response: StoredResponse };

/** How long a key is remembered: 24 h, as the contract says. */
export const IDEMPOTENCY_TTL_SECONDS = 24 * 3600;
// A request that holds its key this long without finishing has died with its process.
const IN_FLIGHT_TTL_SECONDS = 300;
// A release that could not reach Redis (the request failed because Redis went down) is tried again this often.
const RELEASE_RETRY_MS = 1000;
// Deletes the key only while it holds this request's in-flight marker: never a stored response, never the marker
// of a later request.
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

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
  /** The in-flight marker of each key this instance reserved and has not completed or released yet. */
  private readonly markers = new Map<string, string>();

  constructor(
    private readonly redis: Redis,
    private readonly namespace: string,
  ) {}

  private keyOf({ scope, key }: IdempotencyKey): string {
    return `${this.namespace}:idem:${scope}:${key}`;
  }

  /** Reserves the key for this request, or tells what an earlier request with it got. */
  async begin(key: IdempotencyKey): Promise<IdempotencyState> {
    const redisKey = this.keyOf(key);
    const marker = JSON.stringify({ inFlight: true, id: randomBytes(8).toString('hex') });
    let reserved: string | null;
    try {
      reserved = await this.redis.set(redisKey, marker, 'EX', IN_FLIGHT_TTL_SECONDS, 'NX');
    } catch (error) {
      // Redis may have set the key before the connection broke: take it back once Redis answers again.
      this.releaseLater(redisKey, marker, Date.now() + IN_FLIGHT_TTL_SECONDS * 1000);
      throw error;
    }
    if (reserved === 'OK') {
      this.markers.set(redisKey, marker);
      return { state: 'new' };
    }
    const stored = await this.redis.get(redisKey);
    if (stored === null) return this.begin(key);
    const parsed = JSON.parse(stored) as StoredRecord;
    if (parsed.inFlight) return { state: 'in-flight' };
    return { state: 'done', fingerprint: parsed.fingerprint ?? '', response: { status: parsed.status ?? 202, body: parsed.body } };
  }

  /** Stores the response for replays, with the fingerprint of the body that got it. */
  async complete(key: IdempotencyKey, fingerprint: string, response: StoredResponse): Promise<void> {
    await this.redis.set(this.keyOf(key), storedRecord(fingerprint, response), 'EX', IDEMPOTENCY_TTL_SECONDS);
    this.completed(key);
  }

  /**
   * Queues what `complete` stores in a transaction of the caller's, so the response is stored in the same
   * transaction as what it answers for; call `completed` once that transaction ran.
   */
  completeIn(transaction: ChainableCommander, key: IdempotencyKey, fingerprint: string, response: StoredResponse): ChainableCommander {
    return transaction.set(this.keyOf(key), storedRecord(fingerprint, response), 'EX', IDEMPOTENCY_TTL_SECONDS);
  }

  /** Forgets the in-flight marker of a key whose response was stored by `completeIn`'s transaction. */
  completed(key: IdempotencyKey): void {
    this.markers.delete(this.keyOf(key));
  }

  /**
   * Frees the key after a request that was not accepted, so the client can retry (with a fixed body, or the same
   * one after a 503). When Redis cannot be reached, which is why such a request failed, the release is tried again
   * every second until Redis is back: otherwise the key stayed in flight, and every resend got 409, for 5 minutes
   * after the outage (found by the fault suite, test/faults).
   */
  async release(key: IdempotencyKey): Promise<void> {
    const redisKey = this.keyOf(key);
    const marker = this.markers.get(redisKey);
    if (marker === undefined) return;
    try {
      await this.redis.eval(RELEASE, 1, redisKey, marker);
      this.markers.delete(redisKey);
    } catch (error) {
      this.releaseLater(redisKey, marker, Date.now() + IN_FLIGHT_TTL_SECONDS * 1000);
      throw error;
    }
  }

  private releaseLater(redisKey: string, marker: string, giveUpAt: number): void {
    const forget = (): void => {
      if (this.markers.get(redisKey) === marker) this.markers.delete(redisKey);
    };
    const retry = setTimeout(() => {
      this.redis.eval(RELEASE, 1, redisKey, marker).then(forget, () => {
        if (Date.now() < giveUpAt) this.releaseLater(redisKey, marker, giveUpAt);
        else forget();
      });
    }, RELEASE_RETRY_MS);
    // Pending releases never keep a stopping process alive.
    retry.unref();
  }
}
