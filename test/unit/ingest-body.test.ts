import { AppError } from '../../src/domain/errors';
import { extractRawBatch, noValidPoint, partitionPoints, withDefaultKey } from '../../src/domain/ingest-body';

const RECEIVED_AT = Date.parse('2026-01-01T00:00:00.000Z');
const SHAPES_HINT = 'Send {"points": [...]}, a JSON array of points, or {"key": "...", "items": [...]}.';

function errorOf(action: () => unknown): AppError {
  try {
    action();
  } catch (error) {
    if (error instanceof AppError) return error;
    throw error;
  }
  throw new Error('expected an AppError to be thrown');
}

describe('extractRawBatch: the three body shapes', () => {
  it('when the body is a bare array, then its elements are the items and there is no batch key', () => {
    const items = [{ key: 'a', value: 1 }, 'not a point'];
    expect(extractRawBatch(items)).toEqual({ items });
  });

  it('when the body is {"points": [...]}, then the points are the items', () => {
    const points = [{ key: 'a', value: 1 }];
    expect(extractRawBatch({ points })).toEqual({ items: points });
  });

  it('when the body is the original {"key", "items"} form, then the items come with the batch key', () => {
    const items = [{ value: 1 }, { key: 'own', value: 2 }];
    expect(extractRawBatch({ key: 'batch-key', items })).toEqual({ items, defaultKey: 'batch-key' });
  });

  it('when the list is empty, then it is returned empty (the caller answers "no valid point")', () => {
    expect(extractRawBatch({ points: [] })).toEqual({ items: [] });
    expect(extractRawBatch([])).toEqual({ items: [] });
  });
});

describe('extractRawBatch: malformed envelopes', () => {
  it.each([
    ['a number', 5],
    ['a string', '[{"key":"a","value":1}]'],
    ['a boolean', true],
    ['null', null],
    ['nothing', undefined],
  ])('when the body is %s, then it is a 400 MALFORMED_BODY saying which shapes to send', (_case, body) => {
    const error = errorOf(() => extractRawBatch(body));
    expect(error).toMatchObject({ status: 400, code: 'MALFORMED_BODY' });
    expect(error.message).toBe(`The body must be a JSON object or array. ${SHAPES_HINT}`);
  });

  it.each([
    ['an empty object', {}],
    ['points that are not a list', { points: { key: 'a', value: 1 } }],
    ['points that are a string', { points: 'a=1' }],
    ['a key without items', { key: 'k' }],
    ['items without a key', { items: [{ key: 'a', value: 1 }] }],
    ['items that are not a list', { key: 'k', items: { value: 1 } }],
    ['points next to a key', { points: [], key: 'k' }],
    ['a single point instead of a list', { key: 'a', value: 1 }],
  ])('when the body is %s, then it is a 400 MALFORMED_BODY saying there is no list of points', (_case, body) => {
    const error = errorOf(() => extractRawBatch(body));
    expect(error).toMatchObject({ status: 400, code: 'MALFORMED_BODY' });
    expect(error.message).toMatch(/^The body has no list of points\./);
    expect(error.message).toContain(SHAPES_HINT);
  });

  it('when the body has an unknown field next to the points, then the message names that field', () => {
    const error = errorOf(() => extractRawBatch({ points: [{ key: 'a', value: 1 }], batch: 'x' }));
    expect(error).toMatchObject({ status: 400, code: 'MALFORMED_BODY' });
    expect(error.message).toBe(`The body has no list of points. Unknown field(s): batch. ${SHAPES_HINT}`);
  });

  it('when the body has many unknown fields, then the message names only the first five', () => {
    const body = Object.fromEntries(['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((name) => [name, 1]));
    expect(errorOf(() => extractRawBatch(body)).message).toContain('Unknown field(s): a, b, c, d, e and 2 more.');
  });

  it('when the body has a real "__proto__" field, then it is named as unknown and not used as the prototype', () => {
    const body: unknown = JSON.parse('{"__proto__": {"points": [{"key": "a", "value": 1}]}}');
    const error = errorOf(() => extractRawBatch(body));
    expect(error.message).toContain('Unknown field(s): __proto__.');
  });
});

describe('withDefaultKey', () => {
  it('when an item has no key, then it gets the batch key without changing the original item', () => {
    const item = { value: 1 };
    expect(withDefaultKey(item, 'batch-key')).toEqual({ value: 1, key: 'batch-key' });
    expect(item).toEqual({ value: 1 });
  });

  it('when an item has its own key, then it keeps it, even when that key is invalid', () => {
    const own = { key: 'own', value: 1 };
    const empty = { key: '', value: 1 };
    expect(withDefaultKey(own, 'batch-key')).toBe(own);
    expect(withDefaultKey(empty, 'batch-key')).toBe(empty);
  });

  it('when there is no batch key, then the item is returned unchanged', () => {
    const item = { value: 1 };
    expect(withDefaultKey(item, undefined)).toBe(item);
  });

  it.each([
    ['null', null],
    ['a number', 5],
    ['an array', [{ value: 1 }]],
  ])('when the item is %s, then it is left for validation to reject', (_case, item) => {
    expect(withDefaultKey(item, 'batch-key')).toBe(item);
  });

  it('when an item has a key only through a "__proto__" field, then it still gets the batch key', () => {
    const item: unknown = JSON.parse('{"value": 1, "__proto__": {"key": "sneaky"}}');
    expect(withDefaultKey(item, 'batch-key')).toMatchObject({ key: 'batch-key' });
  });
});

describe('partitionPoints', () => {
  it('when valid and invalid points are mixed, then valid ones keep their index and exactly the invalid indices are rejected', () => {
    const { points, rejected } = partitionPoints(
      {
        items: [
          { key: 'a', value: 1 },
          { key: 'a', value: 'two' },
          { key: 'b', value: 3, timestamp: 1_700_000_000_000 },
          null,
          { key: 'c', value: 4, color: 'red' },
          { key: 'c', value: 5 },
        ],
      },
      RECEIVED_AT,
    );
    expect(points).toEqual([
      { i: 0, key: 'a', value: 1, ts: RECEIVED_AT },
      { i: 2, key: 'b', value: 3, ts: 1_700_000_000_000 },
      { i: 5, key: 'c', value: 5, ts: RECEIVED_AT },
    ]);
    expect(rejected).toEqual([
      { index: 1, message: 'value must be a number, not a string' },
      { index: 3, message: 'a point must be a JSON object' },
      { index: 4, message: 'unknown field(s): color' },
    ]);
  });

  it('when the original form is used, then the batch key applies to items without one and own keys win', () => {
    const { points, rejected } = partitionPoints(
      { items: [{ value: 1 }, { key: 'own', value: 2 }, { key: '', value: 3 }], defaultKey: 'legacy' },
      RECEIVED_AT,
    );
    expect(points.map((point) => [point.i, point.key])).toEqual([
      [0, 'legacy'],
      [1, 'own'],
    ]);
    expect(rejected).toEqual([{ index: 2, message: 'key must not be empty' }]);
  });

  it('when the batch key itself is invalid, then every item relying on it is rejected saying why', () => {
    const { points, rejected } = partitionPoints({ items: [{ value: 1 }, { value: 2 }], defaultKey: 42 }, RECEIVED_AT);
    expect(points).toEqual([]);
    expect(rejected).toEqual([
      { index: 0, message: 'key must be a string, not a number' },
      { index: 1, message: 'key must be a string, not a number' },
    ]);
  });

  it('when the list is empty, then there are neither points nor rejections', () => {
    expect(partitionPoints({ items: [] }, RECEIVED_AT)).toEqual({ points: [], rejected: [] });
  });
});

describe('noValidPoint', () => {
  it('when the batch was empty, then the 400 says to send at least one point', () => {
    const error = noValidPoint([]);
    expect(error).toMatchObject({ status: 400, code: 'NO_VALID_POINTS', details: [] });
    expect(error.message).toBe('The batch holds no points; send at least one.');
  });

  it('when every point was rejected, then the 400 lists them all and quotes the first problem', () => {
    const rejected = [
      { index: 0, message: 'value is required' },
      { index: 1, message: 'key must not be empty' },
    ];
    const error = noValidPoint(rejected);
    expect(error).toMatchObject({ status: 400, code: 'NO_VALID_POINTS', details: rejected });
    expect(error.message).toBe('No valid point in the batch; the first problem: point 0: value is required.');
  });
});
