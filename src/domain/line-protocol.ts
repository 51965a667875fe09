import { CONTROL_CHARS, LONE_SURROGATE, MAX_ABS_VALUE, MAX_EPOCH_MS, MAX_FUTURE_MS, MAX_KEY_LENGTH } from './point-schema';

/**
 * InfluxDB line protocol, one line at a time, mapped to the service's points: each numeric field of a line becomes
 * one point. docs/line-protocol.md gives the rules and the reason for each; the words used here:
 * - a line: `measurement[,tagKey=tagValue...] field=value[,field=value...] [timestamp]`, already decoded from
 *   UTF-8 by the reader (http/line-reader.ts refuses invalid bytes; a string cannot carry them);
 * - the key of a point: `measurement[,tagKey=tagValue...]/field`, tags sorted bytewise, each name re-escaped
 *   canonically (see escapeWith), so distinct series never share a key.
 */

export type Precision = 'ns' | 'us' | 'ms' | 's';

export interface LineProtocolOptions {
  /** The unit of the line's timestamp (InfluxDB's `precision` parameter; its default is ns). */
  precision: Precision;
  /** Epoch ms: the timestamp of a line without one, and the reference for "too far in the future". */
  receivedAt: number;
}

/** What a point keeps of its line. Tags are a list, not an object: a tag key may hold "." or start with "$". */
export interface LineProtocolMeta {
  measurement: string;
  tags: { key: string; value: string }[];
  field: string;
}

/** A point as validatePoint takes it: it passes that validation by construction. */
export interface LineProtocolPoint {
  key: string;
  value: number;
  timestamp: number;
  meta: LineProtocolMeta;
}

/** `timestamped`: the line carried its own timestamp (without one it took the time of receipt). */
export type ParsedLine =
  { points: LineProtocolPoint[]; skippedStringFields: number; timestamped: boolean } | { skip: true } | { error: string };

/** A line with more fields than this is refused: far above real use, and it bounds one line's points and work. */
export const MAX_FIELDS_PER_LINE = 1000;
// 2^53: every integer up to it is exact as a number; 9007199254740993i would silently become ...992.
const MAX_EXACT_INTEGER = 2n ** 53n;
// More digits than any accepted value needs: BigInt parsing of a 60,000-digit token would cost time for nothing.
const MAX_INTEGER_DIGITS = 20;
const MAX_TIMESTAMP_DIGITS = 25;
const UNITS_PER_MS: Record<Exclude<Precision, 's'>, bigint> = { ns: 1_000_000n, us: 1_000n, ms: 1n };

const TRUE_WORDS = new Set(['t', 'T', 'true', 'True', 'TRUE']);
const FALSE_WORDS = new Set(['f', 'F', 'false', 'False', 'FALSE']);
// Anchored, no nested quantifiers: linear on any token. The grammar of influxdata/line-protocol's EBNF.
const FLOAT = /^-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const SIGNED_DIGITS = /^-?\d+$/;
const DIGITS = /^\d+$/;

const SPACE = ' ';
const MEASUREMENT_ESCAPES = ', ';
const NAME_ESCAPES = ',= ';

class LineError extends Error {}

/** A name or token for a message: quoted, control characters and lone surrogates visible, and short. */
function quote(text: string): string {
  const quoted = JSON.stringify(text.length > 50 ? `${text.slice(0, 50)}…` : text);
  // JSON escapes C0 controls but not DEL and C1.
  return quoted.replace(/[\u007f-\u009f]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function fail(message: string): never {
  throw new LineError(message);
}

/**
 * Parses one line. Blank lines and `#` comments are skipped; a line is refused whole (an error naming what to fix)
 * or gives one point per numeric or boolean field. String fields are skipped, but a line of strings only is refused:
 * accepting it would store nothing while telling the client it was taken.
 */
export function parseLine(line: string, options: LineProtocolOptions): ParsedLine {
  try {
    return new LineParser(line.endsWith('\r') ? line.slice(0, -1) : line).parse(options);
  } catch (error) {
    if (error instanceof LineError) return { error: error.message };
    throw error;
  }
}

interface Field {
  name: string;
  value: number;
}

/** One pass over the line, left to right; every character is looked at a bounded number of times. */
class LineParser {
  private at = 0;

  constructor(private readonly text: string) {}

  parse(options: LineProtocolOptions): ParsedLine {
    this.skipSpaces();
    if (this.at === this.text.length || this.text[this.at] === '#') return { skip: true };
    const measurement = this.readName('measurement', MEASUREMENT_ESCAPES, ', ');
    if (measurement === '') fail('the line has no measurement name');
    const tags = this.readTags(measurement.length);
    const series = tags.reduce(
      (key, tag) => `${key},${escapeTagPart(tag.key)}=${escapeTagPart(tag.value)}`,
      escapeMeasurement(measurement),
    );
    if (this.text[this.at] !== SPACE) fail('the line has no fields (write "measurement field=value")');
    this.skipSpaces();
    const { fields, strings } = this.readFields();
    this.skipSpaces();
    const timestamped = this.at < this.text.length;
    const timestamp = this.readTimestamp(options);
    if (fields.length === 0) {
      fail(`the line has only string fields (${strings.map(quote).join(', ')}); the service stores numbers, send a numeric field`);
    }
    const points = fields.map(({ name, value }) => {
      const key = `${series}/${escapeField(name)}`;
      if (key.length > MAX_KEY_LENGTH) {
        fail(`the key ${quote(key)} is ${key.length} characters; measurement, tags and field name together may have ${MAX_KEY_LENGTH}`);
      }
      return { key, value, timestamp, meta: { measurement, tags, field: name } };
    });
    return { points, skippedStringFields: strings.length, timestamped };
  }

  private skipSpaces(): void {
    while (this.text[this.at] === SPACE) this.at += 1;
  }

  /**
   * Reads up to an unescaped stop character. A backslash escapes only the characters in `escapes`, as InfluxDB reads
   * names; before anything else (another backslash too) it is a literal backslash.
   */
  private readName(what: string, escapes: string, stops: string): string {
    const { text } = this;
    let name = '';
    let start = this.at;
    let at = this.at;
    while (at < text.length) {
      const char = text.charAt(at);
      if (char === '\\' && at + 1 < text.length && escapes.includes(text.charAt(at + 1))) {
        name += text.slice(start, at);
        start = at + 1;
        at += 2;
      } else if (stops.includes(char)) {
        break;
      } else {
        at += 1;
      }
    }
    name += text.slice(start, at);
    this.at = at;
    if (CONTROL_CHARS.test(name)) fail(`the ${what} ${quote(name)} contains a control character`);
    if (LONE_SURROGATE.test(name)) fail(`the ${what} ${quote(name)} is not valid Unicode (an unpaired UTF-16 surrogate)`);
    return name;
  }

  /**
   * The tags, sorted; refused as soon as they cannot fit in a key (unescaped lengths: escaping only adds), so that a
   * line of 16,000 tags is never sorted nor escaped. The field's "/x" adds at least two characters.
   */
  private readTags(measurementLength: number): { key: string; value: string }[] {
    const tags: { key: string; value: string }[] = [];
    let length = measurementLength;
    for (;;) {
      if (length > MAX_KEY_LENGTH - 2) {
        fail(`the measurement and tags are longer than a key may be (${MAX_KEY_LENGTH} characters with the field name)`);
      }
      if (this.text[this.at] !== ',') break;
      this.at += 1;
      const key = this.readName('tag key', NAME_ESCAPES, NAME_ESCAPES);
      if (key === '') fail('a tag has no key (after a "," comes "key=value"; write a literal "," in a name as "\\,")');
      if (this.text[this.at] !== '=') fail(`the tag ${quote(key)} has no "=value"`);
      this.at += 1;
      const value = this.readName('tag value', NAME_ESCAPES, NAME_ESCAPES);
      if (value === '') fail(`the tag ${quote(key)} has an empty value (leave the tag out instead)`);
      if (this.text[this.at] === '=') fail(`the value of tag ${quote(key)} has an unescaped "=" (write it as "\\=")`);
      tags.push({ key, value });
      length += 2 + key.length + value.length;
    }
    return sortTags(tags);
  }

  private readFields(): { fields: Field[]; strings: string[] } {
    const fields: Field[] = [];
    const strings: string[] = [];
    const seen = new Set<string>();
    for (;;) {
      const name = this.readName('field name', NAME_ESCAPES, NAME_ESCAPES);
      if (name === '') fail('a field has no name (write "name=value")');
      if (seen.has(name)) fail(`the field ${quote(name)} appears twice in the line`);
      seen.add(name);
      if (seen.size > MAX_FIELDS_PER_LINE) fail(`the line has more than ${MAX_FIELDS_PER_LINE} fields; split it into several lines`);
      if (this.text[this.at] !== '=') fail(`the field ${quote(name)} has no "=value"`);
      this.at += 1;
      if (this.text[this.at] === '"') {
        this.skipString(name);
        strings.push(name);
      } else {
        fields.push({ name, value: this.readNumber(name) });
      }
      const next = this.text[this.at];
      if (next === ',') {
        this.at += 1;
        continue;
      }
      if (next !== undefined && next !== SPACE) fail(`unexpected ${quote(next)} after the value of field ${quote(name)}`);
      return { fields, strings };
    }
  }

  /** Steps over a quoted string value: `\"` and `\\` are escapes (any backslash skips the next character). */
  private skipString(name: string): void {
    const { text } = this;
    let at = this.at + 1;
    while (at < text.length && text[at] !== '"') at += text[at] === '\\' ? 2 : 1;
    if (at >= text.length) fail(`the field ${quote(name)} has an unterminated string (the closing " is missing)`);
    this.at = at + 1;
  }

  private readToken(): string {
    const start = this.at;
    while (this.at < this.text.length && this.text[this.at] !== ',' && this.text[this.at] !== SPACE) this.at += 1;
    return this.text.slice(start, this.at);
  }

  private readNumber(name: string): number {
    const token = this.readToken();
    if (token === '') fail(`the field ${quote(name)} has no value`);
    if (TRUE_WORDS.has(token)) return 1;
    if (FALSE_WORDS.has(token)) return 0;
    const last = token.at(-1);
    if (last === 'i' || last === 'u') return exactInteger(name, token);
    if (!FLOAT.test(token)) {
      fail(`the value of field ${quote(name)} is not a number, boolean or quoted string: ${quote(token)}`);
    }
    const value = Number(token);
    if (!(Math.abs(value) <= MAX_ABS_VALUE)) {
      fail(`the value of field ${quote(name)} (${quote(token)}) is beyond ±1e292, the largest magnitude the service stores`);
    }
    // -0 and 0 are one value to the statistics; a stored -0 would read back as 0 anyway.
    return value === 0 ? 0 : value;
  }

  private readTimestamp(options: LineProtocolOptions): number {
    if (this.at === this.text.length) return options.receivedAt;
    const token = this.readToken();
    this.skipSpaces();
    if (this.at < this.text.length) {
      fail(`unexpected text after the timestamp: ${quote(this.text.slice(this.at))} (a line has at most three parts)`);
    }
    if (!SIGNED_DIGITS.test(token)) fail(`the timestamp ${quote(token)} is not an integer`);
    return toEpochMs(token, options);
  }
}

function exactInteger(name: string, token: string): number {
  const unsigned = token.endsWith('u');
  const digits = token.slice(0, -1);
  if (!(unsigned ? DIGITS : SIGNED_DIGITS).test(digits)) {
    fail(`the value of field ${quote(name)} is not a valid ${unsigned ? 'unsigned ' : ''}integer: ${quote(token)}`);
  }
  const tooLong = digits.replace(/^-?0*/, '').length > MAX_INTEGER_DIGITS;
  const integer = tooLong ? MAX_EXACT_INTEGER + 1n : BigInt(digits);
  if (integer > MAX_EXACT_INTEGER || integer < -MAX_EXACT_INTEGER) {
    fail(
      `the value of field ${quote(name)} (${quote(token)}) is beyond ±2^53 (9007199254740992), past which a number ` +
        `is not exact; send it as a float (without "${token.at(-1)}") if rounding is acceptable`,
    );
  }
  return Number(integer);
}

/** The timestamp in epoch ms: ns and us are truncated to the millisecond they fall in (a Date has no finer unit). */
function toEpochMs(token: string, { precision, receivedAt }: LineProtocolOptions): number {
  const hint = `(read in ${precision}; check the precision)`;
  if (token.startsWith('-') && /[1-9]/.test(token)) fail(`the timestamp ${quote(token)} is before 1970, which the service does not store`);
  if (token.replace(/^-?0*/, '').length > MAX_TIMESTAMP_DIGITS) fail(`the timestamp ${quote(token)} is past the year 275760 ${hint}`);
  const raw = BigInt(token);
  const ms = precision === 's' ? raw * 1000n : raw / UNITS_PER_MS[precision];
  if (ms > BigInt(MAX_EPOCH_MS)) fail(`the timestamp ${quote(token)} is past the year 275760, the last a date can hold ${hint}`);
  const timestamp = Number(ms);
  if (timestamp > receivedAt + MAX_FUTURE_MS) {
    fail(`the timestamp ${quote(token)} is ${new Date(timestamp).toISOString()}, more than 24 hours in the future ${hint}`);
  }
  return timestamp;
}

/** Tags in InfluxDB's order: by key, bytewise over UTF-8 (code point order, which UTF-16 comparison is not). */
function sortTags(tags: { key: string; value: string }[]): { key: string; value: string }[] {
  const byKey = tags.map((tag) => ({ tag, bytes: Buffer.from(tag.key, 'utf8') }));
  byKey.sort((a, b) => Buffer.compare(a.bytes, b.bytes));
  for (let index = 1; index < byKey.length; index += 1) {
    const key = byKey[index]?.tag.key ?? '';
    if (key === byKey[index - 1]?.tag.key) fail(`the tag ${quote(key)} appears twice in the line`);
  }
  return byKey.map(({ tag }) => tag);
}

/**
 * Canonical escaping for keys. Unlike line protocol, a backslash is always escaped ("\\"), so every escape reads
 * one way; a field name also escapes "/", so the last unescaped "/" of a key always starts its field name.
 */
function escapeWith(text: string, specials: string): string {
  let escaped = '';
  for (const char of text) escaped += specials.includes(char) ? `\\${char}` : char;
  return escaped;
}

export const escapeMeasurement = (name: string): string => escapeWith(name, '\\, ');
const escapeTagPart = (name: string): string => escapeWith(name, '\\,= ');
const escapeField = (name: string): string => escapeWith(name, '\\,= /');
