import fs from 'node:fs';
import path from 'node:path';
import { keysOf, SCRIPT_FILES, scriptSource } from '../../src/queue/lua-scripts';

const LUA_DIR = path.join(__dirname, '..', '..', 'src', 'lua');
const files = Object.values(SCRIPT_FILES);

describe('the Lua scripts (src/lua)', () => {
  it('when src/lua is listed, then every script in it is a command, and every command has its file', () => {
    const onDisk = fs.readdirSync(LUA_DIR).filter((name) => name.endsWith('.lua'));
    expect([...onDisk].sort()).toEqual([...files].sort());
  });

  it.each(files)('when %s is read, then it opens with a header saying what it takes and returns', (file) => {
    const text = fs.readFileSync(path.join(LUA_DIR, file), 'utf8');
    expect(text.startsWith('--[[\n')).toBe(true);
    const header = text.slice(0, text.indexOf(']]'));
    expect(header).toContain('Input:');
    expect(header).toContain('Output:');
  });

  it.each(files)('when %s names its number of keys, then it uses exactly KEYS[1] to KEYS[n]', (file) => {
    const source = scriptSource(file);
    const body = source.slice(source.indexOf(']]') + 2);
    const used = [...body.matchAll(/KEYS\[(\d+)\]/g)].map((match) => Number(match[1]));
    const declared = keysOf(file);
    if (declared === undefined) expect(body).toMatch(/#KEYS|ipairs\(KEYS\)/);
    else expect(Math.max(0, ...used)).toBe(declared);
  });
});
