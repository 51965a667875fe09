import {
  decodeCursor,
  encodeCursor,
  historyCursorSchema,
  historyQuerySchema,
  statsCursorSchema,
  statsListQuerySchema,
} from '../../src/domain/query-schemas';

/** The problems of a rejected query as "path: message", the way the API reports them. */
function problemsOf(result: { success: boolean; error?: { issues: { path: PropertyKey[]; message: string; code: string }[] } }): string[] {
  expect(result.success).toBe(false);
  return (result.error?.issues ?? []).map((issue) => `${issue.path.join('.')}: ${issue.message}`);
}

describe.each([
  ['historyQuerySchema', historyQuerySchema],
  ['statsListQuerySchema', statsListQuerySchema],
])('%s: limit', (_name, schema) => {
  it('when no limit is given, then it is 100', () => {
    expect(schema.parse({}).limit).toBe(100);
  });

  it.each(['1', '1000', '37'])('when limit=%s, then it is read as a number', (limit) => {
    expect(schema.parse({ limit }).limit).toBe(Number(limit));
  });

  it.each(['0', '1001', '9999', '10000', 'abc', '-1', '1.5', '1e3', '', ' 5'])(
    'when limit=%p, then the query is rejected saying the allowed range',
    (limit) => {
      expect(problemsOf(schema.safeParse({ limit }))).toEqual(['limit: must be an integer from 1 to 1000']);
    },
  );

  it('when an unknown parameter is given, then the query is rejected naming it', () => {
    const result = schema.safeParse({ limit: '5', sort: 'asc' });
    expect(result.success).toBe(false);
    expect(result.error?.issues).toEqual([expect.objectContaining({ code: 'unrecognized_keys', keys: ['sort'] })]);
  });

  it('when the cursor is empty or over 1000 characters, then the query is rejected', () => {
    expect(schema.safeParse({ cursor: '' }).success).toBe(false);
    expect(schema.safeParse({ cursor: 'c'.repeat(1001) }).success).toBe(false);
  });
});

describe('historyQuerySchema: the other parameters', () => {
  it('when from and to are epoch milliseconds or ISO dates, then both are read as epoch milliseconds', () => {
    expect(historyQuerySchema.parse({ from: '1700000000000', to: '2026-01-01T00:00:00Z' })).toMatchObject({
      from: 1_700_000_000_000,
      to: Date.UTC(2026, 0, 1),
    });
  });

  it('when from equals to, then the query is accepted (both bounds are inclusive)', () => {
    expect(historyQuerySchema.safeParse({ from: '1700000000000', to: '1700000000000' }).success).toBe(true);
  });

  it('when from is after to, then the query is rejected on from saying it must not be after to', () => {
    expect(problemsOf(historyQuerySchema.safeParse({ from: '2026-01-02', to: '2026-01-01' }))).toEqual(['from: must not be after to']);
  });

  it.each(['yesterday', '', '2026-13-01', '17e11', 'NaN'])(
    'when from=%p, then the query is rejected saying the accepted formats',
    (from) => {
      expect(problemsOf(historyQuerySchema.safeParse({ from }))).toEqual(['from: must be an ISO-8601 date or epoch milliseconds']);
    },
  );

  it('when from is an impossible calendar date, then the query is rejected instead of rolled into the next month', () => {
    expect(problemsOf(historyQuerySchema.safeParse({ from: '2025-02-30' }))).toEqual([
      'from: must be an ISO-8601 date or epoch milliseconds',
    ]);
  });

  it.each([
    ['an empty key', { key: '' }, 'key: key must not be empty'],
    ['a key over 200 characters', { key: 'k'.repeat(201) }, 'key: key must be at most 200 characters'],
    ['an upper-case batch id', { batchId: 'ABC' }, 'batchId: must be a batch id as returned by ingest'],
    ['a batch id with an operator', { batchId: '{"$ne":null}' }, 'batchId: must be a batch id as returned by ingest'],
  ])('when the query has %s, then it is rejected saying what is expected', (_case, query, problem) => {
    expect(problemsOf(historyQuerySchema.safeParse(query))).toEqual([problem]);
  });

  it('when every parameter is valid, then the query is read in full', () => {
    expect(
      historyQuerySchema.parse({ key: 'sensor-7/temp', batchId: 'abc123', from: '0', to: '1700000000000', limit: '10', cursor: 'x' }),
    ).toEqual({ key: 'sensor-7/temp', batchId: 'abc123', from: 0, to: 1_700_000_000_000, limit: 10, cursor: 'x' });
  });
});

describe('statsListQuerySchema: the other parameters', () => {
  it('when prefix is empty or over 200 characters, then the query is rejected', () => {
    expect(statsListQuerySchema.safeParse({ prefix: '' }).success).toBe(false);
    expect(statsListQuerySchema.safeParse({ prefix: 'p'.repeat(201) }).success).toBe(false);
  });

  it('when key is given (the original form), then it is validated like any key', () => {
    expect(statsListQuerySchema.parse({ key: 'sensor-7/temp' }).key).toBe('sensor-7/temp');
    expect(problemsOf(statsListQuerySchema.safeParse({ key: 'a\u0000b' }))).toEqual(['key: key must not contain control characters']);
  });
});

describe('encodeCursor and decodeCursor', () => {
  it('when a history position is encoded, then decoding it gives the same position', () => {
    const position = { t: 1_700_000_000_000, id: 'lq1x2abc:0:17' };
    expect(decodeCursor(encodeCursor(position), historyCursorSchema)).toEqual(position);
  });

  it('when a stats position is encoded, then decoding it gives the same key, "/" and non-ASCII included', () => {
    const position = { k: 'sensor-7/température' };
    expect(decodeCursor(encodeCursor(position), statsCursorSchema)).toEqual(position);
  });

  it('when a cursor is encoded, then it is URL-safe text', () => {
    expect(encodeCursor({ t: 1, id: '???>>>' })).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it.each([
    ['garbage', 'not-a-cursor!'],
    ['empty', ''],
    ['base64 of plain text', Buffer.from('hello').toString('base64url')],
    ['base64 of truncated JSON', Buffer.from('{"t":1,').toString('base64url')],
    ['JSON of the wrong shape', encodeCursor({ t: 'yesterday', id: 'x' })],
    ['JSON with a negative time', encodeCursor({ t: -1, id: 'x' })],
    ['JSON with an extra field', encodeCursor({ t: 1, id: 'x', $where: 'sleep(1)' })],
    ['JSON with an operator as id', encodeCursor({ t: 1, id: { $gt: '' } })],
    ['JSON null', encodeCursor(null)],
    ['a stats cursor', encodeCursor({ k: 'key' })],
  ])('when a history cursor is %s, then it decodes to undefined without throwing', (_case, text) => {
    expect(decodeCursor(text, historyCursorSchema)).toBeUndefined();
  });

  it.each([
    ['garbage', '%%%'],
    ['a history cursor', encodeCursor({ t: 1, id: 'x' })],
    ['a key with a control character', encodeCursor({ k: 'a\nb' })],
    ['an operator as key', encodeCursor({ k: { $gt: '' } })],
  ])('when a stats cursor is %s, then it decodes to undefined', (_case, text) => {
    expect(decodeCursor(text, statsCursorSchema)).toBeUndefined();
  });
});
