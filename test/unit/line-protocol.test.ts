import { Readable } from 'node:stream';
import {
  MAX_FIELDS_PER_LINE,
  parseLine,
  type LineProtocolOptions,
  type LineProtocolPoint,
  type Precision,
} from '../../src/domain/line-protocol';
import { validatePoint } from '../../src/domain/point-schema';
import { readLines, type TextLine } from '../../src/http/line-reader';

const RECEIVED_AT = Date.parse('2026-01-01T00:00:00.000Z');
const NS: LineProtocolOptions = { precision: 'ns', receivedAt: RECEIVED_AT };

function pointsOf(line: string, options = NS): LineProtocolPoint[] {
  const result = parseLine(line, options);
  if (!('points' in result)) throw new Error(`expected points from ${JSON.stringify(line)}, got ${JSON.stringify(result)}`);
  return result.points;
}

function errorOf(line: string, options = NS): string {
  const result = parseLine(line, options);
  if (!('error' in result)) throw new Error(`expected an error from ${JSON.stringify(line)}, got ${JSON.stringify(result)}`);
  return result.error;
}

const keysOf = (line: string): string[] => pointsOf(line).map((point) => point.key);
const valuesOf = (line: string): number[] => pointsOf(line).map((point) => point.value);

describe('parseLine: the examples of the InfluxDB line protocol reference', () => {
  it('when a line has a measurement, tags, fields and a timestamp, then each numeric field is a point of that series', () => {
    const points = pointsOf('cpu,host=serverA,region=us-west value=1.0e-4,load=2i 1556813561098000000');
    const tags = [
      { key: 'host', value: 'serverA' },
      { key: 'region', value: 'us-west' },
    ];
    const expected = (field: string, value: number): LineProtocolPoint => ({
      key: `cpu,host=serverA,region=us-west/${field}`,
      value,
      timestamp: 1556813561098,
      meta: { measurement: 'cpu', tags, field },
    });
    expect(points).toEqual([expected('value', 0.0001), expected('load', 2)]);
  });

  it('when floats are written with or without a decimal point or in scientific notation, then they are read as numbers', () => {
    expect(valuesOf('m a=1.0,b=1,c=-1.234456e+78,d=.5,e=1.,f=1E3,g=-0')).toEqual([1, 1, -1.234456e78, 0.5, 1, 1000, 0]);
  });

  it('when integers and unsigned integers carry their i and u, then they are read as numbers', () => {
    expect(valuesOf('m a=1i,b=12485903i,c=-12485903i,d=1u,e=12485903u,f=0u')).toEqual([1, 12485903, -12485903, 1, 12485903, 0]);
  });

  it('when booleans use any of the accepted spellings, then true is 1 and false is 0', () => {
    expect(valuesOf('m a=t,b=T,c=true,d=True,e=TRUE')).toEqual([1, 1, 1, 1, 1]);
    expect(valuesOf('m a=f,b=F,c=false,d=False,e=FALSE')).toEqual([0, 0, 0, 0, 0]);
  });

  it('when a field holds a string, then it is skipped and counted while the numeric fields are kept', () => {
    const result = parseLine('cpu,host=serverA bool=false,str="string val",float=12.123,s2="a \\"quoted\\" \\\\ x" 1000000000', NS);
    expect(result).toMatchObject({ skippedStringFields: 2 });
    expect(keysOf('cpu,host=serverA bool=false,str="string val",float=12.123 1000000000')).toEqual([
      'cpu,host=serverA/bool',
      'cpu,host=serverA/float',
    ]);
  });

  it('when a string holds commas, spaces, "=" and escaped quotes, then they do not end the field', () => {
    expect(keysOf('cpu str="foo=bar, baz \\"q\\" x",value=1.0')).toEqual(['cpu/value']);
    expect(keysOf('cpu value="{Hello\\"{\\,}\\" World}",n=1')).toEqual(['cpu/n']);
  });

  it('when a line holds only string fields, then it is refused because nothing would be stored', () => {
    expect(errorOf('myMeasurement fieldKey="this is a string"')).toBe(
      'the line has only string fields ("fieldKey"); the service stores numbers, send a numeric field',
    );
  });

  it('when names escape spaces, commas and "=", then the names hold those characters', () => {
    const [point] = pointsOf('my\\ Measurement,tag\\ Key1=tag\\ Value1,tag\\ Key2=tag\\ Value2,a\\=b=c\\,d field\\ Key=100');
    expect(point?.meta).toEqual({
      measurement: 'my Measurement',
      tags: [
        { key: 'a=b', value: 'c,d' },
        { key: 'tag Key1', value: 'tag Value1' },
        { key: 'tag Key2', value: 'tag Value2' },
      ],
      field: 'field Key',
    });
    expect(point?.key).toBe('my\\ Measurement,a\\=b=c\\,d,tag\\ Key1=tag\\ Value1,tag\\ Key2=tag\\ Value2/field\\ Key');
  });

  it('when a measurement holds "=" or quotes, then they are part of its name', () => {
    expect(pointsOf('cpu=load,region=east value=1.0')[0]?.meta.measurement).toBe('cpu=load');
    expect(pointsOf('"cpu",host=a value=1')[0]?.meta.measurement).toBe('"cpu"');
    expect(pointsOf('c\\,pu value=42')[0]?.meta.measurement).toBe('c,pu');
  });

  it('when a backslash precedes a character that needs no escape, then it is a literal backslash, as InfluxDB reads it', () => {
    expect(pointsOf('cpu,host=two\\\\ words value=42')[0]?.meta.tags).toEqual([{ key: 'host', value: 'two\\ words' }]);
    expect(pointsOf('cpu,host=two\\\\\\ words value=42')[0]?.meta.tags).toEqual([{ key: 'host', value: 'two\\\\ words' }]);
    expect(pointsOf('cpu,reg\\\\=ion=east value=1.0')[0]?.meta.tags).toEqual([{ key: 'reg\\=ion', value: 'east' }]);
    expect(pointsOf('C:\\temp\\dir v=1')[0]?.meta.measurement).toBe('C:\\temp\\dir');
  });

  it('when names hold emojis, then they are kept', () => {
    const [point] = pointsOf('myMeasurement,tagKey=🍭 fieldKey="Launch 🚀",n=1 1556813561098000000');
    expect(point?.key).toBe('myMeasurement,tagKey=🍭/n');
  });

  it('when tags are not in order, then the key lists them sorted bytewise by key, so one series has one key', () => {
    expect(keysOf('cpu,region=west,host=a v=1')).toEqual(keysOf('cpu,host=a,region=west v=1'));
    // UTF-8 byte order: U+FF5E sorts before U+1F36D, although its UTF-16 code unit is larger.
    expect(keysOf('m,🍭=1,～=2,Z=3,a=4 v=1')).toEqual(['m,Z=3,a=4,～=2,🍭=1/v']);
  });

  it('when lines are comments or blank, then they are skipped', () => {
    expect(parseLine('# This is a comment', NS)).toEqual({ skip: true });
    expect(parseLine('   # indented comment', NS)).toEqual({ skip: true });
    expect(parseLine('', NS)).toEqual({ skip: true });
    expect(parseLine('    ', NS)).toEqual({ skip: true });
    expect(parseLine('\r', NS)).toEqual({ skip: true });
  });

  it('when a line ends in "\\r" or spaces, or sections are separated by several spaces, then it is read the same', () => {
    const expected = pointsOf('cpu value=1.0 1257894000000000000');
    expect(pointsOf('cpu value=1.0 1257894000000000000\r')).toEqual(expected);
    expect(pointsOf('cpu value=1.0 1257894000000000000   ')).toEqual(expected);
    expect(pointsOf('cpu   value=1.0     1257894000000000000')).toEqual(expected);
  });
});

describe('parseLine: timestamps', () => {
  const at = (line: string, precision: Precision): number | undefined =>
    pointsOf(line, { precision, receivedAt: RECEIVED_AT })[0]?.timestamp;

  it('when a line has no timestamp, then its points take the time the request was received', () => {
    expect(at('cpu value=1', 'ns')).toBe(RECEIVED_AT);
  });

  it('when the precision is s, ms, us or ns, then the timestamp is converted to the same epoch milliseconds', () => {
    expect(at('cpu value=1 946730096', 's')).toBe(946730096000);
    expect(at('cpu value=1 946730096789', 'ms')).toBe(946730096789);
    expect(at('cpu value=1 946730096789012', 'us')).toBe(946730096789);
    expect(at('cpu value=1 946730096789012345', 'ns')).toBe(946730096789);
  });

  it('when a ns timestamp is too precise for a double, then the milliseconds are still exact (the last ms, truncated)', () => {
    expect(at('cpu value=1 1556813561098999999', 'ns')).toBe(1556813561098);
    expect(at('cpu value=1 1556813561098999', 'us')).toBe(1556813561098);
    expect(at('cpu value=1 0', 'ns')).toBe(0);
    expect(at('cpu value=1 -0', 'ns')).toBe(0);
  });

  it('when a timestamp is before 1970, past the last Date or more than 24 hours ahead, then the line is refused saying why', () => {
    expect(errorOf('cpu value=1 -1')).toBe('the timestamp "-1" is before 1970, which the service does not store');
    expect(errorOf('cpu value=1 -9223372036854775806')).toMatch(/before 1970/);
    expect(errorOf('cpu value=1 8640000000000001', { precision: 'ms', receivedAt: RECEIVED_AT })).toMatch(
      /past the year 275760.*\(read in ms; check the precision\)/,
    );
    expect(errorOf(`cpu value=1 ${'9'.repeat(5000)}`)).toMatch(/past the year 275760/);
    // A ns timestamp sent with precision=s: the commonest mistake.
    expect(errorOf('cpu value=1 1556813561098000000', { precision: 's', receivedAt: RECEIVED_AT })).toMatch(/past the year 275760/);
    expect(errorOf(`cpu value=1 ${RECEIVED_AT + 25 * 3600 * 1000}`, { precision: 'ms', receivedAt: RECEIVED_AT })).toBe(
      'the timestamp "1767315600000" is 2026-01-02T01:00:00.000Z, more than 24 hours in the future (read in ms; check the precision)',
    );
  });

  it.each(['-1?', '1.5', '1434055562000000000i', '-/', '1e9'])(
    'when the timestamp is %s, then the line is refused: not an integer',
    (time) => {
      expect(errorOf(`cpu value=1 ${time}`)).toBe(`the timestamp "${time}" is not an integer`);
    },
  );
});

describe('parseLine: keys', () => {
  it('when names hold the characters that delimit a key, then the key escapes them and distinct series keep distinct keys', () => {
    const keys = [
      'a\\,b v=1', // measurement "a,b"
      'a,b=c v=1', // measurement "a", tag b=c
      'a b/c=1', // field "b/c"
      'a/b c=1', // measurement "a/b"
      'a\\ b c=1', // measurement "a b"
      'a,b=c\\ d e=1',
      'a,b=c d\\ e=1',
      'a\\\\,b=c d=1', // measurement "a\" then a tag
    ].map((line) => keysOf(line)[0]);
    expect(keys).toEqual(['a\\,b/v', 'a,b=c/v', 'a/b\\/c', 'a/b/c', 'a\\ b/c', 'a,b=c\\ d/e', 'a,b=c/d\\ e', 'a\\\\\\,b=c/d']);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('when measurement, tags and field name make a key over 200 characters, then the line is refused', () => {
    const long = 'x'.repeat(190);
    expect(keysOf(`${long} abcdefghi=1`)[0]).toHaveLength(200);
    expect(errorOf(`${long} abcdefghij=1`)).toMatch(
      /^the key ".*" is 201 characters; measurement, tags and field name together may have 200$/,
    );
    expect(errorOf(`m,t=${long}${long} v=1`)).toBe(
      'the measurement and tags are longer than a key may be (200 characters with the field name)',
    );
  });

  it('when a name holds a control character, then the line is refused naming which name and showing the character', () => {
    const refusals = ['cpu\u0000 x=1', '\tm v=1', 'm,t=a\u0085b v=1', 'm,a\u007f=b v=1', 'm v\u0001=1'].map((line) => errorOf(line));
    expect(refusals).toEqual([
      'the measurement "cpu\\u0000" contains a control character',
      'the measurement "\\tm" contains a control character',
      'the tag value "a\\u0085b" contains a control character',
      'the tag key "a\\u007f" contains a control character',
      'the field name "v\\u0001" contains a control character',
    ]);
  });

  it('when a name holds an unpaired surrogate, then the line is refused', () => {
    expect(errorOf('m,t\ud800=a v=1')).toBe('the tag key "t\\ud800" is not valid Unicode (an unpaired UTF-16 surrogate)');
  });

  it('every point a line gives passes the service point validation, meta included', () => {
    const tagKeys = Array.from({ length: 15 }, (_, index) => `$t.${index}`);
    const line = `m,${tagKeys.map((key) => `${key}=v`).join(',')} a=1,b=2i,c=t`;
    const points = pointsOf(line);
    expect(points).toHaveLength(3);
    points.forEach((point, index) => expect(validatePoint(point, index, RECEIVED_AT)).toHaveProperty('point'));
  });
});

describe('parseLine: values', () => {
  it('when an integer is beyond ±2^53, then the line is refused because the number would not be exact', () => {
    expect(valuesOf('m a=9007199254740992i,b=-9007199254740992i,c=9007199254740992u')).toEqual([2 ** 53, -(2 ** 53), 2 ** 53]);
    expect(errorOf('m a=9007199254740993i')).toBe(
      'the value of field "a" ("9007199254740993i") is beyond ±2^53 (9007199254740992), past which a number is not exact; ' +
        'send it as a float (without "i") if rounding is acceptable',
    );
    expect(errorOf('m a=-9223372036854775808i')).toMatch(/beyond ±2\^53/);
    expect(errorOf('cpu value=18446744073709551616u')).toMatch(/beyond ±2\^53.*without "u"/);
    expect(errorOf(`m a=${'9'.repeat(60_000)}i`)).toMatch(/beyond ±2\^53/);
    expect(valuesOf(`m a=${'0'.repeat(100)}7i`)).toEqual([7]);
  });

  it('when a float is beyond ±1e292 or overflows, then the line is refused', () => {
    expect(valuesOf('m a=1e292,b=-1e292')).toEqual([1e292, -1e292]);
    expect(errorOf('m a=1.1e292')).toBe('the value of field "a" ("1.1e292") is beyond ±1e292, the largest magnitude the service stores');
    expect(errorOf('m a=1e400')).toMatch(/beyond ±1e292/);
    expect(errorOf(`m a=-${'1'.repeat(400)}`)).toMatch(/beyond ±1e292/);
  });

  it.each(['NaN', 'Inf', '-e-e-e', '.', '42+3', '0.-1', '+1', 'yes', "'x'", '0x10', '1_000'])(
    'when a value is %s, then the line is refused: not a number, boolean or quoted string',
    (token) => {
      expect(errorOf(`cpu v=${token}`)).toBe(`the value of field "v" is not a number, boolean or quoted string: ${JSON.stringify(token)}`);
    },
  );

  it('when an integer is malformed, then the line is refused naming its kind', () => {
    expect(['1ii', '1.0i', '-123u', 'u'].map((token) => errorOf(`cpu v=${token}`))).toEqual([
      'the value of field "v" is not a valid integer: "1ii"',
      'the value of field "v" is not a valid integer: "1.0i"',
      'the value of field "v" is not a valid unsigned integer: "-123u"',
      'the value of field "v" is not a valid unsigned integer: "u"',
    ]);
  });
});

// Lines from the reference and influxdata/line-protocol's corpus that InfluxDB refuses too, and the message of each.
const REFUSED_LINES: Record<string, string> = {
  cpu: 'the line has no fields (write "measurement field=value")',
  'cpu,a=x,b=y': 'the line has no fields (write "measurement field=value")',
  ',host=a v=1': 'the line has no measurement name',
  ' =1': 'the line has no fields (write "measurement field=value")',
  'cpu,,, v=1': 'a tag has no key (after a "," comes "key=value"; write a literal "," in a name as "\\,")',
  'cpu,host, v=1': 'the tag "host" has no "=value"',
  'cpu,host=serverA,region value=1i': 'the tag "region" has no "=value"',
  'cpu,host=serverA,region=,zone=us-west value=1i': 'the tag "region" has an empty value (leave the tag out instead)',
  'cpu,host= v=1': 'the tag "host" has an empty value (leave the tag out instead)',
  'cpu,a=b=c v=1': 'the value of tag "a" has an unescaped "=" (write it as "\\=")',
  'cpu,b=2,c=3,b=1 value=1i 1000000000': 'the tag "b" appears twice in the line',
  'cpu,host=serverA,region=us-west =123i': 'a field has no name (write "name=value")',
  'cpu value=1,': 'a field has no name (write "name=value")',
  'cpu value': 'the field "value" has no "=value"',
  'cpu,host=serverA,region=us-west value=': 'the field "value" has no value',
  'cpu,host=serverA,region=us-west value=,value2=1i': 'the field "value" has no value',
  'cpu,host=serverA,region=us-west value= 1000000000i': 'the field "value" has no value',
  'cpu value="abc': 'the field "value" has an unterminated string (the closing " is missing)',
  'cpu value="abc\\"': 'the field "value" has an unterminated string (the closing " is missing)',
  'cpu value="a"b': 'unexpected "b" after the value of field "value"',
  'cpu a=1,a=2': 'the field "a" appears twice in the line',
  'cpu value=1 123 456': 'unexpected text after the timestamp: "456" (a line has at most three parts)',
};

describe('parseLine: syntax errors', () => {
  it.each(Object.entries(REFUSED_LINES))('when the line is %s, then it is refused: %s', (line, message) => {
    expect(errorOf(line)).toBe(message);
  });

  it('when a string spans lines, then its first line is refused: a newline always ends a line here', () => {
    expect(errorOf('cpu value="4')).toMatch(/unterminated string/);
  });
});

describe('parseLine: hostile lines', () => {
  const timed = (line: string): { result: ReturnType<typeof parseLine>; ms: number } => {
    const start = performance.now();
    const result = parseLine(line, NS);
    return { result, ms: performance.now() - start };
  };

  it.each([
    ['a 1 MB measurement', `${'m'.repeat(1 << 20)} v=1`],
    ['a 1 MB tag list', `m${',a=b'.repeat(1 << 18)} v=1`],
    ['a 1 MB run of backslashes', `m,t=${'\\'.repeat(1 << 20)} v=1`],
    ['100,000 fields', `m ${Array.from({ length: 100_000 }, (_, index) => `f${index}=1`).join(',')}`],
    ['100,000 string fields', `m ${'s="x",'.repeat(100_000)}v=1`],
    ['a 1 MB number', `m v=${'1'.repeat(1 << 20)}x`],
    ['a 1 MB float', `m v=${'1'.repeat(1 << 20)}.5`],
    ['a 1 MB unterminated string', `m v="${'\\"'.repeat(1 << 19)}`],
    ['a 1 MB timestamp', `m v=1 ${'1'.repeat(1 << 20)}`],
    ['NUL bytes', `m\u0000,t=\u0000 v=1`],
  ])('when a line holds %s, then it is refused with a message in linear time', (_, line) => {
    const { result, ms } = timed(line);
    expect(result).toHaveProperty('error');
    expect(ms).toBeLessThan(1000);
  });

  it(`when a line has ${MAX_FIELDS_PER_LINE} fields, then it is read; one more and it is refused`, () => {
    const fields = Array.from({ length: MAX_FIELDS_PER_LINE + 1 }, (_, index) => `f${index}=1`);
    expect(pointsOf(`m ${fields.slice(0, -1).join(',')}`)).toHaveLength(MAX_FIELDS_PER_LINE);
    expect(errorOf(`m ${fields.join(',')}`)).toBe(`the line has more than ${MAX_FIELDS_PER_LINE} fields; split it into several lines`);
  });
});

describe('readLines', () => {
  async function readAll(chunks: Buffer[], maxLineBytes?: number): Promise<TextLine[]> {
    const lines: TextLine[] = [];
    for await (const line of readLines(Readable.from(chunks), 1 << 20, maxLineBytes)) lines.push(line);
    return lines;
  }

  it('when a body of line protocol is read, then each line comes with its number, blank ones too, "\\r" kept for the parser', async () => {
    const lines = await readAll([Buffer.from('# c\r\ncpu v=1\r\n\ncpu v=2')]);
    expect(lines).toEqual([
      { lineNumber: 1, text: '# c\r' },
      { lineNumber: 2, text: 'cpu v=1\r' },
      { lineNumber: 3, text: '' },
      { lineNumber: 4, text: 'cpu v=2' },
    ]);
    expect(lines.map((line) => ('text' in line ? parseLine(line.text, NS) : line))).toEqual([
      { skip: true },
      { points: pointsOf('cpu v=1'), skippedStringFields: 0, timestamped: false },
      { skip: true },
      { points: pointsOf('cpu v=2'), skippedStringFields: 0, timestamped: false },
    ]);
  });

  it('when a line is not valid UTF-8 or is longer than the limit, then that line is refused and the next is read', async () => {
    const lines = await readAll(
      [Buffer.from('m v=1\n'), Buffer.from([0x6d, 0xff, 0x20, 0x76, 0x3d, 0x31, 0x0a]), Buffer.from('m,t=xxxxxxxxx v=1\nm v=2')],
      16,
    );
    expect(lines).toEqual([
      { lineNumber: 1, text: 'm v=1' },
      { lineNumber: 2, error: 'line is not valid UTF-8' },
      { lineNumber: 3, error: 'line is longer than 16 bytes' },
      { lineNumber: 4, text: 'm v=2' },
    ]);
  });
});
