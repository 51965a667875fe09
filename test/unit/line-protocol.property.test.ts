import fc from 'fast-check';
import { parseLine, type LineProtocolMeta, type LineProtocolOptions } from '../../src/domain/line-protocol';
import { validatePoint } from '../../src/domain/point-schema';
import { propertySeed } from '../support/hostile-input';

const RECEIVED_AT = Date.parse('2026-01-01T00:00:00.000Z');
const seed = propertySeed('line-protocol.property');
const params = { seed, numRuns: 300 };

/** Line protocol escaping as the reference states it: a backslash before each character the element escapes. */
function escapeSpec(text: string, specials: string): string {
  return Array.from(text, (char) => (specials.includes(char) ? `\\${char}` : char)).join('');
}
const lpMeasurement = (name: string): string => escapeSpec(name, ', ');
const lpName = (name: string): string => escapeSpec(name, ',= ');
const lpString = (text: string): string => `"${escapeSpec(text, '"\\')}"`;

/** The documented key: backslash always escaped, names as line protocol escapes them, "/" escaped in the field. */
function expectedKey(measurement: string, tags: { key: string; value: string }[], field: string): string {
  const series = tags.map((tag) => `,${escapeSpec(tag.key, '\\,= ')}=${escapeSpec(tag.value, '\\,= ')}`).join('');
  return `${escapeSpec(measurement, '\\, ')}${series}/${escapeSpec(field, '\\,= /')}`;
}

/** Reads a key back into its names: proof that two different series cannot share a key. */
function decodeKey(key: string): LineProtocolMeta {
  const unescapedAt = (char: string): number[] => {
    const positions: number[] = [];
    for (let at = 0; at < key.length; at += 1) {
      if (key[at] === '\\') at += 1;
      else if (key[at] === char) positions.push(at);
    }
    return positions;
  };
  const unescape = (text: string): string => text.replace(/\\(.)/gsu, '$1');
  const slash = unescapedAt('/').at(-1) ?? -1;
  const commas = unescapedAt(',').filter((at) => at < slash);
  const bounds = [...commas, slash];
  const parts = bounds.map((end, index) => key.slice(index === 0 ? 0 : (bounds[index - 1] ?? 0) + 1, end));
  const [measurement = '', ...tagParts] = parts;
  const tags = tagParts.map((part) => {
    let equals = 0;
    while (part[equals] !== '=') equals += part[equals] === '\\' ? 2 : 1;
    return { key: unescape(part.slice(0, equals)), value: unescape(part.slice(equals + 1)) };
  });
  return { measurement: unescape(measurement), tags, field: unescape(key.slice(slash + 1)) };
}

const compareBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

// The characters line protocol treats specially, and a few that sort in unusual orders in UTF-16.
const nameChar = fc.oneof(
  fc.constantFrom(',', '=', ' ', '\\', '"', "'", '/', '#', '.', '$', '_'),
  fc.constantFrom(...Array.from('abcxyzABC019')),
  fc.constantFrom('é', '～', '🍭', '\u{10000}'),
);
// A name cannot end in a backslash: before the delimiter that follows it would read as an escape.
const nameArb = fc.string({ unit: nameChar, minLength: 1, maxLength: 8 }).filter((name) => !name.endsWith('\\'));
const measurementArb = nameArb.filter((name) => !name.startsWith('#'));

type FieldCase = { text: string; value: number | undefined };
const fieldValueArb: fc.Arbitrary<FieldCase> = fc.oneof(
  fc.double({ noNaN: true, min: -1e292, max: 1e292 }).map((value) => ({ text: String(value), value: value === 0 ? 0 : value })),
  fc.bigInt({ min: -(2n ** 53n), max: 2n ** 53n }).map((value) => ({ text: `${value}i`, value: Number(value) })),
  fc.bigInt({ min: 0n, max: 2n ** 53n }).map((value) => ({ text: `${value}u`, value: Number(value) })),
  fc.constantFrom('t', 'T', 'true', 'True', 'TRUE').map((text) => ({ text, value: 1 })),
  fc.constantFrom('f', 'F', 'false', 'False', 'FALSE').map((text) => ({ text, value: 0 })),
  fc
    .string({ unit: fc.constantFrom('a', ' ', ',', '=', '"', '\\', '\t', '🍭'), maxLength: 10 })
    .map((text) => ({ text: lpString(text), value: undefined })),
);

const precisionArb = fc.constantFrom(
  { precision: 'ns' as const, perMs: 1_000_000n },
  { precision: 'us' as const, perMs: 1_000n },
  { precision: 'ms' as const, perMs: 1n },
);

const lineArb = fc.record({
  measurement: measurementArb,
  tags: fc.uniqueArray(fc.record({ key: nameArb, value: nameArb }), { selector: (tag) => tag.key, maxLength: 4 }),
  fields: fc.uniqueArray(fc.record({ name: nameArb, value: fieldValueArb }), {
    selector: (field) => field.name,
    minLength: 1,
    maxLength: 4,
  }),
  time: fc.option(fc.record({ ns: fc.bigInt({ min: 0n, max: BigInt(RECEIVED_AT) * 1_000_000n }), unit: precisionArb })),
  gap: fc.constantFrom(' ', '  '),
  end: fc.constantFrom('', ' ', '\r', '  \r'),
});

describe('parseLine, property-based', () => {
  it('when a line is written by the reference escaping rules, then it parses back to the same key, tags, values and time', () => {
    fc.assert(
      fc.property(lineArb, ({ measurement, tags, fields, time, gap, end }) => {
        const tagText = tags.map((tag) => `,${lpName(tag.key)}=${lpName(tag.value)}`).join('');
        const fieldText = fields.map((field) => `${lpName(field.name)}=${field.value.text}`).join(',');
        const units = time ? time.ns / (1_000_000n / time.unit.perMs) : undefined;
        const line = `${lpMeasurement(measurement)}${tagText}${gap}${fieldText}${units === undefined ? '' : `${gap}${units}`}${end}`;
        const options: LineProtocolOptions = { precision: time?.unit.precision ?? 'ns', receivedAt: RECEIVED_AT };
        const result = parseLine(line, options);

        const sortedTags = [...tags].sort((a, b) => compareBytes(a.key, b.key));
        const numeric = fields.filter((field) => field.value.value !== undefined);
        const keys = numeric.map((field) => expectedKey(measurement, sortedTags, field.name));
        if (numeric.length === 0) {
          expect(result).toEqual({ error: expect.stringContaining('only string fields') });
        } else if (keys.some((key) => key.length > 200)) {
          expect(result).toEqual({ error: expect.stringMatching(/longer than a key may be|may have 200/) });
        } else {
          const timestamp = units === undefined || time === null ? RECEIVED_AT : Number(units / time.unit.perMs);
          expect(result).toEqual({
            points: numeric.map((field, index) => ({
              key: keys[index],
              value: field.value.value,
              timestamp,
              meta: { measurement, tags: sortedTags, field: field.name },
            })),
            skippedStringFields: fields.length - numeric.length,
            timestamped: time !== null,
          });
        }
      }),
      params,
    );
  });

  it('when any text is parsed, then it never throws, and every point passes validation and its key decodes to its meta', () => {
    const anyLine = fc.oneof(
      fc.string({ unit: fc.constantFrom(...Array.from('ab,= \\"/#.$-+eiut019\r\t\u0000🍭')), maxLength: 60 }),
      fc.string({ unit: 'binary', maxLength: 60 }),
      lineArb.map(
        ({ measurement, fields }) => `${lpMeasurement(measurement)} ${fields.map((f) => `${lpName(f.name)}=${f.value.text}`).join(',')}`,
      ),
    );
    fc.assert(
      fc.property(anyLine, fc.constantFrom<'ns' | 'us' | 'ms' | 's'>('ns', 'us', 'ms', 's'), (line, precision) => {
        const result = parseLine(line, { precision, receivedAt: RECEIVED_AT });
        if (!('points' in result)) return;
        result.points.forEach((point, index) => {
          expect(validatePoint(point, index, RECEIVED_AT)).toHaveProperty('point');
          expect(decodeKey(point.key)).toEqual(point.meta);
        });
      }),
      { ...params, numRuns: 2000 },
    );
  });
});
