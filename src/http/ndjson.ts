import { AppError } from '../domain/errors';

import type { NdjsonLine } from '../domain/ingest-body';

export type { NdjsonLine } from '../domain/ingest-body';

// A valid point is far below this (key 200 chars, meta 4 KiB); longer lines are rejected without being buffered.
export const MAX_LINE_BYTES = 64 * 1024;
const NEWLINE = 0x0a;

/** Collects the bytes of one line, dropping them once the line is too long to be a valid point. */
class LineBuffer {
  private parts: Buffer[] = [];
  private bytes = 0;
  private tooLong = false;

  get isEmpty(): boolean {
    return this.bytes === 0 && !this.tooLong;
  }

  append(part: Buffer): void {
    if (this.tooLong || part.length === 0) return;
    if (this.bytes + part.length > MAX_LINE_BYTES) {
      this.tooLong = true;
      this.parts = [];
      this.bytes = 0;
      return;
    }
    // Copied: the stream may reuse its buffer.
    this.parts.push(Buffer.from(part));
    this.bytes += part.length;
  }

  /** The line's bytes, or undefined when it was too long; empties the buffer. */
  take(): Buffer | undefined {
    const line = this.tooLong ? undefined : Buffer.concat(this.parts, this.bytes);
    this.parts = [];
    this.bytes = 0;
    this.tooLong = false;
    return line;
  }
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function parseLine(lineNumber: number, bytes: Buffer | undefined): NdjsonLine | undefined {
  if (bytes === undefined) return { lineNumber, error: `line is longer than ${MAX_LINE_BYTES} bytes` };
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    return { lineNumber, error: 'line is not valid UTF-8' };
  }
  if (text.trim() === '') return undefined;
  try {
    return { lineNumber, value: JSON.parse(text) as unknown };
  } catch {
    return { lineNumber, error: 'line is not valid JSON' };
  }
}

/**
 * Splits a byte stream into JSON lines, never holding more than one line.
 * Each non-blank line yields its parsed value or why it is not valid
 * (invalid UTF-8, not JSON, too long); blank lines are skipped but counted.
 * Throws a 413 AppError once more than `maxBytes` have been read.
 */
/** The 413 of a streamed body past `maxBytes` (decompressed). */
export function bodyTooLarge(maxBytes: number): AppError {
  return new AppError(413, 'BODY_TOO_LARGE', `The request body is over ${maxBytes} bytes; split it into several requests.`);
}

export async function* readNdjson(stream: AsyncIterable<unknown>, maxBytes: number): AsyncGenerator<NdjsonLine> {
  const pending = new LineBuffer();
  let lineNumber = 0;
  let total = 0;
  for await (const chunk of stream) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += buffer.length;
    if (total > maxBytes) throw bodyTooLarge(maxBytes);
    let start = 0;
    for (let newline = buffer.indexOf(NEWLINE); newline !== -1; newline = buffer.indexOf(NEWLINE, start)) {
      pending.append(buffer.subarray(start, newline));
      lineNumber += 1;
      const line = parseLine(lineNumber, pending.take());
      if (line) yield line;
      start = newline + 1;
    }
    pending.append(buffer.subarray(start));
  }
  if (!pending.isEmpty) {
    const line = parseLine(lineNumber + 1, pending.take());
    if (line) yield line;
  }
}
