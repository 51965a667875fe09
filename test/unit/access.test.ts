import { AppError } from '../../src/domain/errors';
import { AccessControl, presentedKey } from '../../src/http/access';

describe('presentedKey', () => {
  it.each([
    [{ authorization: 'Bearer abc' }, 'abc'],
    [{ authorization: 'bearer   abc ' }, 'abc'],
    [{ 'x-api-key': ' abc ' }, 'abc'],
    [{ authorization: 'Bearer abc', 'x-api-key': 'other' }, 'abc'],
  ])('when the headers are %j, then the key is %s', (headers, key) => {
    expect(presentedKey(headers)).toBe(key);
  });

  it.each([
    [{}],
    [{ authorization: 'Basic dXNlcjpwYXNz' }],
    [{ authorization: 'Bearer' }],
    [{ authorization: 'Bearer a b' }],
    [{ 'x-api-key': '' }],
  ])('when the headers are %j, then no key is presented', (headers) => {
    expect(presentedKey(headers)).toBeUndefined();
  });
});

describe('AccessControl', () => {
  const access = new AccessControl({ ingestKeys: ['in-1', 'in-2'], readKeys: ['rd-1'] });
  const open = new AccessControl({ ingestKeys: [], readKeys: [] });

  const statusOf = (result: ReturnType<AccessControl['authorize']>): number => (result instanceof AppError ? result.status : 200);

  it('when no keys are configured, then every scope is open and a caller without a key is "open"', () => {
    expect(open.isProtected('ingest')).toBe(false);
    expect(open.authorize('ingest', undefined)).toEqual({ principal: 'open', authenticated: false });
    expect(open.authorize('read', 'anything')).toEqual({ principal: 'open', authenticated: false });
  });

  it('when keys are configured, then ingest keys may ingest and read, read keys only read, and anything else is a 401', () => {
    expect(
      [access.authorize('ingest', 'in-1'), access.authorize('ingest', 'in-2'), access.authorize('read', 'in-2')].map(statusOf),
    ).toEqual([200, 200, 200]);
    expect(statusOf(access.authorize('read', 'rd-1'))).toBe(200);
    expect(statusOf(access.authorize('ingest', 'rd-1'))).toBe(403);
    expect([undefined, 'in-', 'in-10', 'IN-1', ''].map((key) => statusOf(access.authorize('ingest', key)))).toEqual([
      401, 401, 401, 401, 401,
    ]);
  });

  it('when two keys are used, then they are two principals, stable across instances and not the key itself', () => {
    const first = access.authorize('ingest', 'in-1');
    const again = new AccessControl({ ingestKeys: ['in-2', 'in-1'], readKeys: [] }).authorize('ingest', 'in-1');
    const second = access.authorize('ingest', 'in-2');
    expect(first).toEqual(again);
    expect(first).not.toEqual(second);
    expect(JSON.stringify(first)).not.toContain('in-1');
  });

  it('when only ingest is protected, then a known key still identifies its reader (for rate limits), an unknown one reads as "open"', () => {
    const ingestOnly = new AccessControl({ ingestKeys: ['in-1'], readKeys: [] });
    expect(ingestOnly.authorize('read', 'in-1')).toMatchObject({ authenticated: true });
    expect(ingestOnly.authorize('read', 'nope')).toEqual({ principal: 'open', authenticated: false });
  });
});
