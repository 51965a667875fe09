import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { errorMessage } from './endpoints';
import { isExecutableFile, which } from './processes';

/* FerretDB for the default stack: found on PATH, in the cache, or built there once with Go. */

const FERRETDB_VERSION = 'v1.24.2';
const FERRETDB_MODULE = 'github.com/FerretDB/FerretDB';

type Log = (msg: string) => void;

/** Where FerretDB keeps its data and state, and where it listens. */
export interface FerretdbPlace {
  /** `host:port`. */
  listen: string;
  stateDir: string;
  /** SQLite backend: its directory. PostgreSQL backend: its URL (or none for FerretDB's default). */
  backend: { sqliteDir: string } | { postgresqlUrl: string | undefined };
}

/** FerretDB's command line for a place: telemetry and the debug listener off, so several instances never collide. */
export function ferretdbArgs(place: FerretdbPlace): string[] {
  const args = [
    `--listen-addr=${place.listen}`,
    '--telemetry=disable',
    '--debug-addr=-',
    '--log-level=warn',
    `--state-dir=${place.stateDir}`,
  ];
  if ('sqliteDir' in place.backend) {
    // FerretDB requires the directory to exist and the URL to end with '/'. In its WAL mode, synchronous=normal syncs
    // the log at checkpoints instead of at every commit: a FerretDB crash loses nothing, an OS crash the last commits,
    // as MongoDB's default write concern (journal flushed every 100 ms) does (docs/storage.md, "Durability of the default stack").
    return ['--handler=sqlite', `--sqlite-url=file:${place.backend.sqliteDir}/?_pragma=synchronous(normal)`, ...args];
  }
  const url = place.backend.postgresqlUrl;
  return ['--handler=postgresql', ...args, ...(url ? [`--postgresql-url=${url}`] : [])];
}

function ferretdbCachePath(): string {
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(cache, 'realtime-data-service', `ferretdb-${FERRETDB_VERSION}`, 'ferretdb');
}

/** The FerretDB binary: on PATH, cached, or built into the cache now (about 75 s); undefined without Go. */
export async function resolveFerretdb(log: Log): Promise<string | undefined> {
  const onPath = which('ferretdb');
  if (onPath) return onPath;
  const cached = ferretdbCachePath();
  if (isExecutableFile(cached)) return cached;
  const go = which('go');
  if (!go) return undefined;
  await buildFerretdb(go, cached, log);
  return cached;
}

class CommandError extends Error {
  constructor(
    message: string,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

function run(cmd: string, args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, GOWORK: 'off' } }, (err, stdout, stderr) => {
      if (err) reject(new CommandError(err.message, stdout, stderr));
      else resolve({ stdout, stderr });
    });
  });
}

function outputOf(err: unknown): string {
  return err instanceof CommandError ? `${err.stdout}\n${err.stderr}`.trim() || err.message : errorMessage(err);
}

// Module-cache files are read-only; the copy needs to be writable to add version.txt and to be removed later.
function makeWritable(dir: string): void {
  fs.chmodSync(dir, 0o755);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) makeWritable(p);
    else if (entry.isFile()) fs.chmodSync(p, fs.statSync(p).mode | 0o200);
  }
}

// `go install ...@v1.24.2` yields a binary that panics at start ("Invalid build/version/version.txt file
// content"): the module lacks that generated file. So build from a copy of the module with the file added.
async function buildFerretdb(go: string, target: string, log: Log): Promise<void> {
  const started = Date.now();
  log(`ferretdb: building FerretDB ${FERRETDB_VERSION} into ${target} (about 75 s the first time, a few s later)`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferretdb-build-'));
  const tmpBinary = `${target}.tmp-${process.pid}`;
  try {
    let downloaded: string;
    try {
      downloaded = (await run(go, ['mod', 'download', '-json', `${FERRETDB_MODULE}@${FERRETDB_VERSION}`], work)).stdout;
    } catch (err) {
      throw new Error(`ferretdb: go mod download failed:\n${outputOf(err)}`);
    }
    const info = JSON.parse(downloaded) as { Dir?: unknown };
    if (typeof info.Dir !== 'string') throw new Error(`ferretdb: go mod download gave no Dir:\n${downloaded}`);

    const src = path.join(work, 'src');
    fs.cpSync(info.Dir, src, { recursive: true });
    makeWritable(src);
    fs.writeFileSync(path.join(src, 'build', 'version', 'version.txt'), `${FERRETDB_VERSION}\n`);

    // Build next to the target and rename, so a half-built binary is never picked up.
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const build = (extra: string[]) => run(go, ['build', ...extra, '-o', tmpBinary, './cmd/ferretdb'], src);
    try {
      await build([]);
    } catch (err) {
      // Newer Go toolchains reject some of FerretDB's go:linkname uses.
      if (!outputOf(err).includes('invalid reference to runtime.')) {
        throw new Error(`ferretdb: go build failed:\n${outputOf(err)}`);
      }
      log('ferretdb: retrying the build with -ldflags=-checklinkname=0');
      try {
        await build(['-ldflags=-checklinkname=0']);
      } catch (err2) {
        throw new Error(`ferretdb: go build failed:\n${outputOf(err2)}`);
      }
    }
    fs.renameSync(tmpBinary, target);
    log(`ferretdb: built in ${Math.round((Date.now() - started) / 1000)} s`);
  } finally {
    fs.rmSync(tmpBinary, { force: true });
    fs.rmSync(work, { recursive: true, force: true });
  }
}
