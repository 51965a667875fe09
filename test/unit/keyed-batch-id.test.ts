import { batchIdSchema } from '../../src/domain/query-schemas';
import { keyedBatchId, type KeyedRequest } from '../../src/exactly-once/keyed-batch';

describe('keyedBatchId', () => {
  const request: KeyedRequest = { scope: 'key:0123456789abcdef', key: 'order-42', fingerprint: 'f'.repeat(64) };
  const day = 20_000;

  it('when the same caller sends the same key and body on the same day, then every attempt gets the same batch id', () => {
    expect(keyedBatchId({ ...request }, day)).toBe(keyedBatchId(request, day));
    expect(batchIdSchema.safeParse(keyedBatchId(request, day)).success).toBe(true);
  });

  it('when the caller, the key, the body or the day differs, then the batch id differs', () => {
    const ids = [
      keyedBatchId(request, day),
      keyedBatchId({ ...request, scope: 'open' }, day),
      keyedBatchId({ ...request, key: 'order-43' }, day),
      keyedBatchId({ ...request, fingerprint: 'e'.repeat(64) }, day),
      keyedBatchId(request, day + 1),
    ];
    expect(new Set(ids).size).toBe(ids.length);
  });
});
