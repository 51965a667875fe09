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

  it('when a new release computes the id of a request an older one stored, then it is the same id', () => {
    // Pinned: a resend across a deploy must find the batch its first attempt stored.
    expect(keyedBatchId(request, day)).toBe('k667dc428f3d8e66272a0a9b57adb7fb');
  });
});
