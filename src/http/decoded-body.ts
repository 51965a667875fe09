import { isUtf8 } from 'node:buffer';
import { createHash, type Hash } from 'node:crypto';
import { pipeline, Transform, type Readable } from 'node:stream';
import { AppError } from '../domain/errors';
import type { IngestBody, IngestKind } from '../services/ingest-service';
import type { TextLine } from '../domain/ingest-body';
import { bodyTooLarge, readLines } from './line-reader';
import { readNdjson, type NdjsonLine } from './ndjson';

// pipeline's own callback: the error also reaches the reader of the last stream, which handles it.
const ignoreError = (): void => undefined;

const UTF8_BOM = 0xfeff;

const malformedJson = (): AppError =>
  new AppError(400, 'MALFORMED_JSON', 'The request body is not valid JSON (it must be an object or an array).');

/**
 * A request body as the edge decoded it (decompressed, its charset checked), for the ingest service to read once:
 * parsed whole (JSON, within the size limit) or line by line (NDJSON, never held whole). Every byte read goes into
 * its fingerprint: the media type and the decoded bytes, what the client meant whatever the compression.
 */
export class DecodedBody implements IngestBody {
  private readonly hash: Hash;
  private readonly bytes: Readable;
  /** The decompressor's own failure (a corrupt gzip, deflate or br stream), told apart from the connection's. */
  private decodeFailure: unknown;

  /** `decoder`: the decompressor of the body's Content-Encoding, none when it was sent uncompressed. */
  constructor(
    readonly kind: IngestKind,
    source: Readable,
    decoder: Transform | undefined,
    private readonly maxBytes: number,
  ) {
    this.hash = createHash('sha256').update(`${kind}\n`);
    const hash = this.hash;
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    decoder?.once('error', (error) => {
      this.decodeFailure = error;
    });
    // pipeline, not pipe: a client that aborts must end the decompressed stream too, or the read would wait forever.
    this.bytes = decoder ? pipeline(source, decoder, tap, ignoreError) : pipeline(source, tap, ignoreError);
  }

  /**
   * The whole body as JSON: an object or an array, in UTF-8 (RFC 8259). Bytes that are not UTF-8 are refused rather
   * than decoded with U+FFFD, which could merge two distinct keys into one. An empty body is an empty object.
   */
  async json(): Promise<unknown> {
    const buffer = await this.readAll();
    if (!isUtf8(buffer)) {
      throw new AppError(400, 'MALFORMED_JSON', 'The body is not valid UTF-8; JSON must be sent as UTF-8 text (RFC 8259).');
    }
    let text = buffer.toString('utf8');
    if (text.charCodeAt(0) === UTF8_BOM) text = text.slice(1);
    const first = /\S/.exec(text)?.[0];
    if (first === undefined) return {};
    if (first !== '{' && first !== '[') throw malformedJson();
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw malformedJson();
    }
  }

  lines(): AsyncIterable<NdjsonLine> {
    return readNdjson(this.chunks(), this.maxBytes);
  }

  textLines(): AsyncIterable<TextLine> {
    return readLines(this.chunks(), this.maxBytes);
  }

  async drain(): Promise<void> {
    await this.readAll();
  }

  fingerprint(): string {
    return this.hash.copy().digest('hex');
  }

  /** The rest of the body, refused with 413 as soon as it passes the size limit (a gzip bomb is cut off there). */
  private async readAll(): Promise<Buffer> {
    const parts: Buffer[] = [];
    let size = 0;
    for await (const part of this.chunks()) {
      size += part.length;
      if (size > this.maxBytes) throw this.tooLarge();
      parts.push(part);
    }
    return Buffer.concat(parts, size);
  }

  /** The decoded bytes as they arrive; a stream the decompressor cannot read is the client's 400, not a 5xx. */
  private async *chunks(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of this.bytes) yield chunk as Buffer;
    } catch (error) {
      if (error !== undefined && error === this.decodeFailure) {
        throw new AppError(400, 'UNREADABLE_BODY', 'The request body could not be read; check its Content-Encoding and Content-Length.');
      }
      throw error;
    }
  }

  private tooLarge(): AppError {
    if (this.kind !== 'application/json') return bodyTooLarge(this.maxBytes);
    return new AppError(413, 'BODY_TOO_LARGE', 'The request body is over the size limit; send fewer points per request.');
  }
}
