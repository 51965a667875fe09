import type Redis from 'ioredis';

export interface StoredResponse {
  status: number;
  body: unknown;
}

export type IdempotencyState = { state: 'new' } | { state: 'in-flight' } | { state: 'done'; response: StoredResponse };

/** How long a key is remembered: 24 h, as the contract says. */
export const IDEMPOTENCY_TTL_SECONDS = 24 * 3600;
// A request that holds its key this long without finishing has died with its process.
const IN_FLIGHT_TTL_SECONDS = 300;
const IN_FLIGHT = '{"inFlight":true}';

export class IdempotencyStore {
  constructor(
    private readonly redis: Redis,
    private readonly namespace: string,
  ) {}

  private keyOf(idempotencyKey: string): string {
    return `${this.namespace}:idem:${idempotencyKey}`;
  }

  /** Reserves the key for this request, or tells what an earlier request with it got. */
  async begin(idempotencyKey: string): Promise<IdempotencyState> {
    const key = this.keyOf(idempotencyKey);
    const reserved = await this.redis.set(key, IN_FLIGHT, 'EX', IN_FLIGHT_TTL_SECONDS, 'NX');
    if (reserved === 'OK') return { state: 'new' };
    const stored = await this.redis.get(key);
    if (stored === null) return this.begin(idempotencyKey);
    const parsed = JSON.parse(stored) as { inFlight?: boolean } & Partial<StoredResponse>;
    if (parsed.inFlight) return { state: 'in-flight' };
    return { state: 'done', response: { status: parsed.status ?? 202, body: parsed.body } };
  }

  async complete(idempotencyKey: string, response: StoredResponse): Promise<void> {
    await this.redis.set(this.keyOf(idempotencyKey), JSON.stringify(response), 'EX', IDEMPOTENCY_TTL_SECONDS);
  }

  /** Frees the key after a request that was not accepted, so the client can retry with a fixed body. */
  async release(idempotencyKey: string): Promise<void> {
    await this.redis.del(this.keyOf(idempotencyKey));
  }
}
