import type { NdjsonLine } from '../domain/ingest-body';
import { readLines } from './line-reader';

export type { NdjsonLine } from '../domain/ingest-body';
export { bodyTooLarge, MAX_LINE_BYTES } from './line-reader';

function parseJsonLine(lineNumber: number, text: string): NdjsonLine {
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
export async function* readNdjson(stream: AsyncIterable<unknown>, maxBytes: number): AsyncGenerator<NdjsonLine> {
  for await (const line of readLines(stream, maxBytes)) {
    if ('error' in line) yield line;
    else if (line.text.trim() !== '') yield parseJsonLine(line.lineNumber, line.text);
  }
}
