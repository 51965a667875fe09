import { Readable } from 'node:stream';
import fc from 'fast-check';
import { AppError } from '../../src/domain/errors';
import { MAX_LINE_BYTES, readNdjson, type NdjsonLine } from '../../src/http/ndjson';
import { labelledItemArb, propertySeed, toJsonText } from '../support/hostile-input';

const RECEIVED_AT = Date.parse('2026-01-01T00:00:00.000Z');
const NO_LIMIT = 100 * 1024 * 1024;
const seed = propertySeed('ndjson.property');
const params = { seed, numRuns: 200 };

async function readAll(chunks: Buffer[], maxBytes = NO_LIMIT): Promise<NdjsonLine[]> {
  const lines: NdjsonLine[] = [];
  for await (const line of readNdjson(Readable.from(chunks), maxBytes)) lines.push(line);
  return lines;
}

/** Lines with each value as JSON text: values nested thousands of levels deep would overflow a deep comparison. */
const comparable = (lines: NdjsonLine[]): unknown[] =>
  lines.map((line) => ('error' in line ? line : { lineNumber: line.lineNumber, json: toJsonText(line.value) }));

/** `body` cut at the given byte positions (duplicates give empty chunks, which a stream may also deliver). */
function cutAt(body: Buffer, positions: number[]): Buffer[] {
  const sorted = positions.map((position) => position % (body.length + 1)).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const position of sorted) {
    chunks.push(body.subarray(start, position));
    start = position;
  }
  chunks.push(body.subarray(start));
  return chunks;
}

/**
 * What the contract says the lines of `body` are, worked out on the whole
 * body at once: split at "\n", too-long lines and lines that are not UTF-8
 * (bytes that do not survive a decode/encode round trip) rejected, blank
 * lines skipped but counted, a leading byte-order mark ignored.
 */
function expectedLines(body: Buffer): NdjsonLine[] {
  const parts: Buffer[] = [];
  let start = 0;
  for (let newline = body.indexOf(0x0a); newline !== -1; newline = body.indexOf(0x0a, start)) {
    parts.push(body.subarray(start, newline));
    start = newline + 1;
  }
  if (start < body.length) parts.push(body.subarray(start));
  return parts.flatMap((bytes, index): NdjsonLine[] => {
    const lineNumber = index + 1;
    if (bytes.length > MAX_LINE_BYTES) return [{ lineNumber, error: `line is longer than ${MAX_LINE_BYTES} bytes` }];
    const text = bytes.toString('utf8');
    if (!Buffer.from(text, 'utf8').equals(bytes)) return [{ lineNumber, error: 'line is not valid UTF-8' }];
    const withoutBom = text.startsWith('\ufeff') ? text.slice(1) : text;
    if (withoutBom.trim() === '') return [];
    try {
      return [{ lineNumber, value: JSON.parse(withoutBom) as unknown }];
    } catch {
      return [{ lineNumber, error: 'line is not valid JSON' }];
    }
  });
}

const INVALID_UTF8 = [[0xff], [0x80], [0xc3], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf0, 0x9f, 0x98], [0xfe, 0xfe]];

const lineArb: fc.Arbitrary<Buffer> = fc.oneof(
  labelledItemArb(RECEIVED_AT).map(({ raw }) => Buffer.from(toJsonText(raw))),
  fc.json().map((text) => Buffer.from(text)),
  fc.string({ unit: 'grapheme', maxLength: 30 }).map((text) => Buffer.from(JSON.stringify({ key: text, value: 1 }))),
  fc.string({ maxLength: 30 }).map((text) => Buffer.from(text)),
  fc
    .constantFrom(...INVALID_UTF8)
    .map((bytes) => Buffer.concat([Buffer.from('{"key":"'), Buffer.from(bytes), Buffer.from('","value":1}')])),
  fc
    .constantFrom('', ' ', '\t', '\r', '\u00a0', '\ufeff{"key":"bom","value":1}', '{"key":"k","value":1e400}')
    .map((text) => Buffer.from(text)),
  fc.constantFrom(MAX_LINE_BYTES - 20, MAX_LINE_BYTES + 1, MAX_LINE_BYTES * 2).map((size) => Buffer.from(`"${'x'.repeat(size)}"`)),
  fc.uint8Array({ maxLength: 20 }).map((bytes) => Buffer.from(bytes)),
);

const bodyArb: fc.Arbitrary<Buffer> = fc
  .tuple(fc.array(fc.tuple(lineArb, fc.constantFrom('\n', '\r\n')), { maxLength: 12 }), fc.boolean())
  .map(([lines, lastTerminated]) =>
    Buffer.concat(
      lines.map(([line, end], index) => (index === lines.length - 1 && !lastTerminated ? line : Buffer.concat([line, Buffer.from(end)]))),
    ),
  );

describe('readNdjson, property-based', () => {
  it('when a body of mixed good, bad, blank, non-UTF-8 and over-long lines is cut into chunks at any bytes, then the lines are those of the whole body', async () => {
    await fc.assert(
      fc.asyncProperty(bodyArb, fc.array(fc.nat(), { maxLength: 20 }), async (body, positions) => {
        const expected = expectedLines(body);
        expect(comparable(await readAll(cutAt(body, positions)))).toEqual(comparable(expected));
      }),
      params,
    );
  });

  it('when a body is arbitrary bytes in arbitrary chunks, then reading never throws and line numbers rise within the body', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 10 }), async (bytes, positions) => {
        const body = Buffer.from(bytes);
        const lines = await readAll(cutAt(body, positions));
        const numbers = lines.map((line) => line.lineNumber);
        expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
        expect(new Set(numbers).size).toBe(numbers.length);
        for (const number of numbers) expect(number).toBeLessThanOrEqual(body.filter((byte) => byte === 0x0a).length + 1);
        expect(comparable(lines)).toEqual(comparable(expectedLines(body)));
      }),
      params,
    );
  });

  it('when a limit is set, then a body of at most that many bytes is read whole and a longer one is a 413, however it is chunked', async () => {
    await fc.assert(
      fc.asyncProperty(bodyArb, fc.integer({ min: -3, max: 3 }), fc.array(fc.nat(), { maxLength: 8 }), async (body, offset, positions) => {
        const limit = Math.max(0, body.length + offset);
        let thrown: unknown;
        const lines: NdjsonLine[] = [];
        try {
          for await (const line of readNdjson(Readable.from(cutAt(body, positions)), limit)) lines.push(line);
        } catch (error) {
          thrown = error;
        }
        if (body.length <= limit) {
          expect(thrown).toBeUndefined();
          expect(comparable(lines)).toEqual(comparable(expectedLines(body)));
        } else {
          expect(thrown).toBeInstanceOf(AppError);
          expect(thrown).toMatchObject({ status: 413, code: 'BODY_TOO_LARGE' });
        }
      }),
      params,
    );
  });
});
