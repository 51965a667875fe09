import { AppError } from '../domain/errors';
import type { TextLine } from '../domain/ingest-body';

export type { TextLine } from '../domain/ingest-body';

// A valid point is far below this (key 200 chars, meta 4 KiB); longer lines are rejected without being buffered.
export const MAX_LINE_BYTES = 64 * 1024;
const NEWLINE = 0x0a;

/** Collects the bytes of one line, dropping them once the line is too long to be a valid point. */
class LineBuffer {
  private parts: Buffer[] = [];
  private bytes = 0;
  private tooLong = false;

  constructor(private readonly maxLineBytes: number) {}

  get isEmpty(): boolean {
    return this.bytes === 0 && !this.tooLong;
  }

  append(part: Buffer): void {
    if (this.tooLong || part.length === 0) return;
    if (this.bytes + part.length > this.maxLineBytes) {
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

// fatal: a line with invalid UTF-8 is refused, not stored with U+FFFD where its bytes were.
const decoder = new TextDecoder('utf-8', { fatal: true });

function decodeLine(lineNumber: number, bytes: Buffer | undefined, maxLineBytes: number): TextLine {
  if (bytes === undefined) return { lineNumber, error: `line is longer than ${maxLineBytes} bytes` };
  try {
    return { lineNumber, text: decoder.decode(bytes) };
  } catch {
    return { lineNumber, error: 'line is not valid UTF-8' };
  }
}

/** The 413 of a streamed body past `maxBytes` (decompressed). */
export function bodyTooLarge(maxBytes: number): AppError {
  return new AppError(413, 'BODY_TOO_LARGE', `The request body is over ${maxBytes} bytes; split it into several requests.`);
}

/**
 * Splits a byte stream at "\n", never holding more than one line. Each line yields its text or why it could not be
 * read (invalid UTF-8, longer than `maxLineBytes`); blank lines are yielded too, the format decides. A "\r" before
 * the "\n" stays in the text. Throws a 413 AppError once more than `maxBytes` have been read.
 */
export async function* readLines(
  stream: AsyncIterable<unknown>,
  maxBytes: number,
  maxLineBytes = MAX_LINE_BYTES,
): AsyncGenerator<TextLine> {
  const pending = new LineBuffer(maxLineBytes);
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
      yield decodeLine(lineNumber, pending.take(), maxLineBytes);
      start = newline + 1;
    }
    pending.append(buffer.subarray(start));
  }
  if (!pending.isEmpty) yield decodeLine(lineNumber + 1, pending.take(), maxLineBytes);
}
