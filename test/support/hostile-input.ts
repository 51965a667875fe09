import fc from 'fast-check';

/**
 * Generators of hostile and mixed input, and an oracle that judges a point
 * by the contract's rules (../shared/CONTRACT.md, docs/api.md), written
 * without the service's code, so a property can compare the two.
 */

export const DAY_MS = 24 * 60 * 60 * 1000;
export const MAX_EPOCH_MS = 8.64e15;
const META_BYTES = 4096;
const META_DEPTH = 4;
const POINT_FIELDS = new Set(['key', 'value', 'timestamp', 'type', 'meta']);
const PROTOTYPE_NAMES = new Set(['__proto__', 'constructor', 'prototype']);
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// A UTF-16 surrogate that is not half of a pair: not a character, and not storable as UTF-8.
const LONE_SURROGATE = /\p{Cs}/u;

/** Fast-check's seed for this run: `FC_SEED=<n>` replays a failure; printed so a failing run can be repeated. */
export function propertySeed(label: string): number {
  const seed = process.env.FC_SEED ? Number(process.env.FC_SEED) : Math.floor(Math.random() * 2 ** 31);
  process.stderr.write(`[${label}] fast-check seed ${seed} (replay with FC_SEED=${seed})\n`);
  return seed;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An object with exactly these own fields, "__proto__" included as a plain field (as JSON.parse makes it). */
export function objectOf(entries: readonly (readonly [string, unknown])[]): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  for (const [name, value] of entries) {
    Object.defineProperty(object, name, { value, enumerable: true, writable: true, configurable: true });
  }
  return object;
}

const has = (object: Record<string, unknown>, name: string): boolean => Object.prototype.hasOwnProperty.call(object, name);

function isText(value: unknown, min: number, max: number): value is string {
  return typeof value === 'string' && value.length >= min && value.length <= max && !LONE_SURROGATE.test(value);
}

export function oracleKeyIsValid(key: unknown): boolean {
  return isText(key, 1, 200) && !CONTROL.test(key);
}

function daysIn(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * Epoch ms of a timestamp, or undefined when it is not a valid one. Knows the
 * forms the generators make (`YYYY-MM-DD`, `toISOString()`); any other string
 * that looks like a date fails loudly, so the oracle never guesses.
 */
function oracleEpoch(timestamp: unknown): number | undefined {
  if (typeof timestamp === 'number') {
    return Number.isInteger(timestamp) && timestamp >= 0 && timestamp <= MAX_EPOCH_MS ? timestamp : undefined;
  }
  if (typeof timestamp !== 'string') return undefined;
  if (!/^\d{4}-\d{2}-\d{2}/.test(timestamp)) return undefined;
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})\.(\d{3})Z)?$/.exec(timestamp);
  if (!match) throw new Error(`oracle: no rule for the timestamp ${JSON.stringify(timestamp)}`);
  const parts = match.slice(1).map((part: string | undefined) => Number(part ?? 0));
  const [year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, ms = 0] = parts;
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59) return undefined;
  if (year < 1970) return undefined;
  return Date.UTC(year, month - 1, day, hour, minute, second, ms);
}

/** Levels of containers in `node` (a scalar is 0), counting no further than `limit + 1`. */
function containerDepth(node: unknown, limit: number): number {
  if (typeof node !== 'object' || node === null) return 0;
  if (limit < 0) return 1;
  let deepest = 0;
  for (const child of Object.values(node)) deepest = Math.max(deepest, containerDepth(child, limit - 1));
  return 1 + deepest;
}

function metaNodeIsClean(node: unknown, parentIsArray: boolean): boolean {
  if (typeof node === 'string') return !node.includes('\u0000') && !LONE_SURROGATE.test(node);
  if (typeof node === 'number') return Number.isFinite(node);
  if (typeof node !== 'object' || node === null) return true;
  if (Array.isArray(node)) return !parentIsArray && node.every((item) => metaNodeIsClean(item, true));
  return Object.entries(node).every(
    ([name, child]) =>
      !name.startsWith('$') &&
      !name.includes('.') &&
      !name.includes('\u0000') &&
      !PROTOTYPE_NAMES.has(name) &&
      !LONE_SURROGATE.test(name) &&
      metaNodeIsClean(child, false),
  );
}

export function oracleMetaIsValid(meta: unknown): boolean {
  if (!isPlainObject(meta)) return false;
  if (containerDepth(meta, META_DEPTH) > META_DEPTH) return false;
  return metaNodeIsClean(meta, false) && Buffer.byteLength(JSON.stringify(meta), 'utf8') <= META_BYTES;
}

/** Whether the contract accepts `raw` as a point received at `receivedAt`. */
export function oracleAccepts(raw: unknown, receivedAt: number): boolean {
  if (!isPlainObject(raw)) return false;
  if (Object.keys(raw).some((name) => !POINT_FIELDS.has(name))) return false;
  if (!has(raw, 'key') || !oracleKeyIsValid(raw.key)) return false;
  // Values are bounded so that no key's sum can overflow (docs/guarantees.md, "Bad input").
  if (typeof raw.value !== 'number' || !Number.isFinite(raw.value) || Math.abs(raw.value) > 1e292) return false;
  if (raw.timestamp !== undefined) {
    const epoch = oracleEpoch(raw.timestamp);
    if (epoch === undefined || epoch > receivedAt + DAY_MS) return false;
  }
  if (raw.type !== undefined && (!isText(raw.type, 1, 64) || CONTROL.test(raw.type))) return false;
  if (raw.meta !== undefined && !oracleMetaIsValid(raw.meta)) return false;
  return true;
}

/** Every field name at any depth, and whether any string or number would be unsafe to store. */
export function findUnsafe(node: unknown): string | undefined {
  const stack: unknown[] = [node];
  while (stack.length > 0) {
    const current = stack.pop();
    if (typeof current === 'string' && current.includes('\u0000')) return 'a string with NUL';
    if (typeof current === 'number' && !Number.isFinite(current)) return `the number ${current}`;
    if (typeof current !== 'object' || current === null) continue;
    if (Array.isArray(current)) {
      stack.push(...(current as unknown[]));
      continue;
    }
    for (const [name, child] of Object.entries(current)) {
      if (name.startsWith('$') || name.includes('.') || PROTOTYPE_NAMES.has(name)) return `the field name ${JSON.stringify(name)}`;
      stack.push(child);
    }
  }
  return undefined;
}

/**
 * JSON text of `root` without recursion (values nested thousands of levels
 * deep are part of the test). Non-finite numbers become `1e400`, which
 * JSON.parse reads back as Infinity; own "__proto__" fields are written as
 * fields.
 */
export function toJsonText(root: unknown): string {
  const out: string[] = [];
  type Task = { raw: string } | { value: unknown };
  const tasks: Task[] = [{ value: root }];
  while (tasks.length > 0) {
    const task = tasks.pop() as Task;
    if ('raw' in task) {
      out.push(task.raw);
      continue;
    }
    const { value } = task;
    if (typeof value === 'number') {
      out.push(Number.isFinite(value) ? (Object.is(value, -0) ? '-0' : String(value)) : value < 0 ? '-1e400' : '1e400');
    } else if (typeof value === 'string' || typeof value === 'boolean' || value === null) {
      out.push(JSON.stringify(value));
    } else if (Array.isArray(value)) {
      const items = value as unknown[];
      out.push('[');
      tasks.push({ raw: ']' });
      for (let i = items.length - 1; i >= 0; i -= 1) {
        tasks.push({ value: items[i] });
        if (i > 0) tasks.push({ raw: ',' });
      }
    } else if (typeof value === 'object') {
      const entries = Object.entries(value);
      out.push('{');
      tasks.push({ raw: '}' });
      for (let i = entries.length - 1; i >= 0; i -= 1) {
        const [name, child] = entries[i] as [string, unknown];
        tasks.push({ value: child });
        tasks.push({ raw: `${i > 0 ? ',' : ''}${JSON.stringify(name)}:` });
      }
    } else {
      out.push('null');
    }
  }
  return out.join('');
}

/** `levels` objects nested in one another, built without recursion. */
export function deeplyNested(levels: number, leaf: unknown = 1): unknown {
  let node = leaf;
  for (let i = 0; i < levels; i += 1) node = i % 2 === 0 ? { a: node } : [node];
  // A failing run prints its counterexample; this keeps it to one line. The symbol is invisible to JSON and to zod.
  Object.defineProperty(node, fc.toStringMethod, { value: () => `<${levels} levels of {"a": [...]}>`, enumerable: false });
  return node;
}

const forbiddenNameArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('$where', '$gt', '$set', '$', '$inc', 'a.b', '.', 'x.', '__proto__', 'constructor', 'prototype', 'a\u0000b', 'x\ud800'),
  fc.string({ maxLength: 10 }).map((rest) => `$${rest}`),
  fc.tuple(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 })).map(([a, b]) => `${a}.${b}`),
);

/** Field names a client may use in meta: look harmless or tricky, but break no rule. */
const safeNameArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    'room',
    'a',
    'price$',
    'my_proto',
    'constructors',
    'Prototype',
    'toString',
    'hasOwnProperty',
    'valueOf',
    'key',
    'é',
    '😀',
    '',
  ),
  fc.string({ maxLength: 8 }).filter((name) => !name.startsWith('$') && !name.includes('.') && !PROTOTYPE_NAMES.has(name)),
);

const safeStringArb = fc.oneof(fc.string({ maxLength: 20 }), fc.string({ unit: 'grapheme', maxLength: 8 }));
const scalarArb: fc.Arbitrary<unknown> = fc.oneof(
  safeStringArb,
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(-0),
);

/** A valid meta object: at most 4 levels, safe names, no nested arrays; small enough by construction and filter. */
export const validMetaArb: fc.Arbitrary<Record<string, unknown>> = fc
  .letrec<{ object: Record<string, unknown>; node: unknown; list: unknown[] }>((tie) => ({
    object: fc.array(fc.tuple(safeNameArb, tie('node')), { maxLength: 4 }).map((entries) => objectOf(entries)),
    node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalarArb, tie('object'), tie('list')),
    list: fc.array(fc.oneof(scalarArb, tie('object')), { maxLength: 3 }),
  }))
  .object.filter((meta) => containerDepth(meta, META_DEPTH) <= META_DEPTH && Buffer.byteLength(JSON.stringify(meta)) <= META_BYTES);

export const validKeyArb: fc.Arbitrary<string> = fc
  .oneof(
    fc.string({ minLength: 1, maxLength: 30 }),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }),
    fc.constantFrom(
      'sensor-7/temp',
      '$where',
      '{"$gt":""}',
      'a.b',
      '__proto__',
      'constructor',
      'température',
      'k'.repeat(200),
      '😀'.repeat(100),
    ),
  )
  .filter(oracleKeyIsValid);

const isoDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

export function validTimestampArb(receivedAt: number, slackMs = 0): fc.Arbitrary<number | string> {
  const latest = receivedAt + DAY_MS - slackMs;
  return fc.oneof(
    fc.integer({ min: 0, max: latest }),
    fc.constantFrom(0, latest, receivedAt),
    fc.integer({ min: 0, max: latest }).map((ms) => new Date(ms).toISOString()),
    fc.integer({ min: 0, max: receivedAt }).map(isoDay),
  );
}

export interface PointSpec {
  key: string;
  value: number;
  timestamp?: number | string;
  type?: string;
  meta?: Record<string, unknown>;
}

export interface ItemOptions {
  /** Values of valid points; any finite double by default. */
  valueArb?: fc.Arbitrary<number>;
  /**
   * Keeps timestamps this far from the 24-hour limit on both sides: over HTTP the server's receive time is a
   * little later than `receivedAt`, and a point built valid or invalid must stay so.
   */
  slackMs?: number;
}

export function validPointArb(
  receivedAt: number,
  { valueArb = fc.double({ min: -1e292, max: 1e292, noNaN: true }), slackMs = 0 }: ItemOptions = {},
) {
  return fc.record(
    {
      key: validKeyArb,
      value: valueArb,
      timestamp: validTimestampArb(receivedAt, slackMs),
      type: fc.string({ minLength: 1, maxLength: 64 }).filter((type) => !CONTROL.test(type)),
      meta: validMetaArb,
    },
    { requiredKeys: ['key', 'value'] },
  ) as fc.Arbitrary<PointSpec>;
}

/** A meta object that breaks exactly one rule, the bad part placed at a random depth. */
const invalidMetaArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.tuple(forbiddenNameArb, fc.integer({ min: 0, max: 3 }), fc.boolean(), scalarArb).map(([name, depth, inList, leaf]) => {
    // At most 4 levels in all (the named object, 2 for a list in an object, 1 per wrapper), so the name is the only fault.
    let node: unknown = objectOf([[name, leaf]]);
    if (inList) node = { list: [1, node] };
    for (let i = 0; i < Math.min(depth, inList ? 1 : 3); i += 1) node = { ok: node };
    return node;
  }),
  fc.constantFrom<unknown>(
    { a: { b: { c: { d: { e: 1 } } } } },
    { a: { b: { c: [{}] } } },
    { a: [[1]] },
    { a: 'x\u0000' },
    { a: { b: Number.NaN } },
    { a: Number.POSITIVE_INFINITY },
    { a: 'x\udc00' },
    { a: 'x'.repeat(META_BYTES) },
    null,
    [1],
    'room=a',
    5,
  ),
  fc.integer({ min: 5, max: 20_000 }).map((levels) => ({ deep: deeplyNested(levels) })),
);

type Mutation = (point: PointSpec) => fc.Arbitrary<unknown>;

const withField = (point: PointSpec, name: string, value: unknown): Record<string, unknown> =>
  objectOf([...Object.entries(point).filter(([field]) => field !== name), [name, value]]);

const without = (point: PointSpec, name: string): Record<string, unknown> =>
  objectOf(Object.entries(point).filter(([field]) => field !== name));

/** Each turns a valid point into one that breaks one rule of the contract. */
function mutations(receivedAt: number, slackMs: number): Mutation[] {
  const future = receivedAt + DAY_MS + slackMs + 1;
  return [
    (p) => fc.constant(without(p, 'key')),
    (p) => fc.constant(without(p, 'value')),
    (p) =>
      fc
        .constantFrom<unknown>('', 'k'.repeat(201), 'a\u0000b', 'tab\there', 'del\u007f', 'c1\u0085', 'x\ud800', 7, null, true, ['k'], {
          $gt: '',
        })
        .map((key) => withField(p, 'key', key)),
    (p) =>
      fc
        .constantFrom<unknown>(
          Number.NaN,
          Number.POSITIVE_INFINITY,
          Number.NEGATIVE_INFINITY,
          Number.MAX_VALUE,
          -2e292,
          null,
          true,
          [1],
          { $inc: 1 },
          'NaN',
          '1e400',
          '',
        )
        .map((value) => withField(p, 'value', value)),
    (p) => fc.double({ noNaN: true, noDefaultInfinity: true }).map((value) => withField(p, 'value', String(value))),
    (p) =>
      fc
        .constantFrom<unknown>(
          -1,
          1.5,
          MAX_EPOCH_MS + 1,
          future,
          new Date(future).toISOString(),
          'yesterday',
          '',
          '2025-02-30',
          '2025-13-01',
          '2025-02-29T00:00:00.000Z',
          null,
          true,
          { $gt: 0 },
          [0],
        )
        .map((timestamp) => withField(p, 'timestamp', timestamp)),
    (p) => fc.integer({ min: future, max: MAX_EPOCH_MS }).map((timestamp) => withField(p, 'timestamp', timestamp)),
    (p) =>
      fc.constantFrom<unknown>('', 't'.repeat(65), 5, null, 'x\ud800', 'nul\u0000', 'line\nfeed').map((type) => withField(p, 'type', type)),
    (p) => invalidMetaArb.map((meta) => withField(p, 'meta', meta)),
    (p) =>
      fc
        .tuple(fc.oneof(forbiddenNameArb, fc.constantFrom('extra', 'Key', 'timestmp', 'values')), scalarArb)
        .map(([name, value]) => withField(p, name, value)),
    () => fc.constantFrom<unknown>(null, 5, 'k=1', true, [], [{ key: 'k', value: 1 }], -0, ''),
  ];
}

export interface LabelledItem {
  raw: unknown;
  valid: boolean;
}

/** A point known to be valid or known to be invalid (one rule broken), labelled by construction. */
export function labelledItemArb(receivedAt: number, options: ItemOptions = {}): fc.Arbitrary<LabelledItem> {
  const valid = validPointArb(receivedAt, options).map((point): LabelledItem => ({ raw: objectOf(Object.entries(point)), valid: true }));
  const invalid = fc
    .tuple(validPointArb(receivedAt, options), fc.constantFrom(...mutations(receivedAt, options.slackMs ?? 0)))
    .chain(([point, mutate]) => mutate(point))
    .map((raw): LabelledItem => ({ raw, valid: false }));
  return fc.oneof(valid, invalid);
}

/** Any JSON-like value with hostile parts: operator and prototype names, non-finite numbers, numbers as strings, long strings. */
export const hostileValueArb: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown; object: unknown; list: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary', maxLength: 10 }),
      fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 1e308, '1', '1e400', 'NaN', 'Infinity', '-0'),
      fc.double(),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.integer({ min: 1, max: 70_000 }).map((length) => 'x'.repeat(length)),
    ),
    tie('object'),
    tie('list'),
  ),
  object: fc
    .array(fc.tuple(fc.oneof(forbiddenNameArb, safeNameArb, fc.constantFrom('key', 'value', 'timestamp', 'type', 'meta')), tie('value')), {
      maxLength: 5,
    })
    .map((entries) => objectOf(entries)),
  list: fc.array(tie('value'), { maxLength: 4 }),
})).value;

/** Something shaped like a point whose fields may be anything hostile. */
export const hostilePointArb: fc.Arbitrary<unknown> = fc
  .record(
    {
      key: fc.oneof(validKeyArb, hostileValueArb),
      value: fc.oneof(fc.double(), hostileValueArb),
      timestamp: fc.oneof(fc.integer(), hostileValueArb),
      type: fc.oneof(fc.string(), hostileValueArb),
      meta: fc.oneof(validMetaArb, hostileValueArb),
      extra: fc.tuple(fc.oneof(forbiddenNameArb, safeNameArb), hostileValueArb),
    },
    { requiredKeys: [] },
  )
  .map(({ extra, ...fields }) => objectOf([...Object.entries(fields), ...(extra && extra[0] !== '' ? [extra] : [])]));

/** Keys one subscribe call may hold (the schema's limit, independent of MAX_KEYS_PER_SOCKET). */
export const MAX_KEYS_PER_CALL = 1000;

/** The contract's subscription: `{"keys": [...], "jobs"?: boolean}`, nothing else; keys follow the point-key rules. */
export function oracleAcceptsSubscription(payload: unknown): boolean {
  if (!isPlainObject(payload)) return false;
  if (Object.keys(payload).some((name) => name !== 'keys' && name !== 'jobs')) return false;
  const { keys, jobs } = payload;
  if (keys !== undefined && (!Array.isArray(keys) || keys.length > MAX_KEYS_PER_CALL || !keys.every(oracleKeyIsValid))) return false;
  return jobs === undefined || typeof jobs === 'boolean';
}

const keyListArb = (keyArb: fc.Arbitrary<string>): fc.Arbitrary<unknown> =>
  fc.oneof(
    fc.array(keyArb, { maxLength: 20 }),
    fc.array(fc.oneof(keyArb, hostileValueArb), { maxLength: 10 }),
    fc.constantFrom(MAX_KEYS_PER_CALL, MAX_KEYS_PER_CALL + 1).map((count) => Array.from({ length: count }, (_, i) => `k${i}`)),
    hostileValueArb,
  );

/** Payloads for `subscribe`/`unsubscribe`: valid ones over `keyArb`, broken ones, and anything hostile. */
export const subscriptionPayloadArb = (keyArb: fc.Arbitrary<string>): fc.Arbitrary<unknown> =>
  fc.oneof(
    fc.record({ keys: keyListArb(keyArb), jobs: fc.oneof(fc.boolean(), hostileValueArb) }, { requiredKeys: [] }),
    fc
      .tuple(
        fc.record({ keys: keyListArb(keyArb), jobs: fc.boolean() }, { requiredKeys: [] }),
        fc.constantFrom('__proto__', 'constructor', '$where', 'key', 'Keys', 'prototype'),
        hostileValueArb,
      )
      .map(([fields, name, value]) => objectOf([...Object.entries(fields), [name, value]])),
    hostileValueArb,
  );
