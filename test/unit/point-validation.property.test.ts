import fc from 'fast-check';
import { AppError } from '../../src/domain/errors';
import { extractRawBatch, partitionPoints } from '../../src/domain/ingest-body';
import { validatePoint } from '../../src/domain/point-schema';
import {
  deeplyNested,
  findUnsafe,
  hostilePointArb,
  hostileValueArb,
  isPlainObject,
  labelledItemArb,
  objectOf,
  oracleAccepts,
  propertySeed,
  toJsonText,
  validKeyArb,
} from '../support/hostile-input';

const RECEIVED_AT = Date.parse('2026-01-01T00:00:00.000Z');
const seed = propertySeed('point-validation.property');
const params = { seed, numRuns: 300 };

/** What the API does with a JSON body: parse the text, so "__proto__" is an own field and 1e400 is Infinity. */
const viaJsonText = (value: unknown): unknown => JSON.parse(toJsonText(value));

function indicesWhere<T>(items: readonly T[], test: (item: T) => boolean): number[] {
  return items.flatMap((item, index) => (test(item) ? [index] : []));
}

describe('validatePoint, property-based', () => {
  it('when a point is built valid or built to break one rule, then it is accepted exactly when it was built valid (and the oracle agrees)', () => {
    fc.assert(
      fc.property(labelledItemArb(RECEIVED_AT), fc.boolean(), ({ raw, valid }, fromText) => {
        const input = fromText ? viaJsonText(raw) : raw;
        expect(oracleAccepts(input, RECEIVED_AT)).toBe(valid);
        const result = validatePoint(input, 3, RECEIVED_AT);
        expect('point' in result).toBe(valid);
        if ('rejection' in result) {
          expect(result.rejection.index).toBe(3);
          expect(result.rejection.message.length).toBeGreaterThan(0);
        }
      }),
      params,
    );
  });

  it('when a point-shaped object holds anything hostile, then validation never throws and agrees with the contract oracle', () => {
    fc.assert(
      fc.property(fc.oneof(hostilePointArb, hostileValueArb), fc.boolean(), (raw, fromText) => {
        const input = fromText ? viaJsonText(raw) : raw;
        const result = validatePoint(input, 0, RECEIVED_AT);
        expect({ accepted: 'point' in result, input }).toEqual({ accepted: oracleAccepts(input, RECEIVED_AT), input });
      }),
      params,
    );
  });

  it('when a point is accepted, then it holds no operator, dotted or prototype field name and no NUL or non-finite number at any depth', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          labelledItemArb(RECEIVED_AT).map(({ raw }) => raw),
          hostilePointArb,
        ),
        fc.boolean(),
        (raw, fromText) => {
          const result = validatePoint(fromText ? viaJsonText(raw) : raw, 0, RECEIVED_AT);
          if ('point' in result) expect(findUnsafe(result.point)).toBeUndefined();
        },
      ),
      params,
    );
  });

  it('when a point is accepted, then key, value, type and meta are kept exactly as sent', () => {
    fc.assert(
      fc.property(
        labelledItemArb(RECEIVED_AT).filter(({ valid }) => valid),
        ({ raw }) => {
          const sent = raw as Record<string, unknown>;
          const result = validatePoint(sent, 0, RECEIVED_AT);
          if (!('point' in result)) throw new Error(`rejected: ${result.rejection.message}`);
          expect(Object.is(result.point.value, sent.value)).toBe(true);
          expect(result.point).toEqual({
            i: 0,
            key: sent.key,
            value: sent.value,
            ts: expect.any(Number),
            ...(sent.type === undefined ? {} : { type: sent.type }),
            ...(sent.meta === undefined ? {} : { meta: sent.meta }),
          });
          if (sent.timestamp === undefined) expect(result.point.ts).toBe(RECEIVED_AT);
        },
      ),
      params,
    );
  });

  it.each([
    ['meta (objects)', (levels: number) => ({ key: 'k', value: 1, meta: deeplyNested(levels) })],
    ['meta (arrays)', (levels: number) => ({ key: 'k', value: 1, meta: { a: deeplyNested(levels, []) } })],
    ['the value', (levels: number) => ({ key: 'k', value: deeplyNested(levels) })],
    ['the point itself', (levels: number) => deeplyNested(levels)],
  ])('when %s is nested thousands of levels deep, then the point is rejected, not a thrown stack overflow', (_case, build) => {
    for (const levels of [5, 1000, 10_000, 100_000]) {
      const result = validatePoint(build(levels), 0, RECEIVED_AT);
      expect({ levels, accepted: 'point' in result }).toEqual({ levels, accepted: false });
    }
  });
});

describe('partitionPoints and extractRawBatch, property-based', () => {
  const mixedBatchArb = fc.array(labelledItemArb(RECEIVED_AT), { maxLength: 25 });

  it('when a batch mixes valid and invalid points in any shape, then every valid point is accepted and exactly the invalid indices are rejected', () => {
    fc.assert(
      fc.property(mixedBatchArb, fc.constantFrom('points', 'array'), fc.boolean(), (items, shape, fromText) => {
        const list = items.map(({ raw }) => raw);
        const body = shape === 'points' ? { points: list } : list;
        const batch = extractRawBatch(fromText ? viaJsonText(body) : body);
        const { points, rejected } = partitionPoints(batch, RECEIVED_AT);
        expect(points.map((point) => point.i)).toEqual(indicesWhere(items, (item) => item.valid));
        expect(rejected.map((rejection) => rejection.index)).toEqual(indicesWhere(items, (item) => !item.valid));
      }),
      params,
    );
  });

  it('when the original {key, items} form is used, then items without a key get the batch key and the oracle decides every index', () => {
    fc.assert(
      fc.property(mixedBatchArb, fc.array(fc.boolean(), { maxLength: 25 }), validKeyArb, (items, dropKey, batchKey) => {
        const list = items.map(({ raw }, index) =>
          dropKey[index] && isPlainObject(raw) ? objectOf(Object.entries(raw).filter(([name]) => name !== 'key')) : raw,
        );
        const batch = extractRawBatch(viaJsonText({ key: batchKey, items: list }));
        const effective = batch.items.map((item) =>
          isPlainObject(item) && !Object.prototype.hasOwnProperty.call(item, 'key')
            ? objectOf([...Object.entries(item), ['key', batchKey]])
            : item,
        );
        const { points, rejected } = partitionPoints(batch, RECEIVED_AT);
        expect(points.map((point) => point.i)).toEqual(indicesWhere(effective, (item) => oracleAccepts(item, RECEIVED_AT)));
        expect(rejected.map((rejection) => rejection.index)).toEqual(indicesWhere(effective, (item) => !oracleAccepts(item, RECEIVED_AT)));
        for (const point of points) expect(findUnsafe(point)).toBeUndefined();
      }),
      params,
    );
  });

  it('when the body is any hostile JSON, then finding the points either succeeds or is a 400 MALFORMED_BODY, never another error', () => {
    const bodyArb = fc.oneof(
      hostileValueArb,
      fc
        .dictionary(fc.constantFrom('points', 'key', 'items', '__proto__', 'constructor', '$set'), hostileValueArb)
        .map((d) => objectOf(Object.entries(d))),
      fc.constantFrom(5, 6, 1000, 10_000).map((levels) => deeplyNested(levels)),
    );
    fc.assert(
      fc.property(bodyArb, (body) => {
        const input = viaJsonText(body);
        try {
          const batch = extractRawBatch(input);
          const { points, rejected } = partitionPoints(batch, RECEIVED_AT);
          expect(points.length + rejected.length).toBe(batch.items.length);
          for (const point of points) expect(findUnsafe(point)).toBeUndefined();
        } catch (error) {
          expect(error).toBeInstanceOf(AppError);
          expect(error).toMatchObject({ status: 400, code: 'MALFORMED_BODY' });
        }
      }),
      params,
    );
  });
});
