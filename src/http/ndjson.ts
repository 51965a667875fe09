import type { Readable } from 'node:stream';
import { AppError } from '../domain/errors';

export type NdjsonLine = { lineNumber: number; value: unknown } | { lineNumber: number; error: string };

// A valid point is far below this (key 200 chars, meta 4 KiB); longer lines are rejected without being buffered.
const MAX_LINE_BYTES = 64 * 1024;
const NEWLINE = 0x0a;

/**
 * Splits a byte stream into JSON lines, never holding more than one line.
 * Each non-blank line yields its parsed value or why it is not valid
 * (invalid UTF-8, not JSON, too long); blank lines are skipped but counted.
 * Throws a 413 AppError once more than `maxBytes` have been read.
 */
export async function* readNdjson(stream: Readable, maxBytes: number): AsyncGenerator<NdjsonLine> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let parts: Buffer[] = [];
  let partBytes = 0;
  let tooLong = false;
  let lineNumber = 0;
  let total = 0;

  const finishLine = (): NdjsonLine | undefined => {
    lineNumber += 1;
    const bytes = Buffer.concat(parts, partBytes);
    const wasTooLong = tooLong;
    parts = [];
    partBytes = 0;
    tooLong = false;
    if (wasTooLong) return { lineNumber, error: `line is longer than ${MAX_LINE_BYTES} bytes` };
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
  };

  for await (const chunk of stream) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += buffer.length;
    if (total > maxBytes) throw new AppError(413, 'BODY_TOO_LARGE', `The request body is over ${maxBytes} bytes; split it into several requests.`);
    let start = 0;
    let newline = buffer.indexOf(NEWLINE, start);
    while (newline !== -1) {
      appendPart(buffer.subarray(start, newline));
      const line = finishLine();
      if (line) yield line;
      start = newline + 1;
      newline = buffer.indexOf(NEWLINE, start);
    }
    appendPart(buffer.subarray(start));
  }
  if (partBytes > 0 || tooLong) {
    const line = finishLine();
    if (line) yield line;
  }

  function appendPart(part: Buffer): void {
    if (tooLong || part.length === 0) return;
    if (partBytes + part.length > MAX_LINE_BYTES) {
      tooLong = true;
      parts = [];
      partBytes = 0;
      return;
    }
    // Copy: the stream may reuse its buffer.
    parts.push(Buffer.from(part));
    partBytes += part.length;
  }
}
