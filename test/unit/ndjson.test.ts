import { Readable } from 'node:stream';
import { AppError } from '../../src/domain/errors';
import { MAX_LINE_BYTES, readNdjson, type NdjsonLine } from '../../src/http/ndjson';

const NO_LIMIT = 100 * 1024 * 1024;

async function readAll(chunks: (Buffer | string)[], maxBytes = NO_LIMIT): Promise<NdjsonLine[]> {
  const lines: NdjsonLine[] = [];
  for await (const line of readNdjson(Readable.from(chunks), maxBytes)) lines.push(line);
  return lines;
}

/** Every line the reader yielded before it threw, and what it threw. */
async function readUntilError(chunks: Buffer[], maxBytes: number): Promise<{ lines: NdjsonLine[]; error: unknown }> {
  const lines: NdjsonLine[] = [];
  try {
    for await (const line of readNdjson(Readable.from(chunks), maxBytes)) lines.push(line);
  } catch (error) {
    return { lines, error };
  }
  return { lines, error: undefined };
}

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');

/** A JSON line of exactly `size` bytes (without its newline). */
function jsonLineOfBytes(size: number): string {
  const empty = JSON.stringify({ key: 'k', value: 1, pad: '' });
  const line = JSON.stringify({ key: 'k', value: 1, pad: 'x'.repeat(size - empty.length) });
  expect(Buffer.byteLength(line)).toBe(size);
  return line;
}

describe('readNdjson', () => {
  it('when a body holds one point per line, then each line is parsed with its 1-based line number', async () => {
    const lines = await readAll([bytes('{"key":"a","value":1}\n{"key":"b","value":2}\n')]);
    expect(lines).toEqual([
      { lineNumber: 1, value: { key: 'a', value: 1 } },
      { lineNumber: 2, value: { key: 'b', value: 2 } },
    ]);
  });

  it('when the last line has no trailing newline, then it is still read', async () => {
    expect(await readAll([bytes('{"a":1}\n{"b":2}')])).toEqual([
      { lineNumber: 1, value: { a: 1 } },
      { lineNumber: 2, value: { b: 2 } },
    ]);
  });

  it('when the body ends with a newline, then no extra empty line is reported', async () => {
    expect(await readAll([bytes('{"a":1}\n')])).toEqual([{ lineNumber: 1, value: { a: 1 } }]);
  });

  it('when the body is empty, then there are no lines', async () => {
    expect(await readAll([])).toEqual([]);
    expect(await readAll([Buffer.alloc(0)])).toEqual([]);
  });

  describe('when lines are split across chunks', () => {
    // Multi-byte characters (2, 3 and 4 UTF-8 bytes), a blank line and no trailing newline.
    const sample = bytes('{"key":"température","value":1}\n{"key":"€/😀","value":-2.5}\n\n{"key":"c","value":3}');
    const expected: NdjsonLine[] = [
      { lineNumber: 1, value: { key: 'température', value: 1 } },
      { lineNumber: 2, value: { key: '€/😀', value: -2.5 } },
      { lineNumber: 4, value: { key: 'c', value: 3 } },
    ];

    it('then cutting the body in two at any byte position gives the same lines', async () => {
      for (let cut = 0; cut <= sample.length; cut += 1) {
        const lines = await readAll([sample.subarray(0, cut), sample.subarray(cut)]);
        expect({ cut, lines }).toEqual({ cut, lines: expected });
      }
    });

    it('then sending it one byte per chunk gives the same lines, multi-byte characters included', async () => {
      const oneBytePerChunk = [...sample].map((byte) => Buffer.from([byte]));
      expect(await readAll(oneBytePerChunk)).toEqual(expected);
    });

    it('then a 4-byte character cut in every place inside it is decoded whole', async () => {
      const emoji = bytes('😀');
      for (let cut = 1; cut < emoji.length; cut += 1) {
        const lines = await readAll([bytes('{"k":"'), emoji.subarray(0, cut), Buffer.concat([emoji.subarray(cut), bytes('"}\n')])]);
        expect(lines).toEqual([{ lineNumber: 1, value: { k: '😀' } }]);
      }
    });
  });

  it('when lines end with \\r\\n, then they are parsed (the \\r is JSON whitespace) and numbered as usual', async () => {
    expect(await readAll([bytes('{"a":1}\r\n{"b":2}\r\n\r\n{"c":3}\r\n')])).toEqual([
      { lineNumber: 1, value: { a: 1 } },
      { lineNumber: 2, value: { b: 2 } },
      { lineNumber: 4, value: { c: 3 } },
    ]);
  });

  it('when there are blank and whitespace-only lines, then they are skipped but still counted in line numbers', async () => {
    expect(await readAll([bytes('\n\n{"a":1}\n   \t\n{"b":2}\n')])).toEqual([
      { lineNumber: 3, value: { a: 1 } },
      { lineNumber: 5, value: { b: 2 } },
    ]);
  });

  it('when a line is not JSON, then that line is reported and the next one is fine', async () => {
    expect(await readAll([bytes('{"a":1}\n{not json\n{"b":2}\n')])).toEqual([
      { lineNumber: 1, value: { a: 1 } },
      { lineNumber: 2, error: 'line is not valid JSON' },
      { lineNumber: 3, value: { b: 2 } },
    ]);
  });

  it.each([
    ['a stray 0xff byte', [0xff]],
    ['a lone continuation byte', [0x80]],
    ['a truncated 2-byte character', [0xc3]],
    ['an overlong encoding of "/"', [0xc0, 0xaf]],
    ['a UTF-16 surrogate encoded in UTF-8', [0xed, 0xa0, 0x80]],
  ])('when a line holds %s, then it is rejected as not UTF-8 and the next line is fine', async (_case, invalid) => {
    const body = Buffer.concat([bytes('{"k":"'), Buffer.from(invalid), bytes('"}\n{"k":"é"}\n')]);
    expect(await readAll([body])).toEqual([
      { lineNumber: 1, error: 'line is not valid UTF-8' },
      { lineNumber: 2, value: { k: 'é' } },
    ]);
  });

  it('when a line is exactly MAX_LINE_BYTES long, then it is read', async () => {
    const line = jsonLineOfBytes(MAX_LINE_BYTES);
    const lines = await readAll([bytes(`${line}\n`)]);
    expect(lines).toEqual([{ lineNumber: 1, value: JSON.parse(line) }]);
  });

  it('when a line is one byte over MAX_LINE_BYTES, then it is rejected and the following line is fine', async () => {
    const lines = await readAll([bytes(`${jsonLineOfBytes(MAX_LINE_BYTES + 1)}\n{"after":true}\n`)]);
    expect(lines).toEqual([
      { lineNumber: 1, error: `line is longer than ${MAX_LINE_BYTES} bytes` },
      { lineNumber: 2, value: { after: true } },
    ]);
  });

  it('when an over-long line arrives in many small chunks, then it is rejected and the line after it is fine', async () => {
    const body = bytes(`{"a":1}\n${'x'.repeat(MAX_LINE_BYTES * 3)}\n{"b":2}`);
    const chunks: Buffer[] = [];
    for (let start = 0; start < body.length; start += 1000) chunks.push(body.subarray(start, start + 1000));
    expect(await readAll(chunks)).toEqual([
      { lineNumber: 1, value: { a: 1 } },
      { lineNumber: 2, error: `line is longer than ${MAX_LINE_BYTES} bytes` },
      { lineNumber: 3, value: { b: 2 } },
    ]);
  });

  it('when the last line is over-long and has no newline, then it is still reported as too long', async () => {
    expect(await readAll([bytes(`{"a":1}\n${'x'.repeat(MAX_LINE_BYTES + 1)}`)])).toEqual([
      { lineNumber: 1, value: { a: 1 } },
      { lineNumber: 2, error: `line is longer than ${MAX_LINE_BYTES} bytes` },
    ]);
  });

  it('when a line is valid JSON but not an object, then its value is passed on for point validation to reject', async () => {
    expect(await readAll([bytes('5\n"text"\nnull\n[1]\n')])).toEqual([
      { lineNumber: 1, value: 5 },
      { lineNumber: 2, value: 'text' },
      { lineNumber: 3, value: null },
      { lineNumber: 4, value: [1] },
    ]);
  });

  it('when a line holds the number 1e400, then it is parsed as Infinity (the point check rejects it later)', async () => {
    expect(await readAll([bytes('{"key":"k","value":1e400}\n')])).toEqual([
      { lineNumber: 1, value: { key: 'k', value: Number.POSITIVE_INFINITY } },
    ]);
  });

  it('when the stream yields strings instead of buffers, then lines are read the same', async () => {
    expect(await readAll(['{"a":', '1}\n{"b":2}'])).toEqual([
      { lineNumber: 1, value: { a: 1 } },
      { lineNumber: 2, value: { b: 2 } },
    ]);
  });

  it('when the body is exactly the byte limit, then every line is read', async () => {
    const body = bytes('{"a":1}\n{"b":2}\n');
    expect(await readAll([body], body.length)).toHaveLength(2);
  });

  it('when the body goes one byte over the limit, then reading stops with a 413 AppError that says to split the body', async () => {
    const body = bytes('{"a":1}\n{"b":2}\n');
    const { error } = await readUntilError([body.subarray(0, 8), body.subarray(8)], body.length - 1);
    expect(error).toBeInstanceOf(AppError);
    expect(error).toMatchObject({ status: 413, code: 'BODY_TOO_LARGE' });
    expect((error as AppError).message).toBe(`The request body is over ${body.length - 1} bytes; split it into several requests.`);
  });

  it('when the limit is crossed in a later chunk, then the lines of earlier chunks were read and nothing after', async () => {
    const { lines, error } = await readUntilError([bytes('{"a":1}\n'), bytes('{"b":2}\n'), bytes('{"c":3}\n')], 20);
    expect(lines).toEqual([
      { lineNumber: 1, value: { a: 1 } },
      { lineNumber: 2, value: { b: 2 } },
    ]);
    expect(error).toMatchObject({ status: 413 });
  });
});
