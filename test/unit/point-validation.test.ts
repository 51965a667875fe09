import { findMetaProblem, MAX_FUTURE_MS, MAX_META_BYTES, validatePoint, type Point } from '../../src/domain/point-schema';

const RECEIVED_AT = Date.parse('2026-01-01T00:00:00.000Z');

function accept(raw: unknown): Point {
  const result = validatePoint(raw, 0, RECEIVED_AT);
  if (!('point' in result)) throw new Error(`expected the point to be accepted, got: ${result.rejection.message}`);
  return result.point;
}

function reject(raw: unknown): string {
  const result = validatePoint(raw, 0, RECEIVED_AT);
  if (!('rejection' in result)) throw new Error(`expected the point to be rejected, got: ${JSON.stringify(result.point)}`);
  return result.rejection.message;
}

/** A meta object whose JSON text is exactly `bytes` long, using `filler` (1 or 2 UTF-8 bytes) as padding. */
function metaOfBytes(bytes: number, filler = 'x'): Record<string, unknown> {
  const overhead = Buffer.byteLength(JSON.stringify({ a: '' }));
  const fillerBytes = Buffer.byteLength(filler);
  const room = bytes - overhead;
  const text = filler.repeat(Math.floor(room / fillerBytes)) + 'x'.repeat(room % fillerBytes);
  const meta = { a: text };
  expect(Buffer.byteLength(JSON.stringify(meta))).toBe(bytes);
  return meta;
}

describe('validatePoint: key', () => {
  it.each([
    ['1 character', 'k'],
    ['200 characters', 'k'.repeat(200)],
    ['a series path', 'sensor-7/temp'],
    ['non-ASCII letters', 'température/salle-é'],
  ])('when the key is %s, then the point is accepted with that key', (_case, key) => {
    expect(accept({ key, value: 1 }).key).toBe(key);
  });

  it.each([
    ['empty', '', 'key must not be empty'],
    ['201 characters', 'k'.repeat(201), 'key must be at most 200 characters'],
    ['missing', undefined, 'key is required'],
    ['a number', 7, 'key must be a string, not a number'],
    ['null', null, 'key must be a string, not null'],
  ])('when the key is %s, then the point is rejected with "%s"', (_case, key, message) => {
    expect(reject({ key, value: 1 })).toBe(message);
  });

  it.each([
    ['NUL', '\u0000'],
    ['tab', '\t'],
    ['line feed', '\n'],
    ['carriage return', '\r'],
    ['unit separator', '\u001f'],
    ['DEL', '\u007f'],
    ['C1 next line', '\u0085'],
    ['C1 last code point', '\u009f'],
  ])('when the key holds a %s control character, then the point is rejected', (_case, control) => {
    expect(reject({ key: `sensor${control}1`, value: 1 })).toBe('key must not contain control characters');
  });
});

describe('validatePoint: text that is not valid Unicode', () => {
  // JSON allows "\ud800"; the MongoDB driver would store it as U+FFFD, merging distinct keys into one.
  it.each(['a\ud800', 'a\udbff', '\udc00b', 'x\udfffy'])(
    'when the key holds the unpaired surrogate in %p, then the point is rejected',
    (key) => {
      expect(reject({ key, value: 1 })).toBe('key must be valid Unicode (no unpaired UTF-16 surrogates)');
    },
  );

  it('when the key holds a complete surrogate pair (an emoji), then it is accepted', () => {
    expect(accept({ key: 'a😀', value: 1 }).key).toBe('a😀');
  });

  it.each([
    ['type', { type: 'x\ud800' }, 'type must be valid Unicode (no unpaired UTF-16 surrogates)'],
    ['a meta string', { meta: { a: 'x\udc00' } }, 'meta strings must be valid Unicode (no unpaired UTF-16 surrogates)'],
    ['a meta field name', { meta: { a: { 'x\ud800': 1 } } }, 'meta field names must be valid Unicode (no unpaired UTF-16 surrogates)'],
  ])('when %s holds an unpaired surrogate, then the point is rejected saying so', (_case, fields, message) => {
    expect(reject({ key: 'k', value: 1, ...fields })).toBe(message);
  });
});

describe('validatePoint: value', () => {
  it.each([0, -0.5, 42, -1e6, 3.14159, 1e292, -1e292, Number.MIN_VALUE])(
    'when the value is the finite number %p, then it is kept as sent',
    (value) => {
      expect(accept({ key: 'k', value }).value).toBe(value);
    },
  );

  it.each([Number.MAX_VALUE, -Number.MAX_VALUE, 1.0000001e292, -2e292])(
    'when the value is %p, beyond what a sum can hold, then the point is rejected naming the range',
    (value) => {
      expect(reject({ key: 'k', value })).toBe("value must be between -1e292 and 1e292, so that the sum of a key's values stays finite");
    },
  );

  it('when 2^53 values of the largest allowed magnitude are summed, then the sum is still finite', () => {
    expect(Number.isFinite(2 ** 53 * 1e292)).toBe(true);
    expect(Number.isFinite(2 ** 53 * -1e292)).toBe(true);
  });

  it.each([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])(
    'when the value is %p, then the point is rejected as not finite',
    (value) => {
      expect(reject({ key: 'k', value })).toBe('value must be a finite number');
    },
  );

  it.each(['1', 'NaN', 'Infinity', '1e400', ''])('when the value is the string %p, then the point is rejected as not a number', (value) => {
    expect(reject({ key: 'k', value })).toBe('value must be a number, not a string');
  });

  it.each([
    ['missing', undefined, 'value is required'],
    ['null', null, 'value must be a number, not null'],
    ['a boolean', true, 'value must be a number, not a boolean'],
    ['an array', [1], 'value must be a number, not an array'],
    ['an object', { n: 1 }, 'value must be a number, not an object'],
  ])('when the value is %s, then the rejection names the expected type', (_case, value, message) => {
    expect(reject({ key: 'k', value })).toBe(message);
  });
});

describe('validatePoint: timestamp', () => {
  const originalTz = process.env.TZ;

  beforeAll(() => {
    // A zone far from UTC, so reading a zone-less date-time in local time would show.
    process.env.TZ = 'America/New_York';
  });

  afterAll(() => {
    if (originalTz === undefined) delete process.env.TZ;
    else process.env.TZ = originalTz;
  });

  it('when the timestamp is absent, then the receive time is used', () => {
    expect(accept({ key: 'k', value: 1 }).ts).toBe(RECEIVED_AT);
  });

  it.each([
    ['2025-12-31T23:59:59.999Z', Date.UTC(2025, 11, 31, 23, 59, 59, 999)],
    ['2025-06-01T12:00:00Z', Date.UTC(2025, 5, 1, 12)],
    ['2025-06-01T12:00:00+02:00', Date.UTC(2025, 5, 1, 10)],
    ['2025-06-01T12:00:00-0130', Date.UTC(2025, 5, 1, 13, 30)],
    ['2025-06-01', Date.UTC(2025, 5, 1)],
    ['2024-02-29T00:00:00Z', Date.UTC(2024, 1, 29)],
  ])('when the timestamp is the ISO-8601 string %s, then it is stored as its UTC epoch milliseconds', (timestamp, expected) => {
    expect(accept({ key: 'k', value: 1, timestamp }).ts).toBe(expected);
  });

  it.each([
    ['2025-06-01T12:00:00', Date.UTC(2025, 5, 1, 12)],
    ['2025-06-01T12:00', Date.UTC(2025, 5, 1, 12)],
    ['2025-06-01T12:00:00.250', Date.UTC(2025, 5, 1, 12, 0, 0, 250)],
  ])('when an ISO date-time has no zone (%s), then it is read as UTC, not server time', (timestamp, expected) => {
    expect(accept({ key: 'k', value: 1, timestamp }).ts).toBe(expected);
  });

  it.each([0, 1_700_000_000_000, RECEIVED_AT])('when the timestamp is epoch milliseconds %p, then it is kept as is', (timestamp) => {
    expect(accept({ key: 'k', value: 1, timestamp }).ts).toBe(timestamp);
  });

  it('when the timestamp is exactly 24 hours ahead of the receive time, then the point is accepted', () => {
    const limit = RECEIVED_AT + MAX_FUTURE_MS;
    expect(accept({ key: 'k', value: 1, timestamp: limit }).ts).toBe(limit);
    expect(accept({ key: 'k', value: 1, timestamp: new Date(limit).toISOString() }).ts).toBe(limit);
  });

  it('when the timestamp is 1 ms more than 24 hours ahead, then the point is rejected saying the limit', () => {
    const past = RECEIVED_AT + MAX_FUTURE_MS + 1;
    expect(reject({ key: 'k', value: 1, timestamp: past })).toBe('timestamp must not be more than 24 hours in the future');
    expect(reject({ key: 'k', value: 1, timestamp: new Date(past).toISOString() })).toBe(
      'timestamp must not be more than 24 hours in the future',
    );
  });

  it.each([
    ['a word', 'yesterday'],
    ['an empty string', ''],
    ['a month 13', '2026-13-01'],
    ['day 32', '2026-01-32'],
    ['hour 25', '2026-01-01T25:00:00Z'],
    ['minute 60', '2026-01-01T00:60:00Z'],
    ['single-digit month and day', '2026-1-1'],
    ['a US-style date', '01/02/2026'],
    ['a fractional epoch', 1.5],
    ['a negative epoch', -1],
    ['an epoch past the last JavaScript date', 8.64e15 + 1],
  ])('when the timestamp is %s, then the point is rejected saying which formats are accepted', (_case, timestamp) => {
    expect(reject({ key: 'k', value: 1, timestamp })).toMatch(/^timestamp must be an ISO-8601 (date|string) or .*epoch milliseconds$/);
  });

  it.each([
    ['February 30th', '2025-02-30T00:00:00Z'],
    ['February 29th of a common year', '2025-02-29'],
    ['April 31st', '2025-04-31T12:00:00Z'],
  ])(
    'when the timestamp is an impossible calendar date (%s), then the point is rejected instead of rolled into the next month',
    (_c, timestamp) => {
      expect(reject({ key: 'k', value: 1, timestamp })).toMatch(/^timestamp must be an ISO-8601/);
    },
  );

  it.each([
    ['null', null],
    ['a boolean', true],
    ['an object', { iso: '2026-01-01' }],
  ])('when the timestamp is %s, then the point is rejected saying which formats are accepted', (_case, timestamp) => {
    expect(reject({ key: 'k', value: 1, timestamp })).toBe('timestamp must be an ISO-8601 string or epoch milliseconds');
  });
});

describe('validatePoint: type', () => {
  it.each([
    ['1 character', 't'],
    ['64 characters', 't'.repeat(64)],
  ])('when the type is %s, then it is kept', (_case, type) => {
    expect(accept({ key: 'k', value: 1, type }).type).toBe(type);
  });

  it.each([
    ['empty', '', 'type must not be empty'],
    ['65 characters', 't'.repeat(65), 'type must be at most 64 characters'],
    ['a number', 5, 'type must be a string, not a number'],
  ])('when the type is %s, then the point is rejected with "%s"', (_case, type, message) => {
    expect(reject({ key: 'k', value: 1, type })).toBe(message);
  });

  it.each([
    ['NUL', 'a\u0000'],
    ['line feed', 'a\nb'],
    ['DEL', '\u007f'],
  ])('when the type holds a %s control character, then the point is rejected (the store refuses NUL)', (_case, type) => {
    expect(reject({ key: 'k', value: 1, type })).toBe('type must not contain control characters');
  });

  it('when the type is absent, then the point has no type field', () => {
    expect(accept({ key: 'k', value: 1 })).not.toHaveProperty('type');
  });
});

describe('findMetaProblem and validatePoint: meta', () => {
  it('when meta serializes to exactly 4 KiB, then it is accepted', () => {
    const meta = metaOfBytes(MAX_META_BYTES);
    expect(findMetaProblem(meta)).toBeUndefined();
    expect(accept({ key: 'k', value: 1, meta }).meta).toEqual(meta);
  });

  it('when meta serializes to 4 KiB plus one byte, then it is rejected saying the limit', () => {
    const meta = metaOfBytes(MAX_META_BYTES + 1);
    expect(findMetaProblem(meta)).toBe('meta must be at most 4096 bytes when serialized');
    expect(reject({ key: 'k', value: 1, meta })).toBe('meta must be at most 4096 bytes when serialized');
  });

  it('when meta holds multi-byte characters, then the limit counts UTF-8 bytes, not characters', () => {
    expect(findMetaProblem(metaOfBytes(MAX_META_BYTES, 'é'))).toBeUndefined();
    expect(findMetaProblem(metaOfBytes(MAX_META_BYTES + 1, 'é'))).toBe('meta must be at most 4096 bytes when serialized');
  });

  it.each([
    ['nested objects', { a: { b: { c: { d: 1 } } } }],
    ['an array as the 4th level', { a: { b: { c: [1, 'two', true, null] } } }],
    ['objects inside a single array', { list: [{ b: { c: 1 } }, { b: [2, 3] }] }],
    ['an empty object', {}],
  ])('when meta is 4 levels deep at most (%s), then it is accepted', (_case, meta) => {
    expect(findMetaProblem(meta)).toBeUndefined();
    expect(accept({ key: 'k', value: 1, meta }).meta).toEqual(meta);
  });

  it.each([
    ['nested objects', { a: { b: { c: { d: { e: 1 } } } } }],
    ['an empty object as 5th level', { a: { b: { c: { d: {} } } } }],
    ['an object inside a 4th-level array', { a: { b: { c: [{}] } } }],
  ])('when meta is 5 levels deep (%s), then it is rejected saying the limit', (_case, meta) => {
    expect(findMetaProblem(meta)).toBe('meta must be nested at most 4 levels deep');
  });

  const forbiddenNames = ['$where', '$', '$set', 'a.b', '.', 'trailing.', '__proto__', 'constructor', 'prototype'];
  const placements: [string, (name: string) => string][] = [
    ['at the top', (name) => `{${JSON.stringify(name)}: 1}`],
    ['three levels down', (name) => `{"a": {"b": {${JSON.stringify(name)}: "x"}}}`],
    ['in an object inside an array', (name) => `{"list": [1, {"ok": true}, {${JSON.stringify(name)}: {}}]}`],
  ];
  const nameCases = forbiddenNames.flatMap((name) => placements.map(([where, build]) => [name, where, build(name)] as const));

  it.each(nameCases)('when meta has a field named %p %s, then it is rejected naming that field', (name, _where, json) => {
    // Parsed from text, as the API does, so "__proto__" is a real own field and not the prototype.
    const meta: unknown = JSON.parse(json);
    const problem = findMetaProblem(meta);
    expect(problem).toBe(`meta field name "${name}" is not allowed (no leading "$", no ".", no __proto__/constructor/prototype)`);
    expect(reject({ key: 'k', value: 1, meta })).toBe(problem);
  });

  it.each(['price$', 'my_proto', 'constructors', 'Prototype', 'a-b', 'é'])(
    'when a meta field name only resembles a forbidden one (%p), then it is accepted',
    (name) => {
      expect(findMetaProblem({ [name]: 1 })).toBeUndefined();
    },
  );

  it('when a forbidden meta field name is very long, then the message quotes at most 50 characters of it', () => {
    const name = `$${'x'.repeat(500)}`;
    expect(findMetaProblem({ [name]: 1 })).toBe(
      `meta field name "${name.slice(0, 50)}" is not allowed (no leading "$", no ".", no __proto__/constructor/prototype)`,
    );
  });

  it.each([
    ['directly', { a: [[1]] }],
    ['after a scalar', { a: [1, [2]] }],
    ['empty', { a: [[]] }],
  ])('when meta holds an array inside an array (%s), then it is rejected', (_case, meta) => {
    expect(findMetaProblem(meta)).toBe('meta must not hold arrays inside arrays');
  });

  it.each([
    ['in a value', { note: 'a\u0000b' }],
    ['in a nested value', { a: { b: 'x\u0000' } }],
    ['in an array item', { tags: ['ok', '\u0000'] }],
  ])('when a meta string holds NUL (%s), then it is rejected', (_case, meta) => {
    expect(findMetaProblem(meta)).toBe('meta strings must not contain NUL characters');
  });

  it('when a meta field name holds NUL, then it is rejected as a field name', () => {
    expect(findMetaProblem({ 'a\u0000b': 1 })).toBe(
      'meta field name "a\u0000b" is not allowed (no leading "$", no ".", no __proto__/constructor/prototype)',
    );
  });

  it.each([5_000, 100_000])(
    'when meta is nested %p levels deep, then it is rejected saying the depth limit, not a stack overflow',
    (levels) => {
      let meta: Record<string, unknown> = { leaf: 1 };
      for (let i = 0; i < levels; i += 1) meta = { a: meta };
      expect(findMetaProblem(meta)).toBe('meta must be nested at most 4 levels deep');
      expect(reject({ key: 'k', value: 1, meta })).toBe('meta must be nested at most 4 levels deep');
    },
  );

  it('when a point has many long unknown fields, then the message names five of them, cut to 50 characters, and counts the rest', () => {
    const names = Array.from({ length: 1000 }, (_, i) => `${i}-${'x'.repeat(10_000)}`);
    const message = reject(Object.fromEntries([['key', 'k'], ['value', 1], ...names.map((name) => [name, 1])]));
    expect(message).toBe(
      `unknown field(s): ${names
        .slice(0, 5)
        .map((name) => name.slice(0, 50))
        .join(', ')} and 995 more`,
    );
  });

  it.each([Number.NaN, Number.POSITIVE_INFINITY])('when meta holds the number %p, then it is rejected as not finite', (n) => {
    expect(findMetaProblem({ a: { b: n } })).toBe('meta numbers must be finite');
  });

  it.each([
    ['null', null],
    ['an array', [1]],
    ['a string', 'room=a'],
    ['a number', 5],
  ])('when meta is %s, then the point is rejected saying meta must be an object', (_case, meta) => {
    expect(reject({ key: 'k', value: 1, meta })).toBe('meta must be a JSON object');
  });
});

describe('validatePoint: shape', () => {
  it('when a point has an unknown top-level field, then it is rejected naming the field', () => {
    expect(reject({ key: 'k', value: 1, timestmp: 5 })).toBe('unknown field(s): timestmp');
  });

  it('when a point has several unknown fields, then all of them are named', () => {
    expect(reject({ key: 'k', value: 1, unit: 'C', room: 'a' })).toBe('unknown field(s): unit, room');
  });

  it.each(['__proto__', 'constructor'])('when a point has a top-level %p field, then it is rejected naming it', (name) => {
    expect(reject(JSON.parse(`{"key": "k", "value": 1, ${JSON.stringify(name)}: {"key": "x"}}`))).toBe(`unknown field(s): ${name}`);
  });

  it.each([
    ['null', null],
    ['a number', 5],
    ['a string', 'k=1'],
    ['an array', [{ key: 'k', value: 1 }]],
  ])('when a point is %s, then it is rejected saying a point must be an object', (_case, raw) => {
    expect(reject(raw)).toBe('a point must be a JSON object');
  });

  it('when a point is valid, then the result holds its index and exactly the sent fields', () => {
    const result = validatePoint(
      { key: 'sensor-7/temp', value: 21.5, timestamp: '2025-06-01T12:00:00Z', type: 'temp', meta: { room: 'a' } },
      7,
      RECEIVED_AT,
    );
    expect(result).toEqual({
      point: { i: 7, key: 'sensor-7/temp', value: 21.5, ts: Date.UTC(2025, 5, 1, 12), type: 'temp', meta: { room: 'a' } },
    });
  });

  it('when a point is rejected, then the rejection carries the index it was given', () => {
    expect(validatePoint({ key: 'k' }, 12, RECEIVED_AT)).toEqual({ rejection: { index: 12, message: 'value is required' } });
  });
});
