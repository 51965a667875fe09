import { Readable } from 'node:stream';
import { brotliCompressSync, createBrotliDecompress, createGunzip, gzipSync } from 'node:zlib';
import { AppError } from '../../src/domain/errors';
import { DecodedBody } from '../../src/http/decoded-body';

const LIMIT = 1024;
const bodyOf = (bytes: Buffer | string, decoder?: ReturnType<typeof createGunzip>): DecodedBody =>
  new DecodedBody('application/json', Readable.from([Buffer.from(bytes)]), decoder, LIMIT);

async function failure(call: Promise<unknown>): Promise<AppError> {
  try {
    await call;
  } catch (error) {
    if (error instanceof AppError) return error;
    throw error;
  }
  throw new Error('the call succeeded');
}

describe('DecodedBody', () => {
  it('when the same points arrive plain and gzipped, then both parse alike and have the same fingerprint', async () => {
    const text = '{"points": [{"key": "a", "value": 1}]}';
    const plain = bodyOf(text);
    const zipped = bodyOf(gzipSync(text), createGunzip());

    expect(await plain.json()).toEqual(await zipped.json());
    expect(plain.fingerprint()).toBe(zipped.fingerprint());
  });

  it('when a JSON body cannot be parsed, then it is a 400 MALFORMED_JSON that echoes neither the parser nor the body', async () => {
    const error = await failure(bodyOf('{"secret": "hunter2", oops}').json());

    expect(error).toMatchObject({ status: 400, code: 'MALFORMED_JSON' });
    expect(error.message).not.toMatch(/hunter2|Unexpected token|SyntaxError|position/);
  });

  it.each([
    ['gzip', () => createGunzip()],
    ['br', () => createBrotliDecompress()],
  ])('when a %s body is corrupt, then it is a 400 UNREADABLE_BODY without the decompressor message', async (_name, decoder) => {
    const error = await failure(bodyOf('{"points": []}', decoder()).json());

    expect(error).toMatchObject({ status: 400, code: 'UNREADABLE_BODY' });
    expect(error.message).not.toMatch(/header check|Decompression failed/);
  });

  it('when a small brotli body inflates past the limit, then it is a 413 BODY_TOO_LARGE', async () => {
    const error = await failure(bodyOf(brotliCompressSync(`[${' '.repeat(100 * LIMIT)}]`), createBrotliDecompress()).json());

    expect(error).toMatchObject({ status: 413, code: 'BODY_TOO_LARGE' });
  });

  it('when a JSON body starts with a byte order mark, then it is read as if it had none', async () => {
    expect(await bodyOf('\uFEFF[{"key": "a", "value": 1}]').json()).toEqual([{ key: 'a', value: 1 }]);
  });
});
