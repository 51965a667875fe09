import fc from 'fast-check';
import { subscriptionSchema } from '../../src/sockets/socket-events';
import {
  hostileValueArb,
  isPlainObject,
  objectOf,
  oracleKeyIsValid,
  propertySeed,
  toJsonText,
  validKeyArb,
} from '../support/hostile-input';

const seed = propertySeed('socket-payload.property');
const params = { seed, numRuns: 300 };
const MAX_KEYS_PER_CALL = 1000;

/** The contract's subscription: `{"keys": [...], "jobs"?: boolean}`, nothing else; keys follow the point-key rules. */
function oracleAcceptsSubscription(payload: unknown): boolean {
  if (!isPlainObject(payload)) return false;
  if (Object.keys(payload).some((name) => name !== 'keys' && name !== 'jobs')) return false;
  const { keys, jobs } = payload;
  if (keys !== undefined && (!Array.isArray(keys) || keys.length > MAX_KEYS_PER_CALL || !keys.every(oracleKeyIsValid))) return false;
  return jobs === undefined || typeof jobs === 'boolean';
}

const keyListArb = fc.oneof(
  fc.array(validKeyArb, { maxLength: 20 }),
  fc.array(fc.oneof(validKeyArb, hostileValueArb), { maxLength: 10 }),
  fc.constantFrom(MAX_KEYS_PER_CALL, MAX_KEYS_PER_CALL + 1).map((count) => Array.from({ length: count }, (_, i) => `k${i}`)),
  hostileValueArb,
);

const payloadArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.record({ keys: keyListArb, jobs: fc.oneof(fc.boolean(), hostileValueArb) }, { requiredKeys: [] }),
  fc
    .tuple(
      fc.record({ keys: keyListArb, jobs: fc.boolean() }, { requiredKeys: [] }),
      fc.constantFrom('__proto__', 'constructor', '$where', 'key', 'Keys', 'prototype'),
      hostileValueArb,
    )
    .map(([fields, name, value]) => objectOf([...Object.entries(fields), [name, value]])),
  hostileValueArb,
);

describe('subscriptionSchema, property-based', () => {
  it('when a socket sends any payload (as it arrives over the wire), then parsing never throws and accepts exactly what the contract allows', () => {
    fc.assert(
      fc.property(payloadArb, (sent) => {
        // socket.io sends JSON: own "__proto__" fields survive as fields, non-finite numbers arrive as null.
        const payload: unknown = JSON.parse(toJsonText(sent).replace(/-?1e400/g, 'null'));
        const parsed = subscriptionSchema.safeParse(payload);
        expect(parsed.success).toBe(oracleAcceptsSubscription(payload));
        if (parsed.success) {
          expect(parsed.data.keys.length).toBeLessThanOrEqual(MAX_KEYS_PER_CALL);
          for (const key of parsed.data.keys) expect(oracleKeyIsValid(key)).toBe(true);
        } else {
          expect(parsed.error.issues[0]?.message.length).toBeLessThan(600);
        }
      }),
      params,
    );
  });
});
