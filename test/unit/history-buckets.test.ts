import { BSON } from 'mongodb';
import type { Point } from '../../src/domain/point-schema';
import { bucketsOf, HISTORY_BUCKET_SPAN_MS, MAX_BUCKET_METAS } from '../../src/storage/shared/history-buckets';

const T0 = 1_700_000_040_000 - (1_700_000_040_000 % HISTORY_BUCKET_SPAN_MS);
const at = new Date(T0);

describe('bucketsOf', () => {
  it('when a job holds two keys over two minutes, then it makes a bucket per key and minute, named by its first point', () => {
    const points: Point[] = [
      { i: 0, key: 'a', value: 1, ts: T0 + 1000 },
      { i: 1, key: 'b', value: 2, ts: T0 + 1000 },
      { i: 2, key: 'a', value: 3, ts: T0 + HISTORY_BUCKET_SPAN_MS + 5 },
      { i: 3, key: 'a', value: 4, ts: T0 },
    ];
    const buckets = bucketsOf({ batchId: 'b1', points, receivedAt: at }, at);
    expect(buckets.map((bucket) => [bucket.id, bucket.key, bucket.i, bucket.min, bucket.max])).toEqual([
      ['b1:0', 'a', [0, 3], T0, T0 + 1000],
      ['b1:1', 'b', [1], T0 + 1000, T0 + 1000],
      ['b1:2', 'a', [2], T0 + HISTORY_BUCKET_SPAN_MS + 5, T0 + HISTORY_BUCKET_SPAN_MS + 5],
    ]);
  });

  it('when one key carries a thousand points with the largest meta, then they split into buckets that MongoDB can store, each point once', () => {
    // 4 KiB of JSON that grows most as BSON: an array of single digits (a double and an index key per element).
    const meta = { a: Array.from({ length: 2040 }, () => 0) };
    expect(JSON.stringify(meta).length).toBeLessThanOrEqual(4096);
    const points: Point[] = Array.from({ length: 1000 }, (_, i) => ({ i, key: 'm', value: i, ts: T0 + i, meta }));
    const buckets = bucketsOf({ batchId: 'b2', points, receivedAt: at }, at);
    expect(buckets.map((bucket) => bucket.n)).toEqual([MAX_BUCKET_METAS, MAX_BUCKET_METAS, MAX_BUCKET_METAS, 1000 - 3 * MAX_BUCKET_METAS]);
    expect(buckets.flatMap((bucket) => bucket.i)).toEqual(points.map((point) => point.i));
    expect(buckets.map((bucket) => bucket.id)).toEqual(['b2:0', 'b2:256', 'b2:512', 'b2:768']);
    for (const bucket of buckets) expect(BSON.calculateObjectSize(bucket)).toBeLessThan(16 * 1024 * 1024);
    // The same job again makes the same buckets.
    expect(bucketsOf({ batchId: 'b2', points, receivedAt: at }, at)).toEqual(buckets);
  });
});
