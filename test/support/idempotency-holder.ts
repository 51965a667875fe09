/**
 * A process that reserves one Idempotency-Key and holds it until it is killed, as an API process does while a
 * request runs: `tsx test/support/idempotency-holder.ts <redisUrl> <namespace> <key> <leaseMs>`. Prints "held".
 */
import Redis from 'ioredis';
import { IdempotencyStore } from '../../src/exactly-once/idempotency-store';

async function main(): Promise<void> {
  const [redisUrl = '', namespace = '', key = '', leaseMs = ''] = process.argv.slice(2);
  const store = new IdempotencyStore(new Redis(redisUrl), namespace, { leaseMs: Number(leaseMs) });
  const state = await store.begin({ scope: 'holder', key });
  console.log(state.state === 'new' ? 'held' : `not held: ${state.state}`);
  // Keep the process (and its renewals, which do not keep it alive by themselves) running until killed.
  setInterval(() => undefined, 60_000);
}

void main();
