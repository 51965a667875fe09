import fs from 'node:fs';
import path from 'node:path';
import type { ChainableCommander, Redis } from 'ioredis';

/*
 * The service's Lua scripts live in src/lua/ (copied to dist/lua/ by the build), one per file, each opening with a
 * header that says what it takes and returns. As in BullMQ, `<name>-<n>.lua` takes n keys, and `<name>.lua` takes
 * the number of keys as its first argument.
 * Each is defined once per client (`defineCommand`): sent whole once per connection, by its SHA after that.
 */
const LUA_DIR = path.join(__dirname, '..', 'lua');

const FILES = {
  locksAcquire: 'key-locks-acquire.lua',
  locksExtend: 'key-locks-extend.lua',
  locksRelease: 'key-locks-release.lua',
  idempotencyRenew: 'idempotency-renew-1.lua',
  idempotencyRelease: 'idempotency-release-1.lua',
  idempotencyComplete: 'idempotency-complete-1.lua',
  batchBeginJob: 'batch-begin-job-2.lua',
  batchFinishJob: 'batch-finish-job-4.lua',
  batchCommit: 'batch-commit.lua',
  batchCreate: 'batch-create-1.lua',
  batchFail: 'batch-fail-1.lua',
  recentHistoryAdd: 'recent-history-add.lua',
  recentHistoryRead: 'recent-history-read-3.lua',
  seriesApply: 'series-apply-0.lua',
  packedVersionsPublish: 'packed-versions-publish-1.lua',
} as const;

export type ScriptName = keyof typeof FILES;
type ScriptArgument = string | number;
export type ScriptCommands = { [Name in ScriptName]: (...args: ScriptArgument[]) => Promise<unknown> };
/** The same commands queued in a pipeline or a transaction. */
export type QueuedScriptCommands = { [Name in ScriptName]: (...args: ScriptArgument[]) => ChainableCommander };

/** A script's source. */
export function scriptSource(file: string): string {
  return fs.readFileSync(path.join(LUA_DIR, file), 'utf8');
}

/** The number of keys a file's name gives, or undefined when the caller passes it. */
export function keysOf(file: string): number | undefined {
  const match = /-(\d+)\.lua$/.exec(file);
  return match ? Number(match[1]) : undefined;
}

/** The script files by command name (for tests and docs). */
export const SCRIPT_FILES: Readonly<Record<ScriptName, string>> = FILES;

const sources = new Map<ScriptName, string>();

/** Defines every script on this client once; returns it typed with them. */
export function withScripts(redis: Redis): Redis & ScriptCommands {
  for (const [name, file] of Object.entries(FILES) as [ScriptName, string][]) {
    if (name in redis) continue;
    let lua = sources.get(name);
    if (lua === undefined) sources.set(name, (lua = scriptSource(file)));
    const numberOfKeys = keysOf(file);
    redis.defineCommand(name, numberOfKeys === undefined ? { lua } : { lua, numberOfKeys });
  }
  return redis as Redis & ScriptCommands;
}

/** A pipeline or transaction of a client passed through `withScripts`, typed with the scripts. */
export function queued(commands: ChainableCommander): ChainableCommander & QueuedScriptCommands {
  return commands as ChainableCommander & QueuedScriptCommands;
}
