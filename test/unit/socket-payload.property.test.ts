import fc from 'fast-check';
import { subscriptionSchema } from '../../src/sockets/socket-events';
import {
  MAX_KEYS_PER_CALL,
  oracleAcceptsSubscription,
  oracleKeyIsValid,
  propertySeed,
  subscriptionPayloadArb,
  toJsonText,
  validKeyArb,
} from '../support/hostile-input';

const seed = propertySeed('socket-payload.property');
const params = { seed, numRuns: 300 };
describe('subscriptionSchema, property-based', () => {
  it('when a socket sends any payload (as it arrives over the wire), then parsing never throws and accepts exactly what the contract allows', () => {
    fc.assert(
      fc.property(subscriptionPayloadArb(validKeyArb), (sent) => {
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
