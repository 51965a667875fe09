// An API and a worker (the built ones, dist/) on a free port with a database and a queue of their own, against the
// Redis and MongoDB that `npm run stack` starts or reuses: for the Postman run and the dashboard screenshot.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { DEFAULT_MONGODB_URI, DEFAULT_REDIS_URL } from './stack/endpoints';
import { ensureStack } from './stack/services';
import { freePort } from './free-port';

const ROOT = path.resolve(__dirname, '..');

export interface OwnService {
  baseUrl: string;
  /** Stops both processes and drops the database. */
  stop(): Promise<void>;
}

function start(script: string, env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, [path.join(ROOT, 'dist', script)], { cwd: ROOT, env, stdio: ['ignore', 'inherit', 'inherit'] });
}

async function waitUntilReady(baseUrl: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ready = await fetch(`${baseUrl}/readyz`).then(
      (res) => res.ok,
      () => false,
    );
    if (ready) return;
    if (Date.now() > deadline) throw new Error(`the API at ${baseUrl} was not ready within 60 s`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function stopped(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** Starts the service; `name` prefixes its database and queue. */
export async function startOwnService(name: string): Promise<OwnService> {
  const stack = await ensureStack({
    redisUrl: process.env.REDIS_URL ?? DEFAULT_REDIS_URL,
    mongoUri: process.env.MONGODB_URI ?? DEFAULT_MONGODB_URI,
  });
  const suffix = randomBytes(4).toString('hex');
  const mongoUri = new URL(stack.mongoUri);
  mongoUri.pathname = `/${name}_${suffix}`;
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    MONGODB_URI: mongoUri.toString(),
    REDIS_URL: stack.redisUrl,
    QUEUE_NAME: `${name}-${suffix}`,
    LOG_LEVEL: 'warn',
    METRICS_PORT: '0',
    // Set and empty: a developer's .env must not close the API to these runs.
    INGEST_API_KEYS: '',
    READ_API_KEYS: '',
  };
  const children = [start('server.js', env), start('worker.js', env)];
  const stop = async (): Promise<void> => {
    await Promise.all(children.map(stopped));
    const client = await MongoClient.connect(mongoUri.toString());
    await client.db().dropDatabase();
    await client.close();
  };
  try {
    await waitUntilReady(baseUrl);
  } catch (error) {
    await stop();
    throw error;
  }
  return { baseUrl, stop };
}
