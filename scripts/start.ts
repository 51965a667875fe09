// `npm start`: the stack (Redis and MongoDB, reused or started), then the built API and one worker in this
// terminal. Ctrl-C stops both cleanly; the stack keeps running (`npm run stack:stop` stops it).
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { config as loadDotenv } from 'dotenv';
import { redisDurabilityWarning } from './redis-durability';
import { DEFAULT_MONGODB_URI, DEFAULT_REDIS_URL } from './stack/endpoints';
import { ensureStack } from './stack/services';

const root = path.resolve(__dirname, '..');

function run(name: string, script: string, env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, [path.join(root, 'dist', script)], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  for (const stream of [child.stdout, child.stderr]) {
    readline.createInterface({ input: stream }).on('line', (line) => process.stdout.write(`[${name}] ${line}\n`));
  }
  return child;
}

function exited(child: ChildProcess): Promise<number> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code ?? 1)));
}

async function main(): Promise<void> {
  loadDotenv({ path: path.join(root, '.env'), quiet: true });
  const stack = await ensureStack({
    redisUrl: process.env.REDIS_URL ?? DEFAULT_REDIS_URL,
    mongoUri: process.env.MONGODB_URI ?? DEFAULT_MONGODB_URI,
  });
  const durability = await redisDurabilityWarning(stack.redisUrl);
  if (durability) process.stderr.write(`warning: ${durability}\n`);
  // The children write to pipes: they log readable lines when this terminal is one (LOG_PRETTY, src/logger.ts).
  const env = { LOG_PRETTY: process.stdout.isTTY ? '1' : '0', ...process.env, REDIS_URL: stack.redisUrl, MONGODB_URI: stack.mongoUri };
  const children = [run('api', 'server.js', env), run('worker', 'worker.js', env)];

  const state = { stopping: false };
  const stop = (): void => {
    if (state.stopping) return;
    state.stopping = true;
    // Each process finishes what it is doing (in-flight requests, active jobs) and exits.
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  // One process ending on its own stops the other: half a service is no service.
  const first = await Promise.race(children.map(exited));
  const unexpected = !state.stopping;
  if (unexpected) process.stderr.write(`a process exited with code ${first}; stopping the other\n`);
  stop();
  const codes = await Promise.all(children.map(exited));
  process.exit(!unexpected && codes.every((code) => code === 0) ? 0 : 1);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
