import type Redis from 'ioredis';

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
const IN_FLIGHT = '{"inFlight":true}';

interface StoredRecord {
  inFlight?: boolean;
  fingerprint?: string;
  status?: number;
  body?: unknown;
}

/**
 * Idempotency keys in Redis, as the IETF Idempotency-Key draft describes
 * them: the first request reserves its key, a concurrent one finds it in
 * flight, a later one gets the stored response when its body has the same
 * fingerprint.
 */
export class IdempotencyStore {
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
    const reserved = await this.redis.set(redisKey, IN_FLIGHT, 'EX', IN_FLIGHT_TTL_SECONDS, 'NX');
    if (reserved === 'OK') return { state: 'new' };
    const stored = await this.redis.get(redisKey);
    if (stored === null) return this.begin(key);
    const parsed = JSON.parse(stored) as StoredRecord;
    if (parsed.inFlight) return { state: 'in-flight' };
    return { state: 'done', fingerprint: parsed.fingerprint ?? '', response: { status: parsed.status ?? 202, body: parsed.body } };
  }

  /** Stores the response for replays, with the fingerprint of the body that got it. */
  async complete(key: IdempotencyKey, fingerprint: string, response: StoredResponse): Promise<void> {
    const record: StoredRecord = { fingerprint, ...response };
    await this.redis.set(this.keyOf(key), JSON.stringify(record), 'EX', IDEMPOTENCY_TTL_SECONDS);
  }

  /** Frees the key after a request that was not accepted, so the client can retry with a fixed body. */
  async release(key: IdempotencyKey): Promise<void> {
    await this.redis.del(this.keyOf(key));
  }
}
