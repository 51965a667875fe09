// `npm run test:postman`: the Postman collection run by newman against the built API and a worker, started here on
// a free port with a database and a queue of their own (Redis and MongoDB as `npm run stack` starts or reuses them).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import newman, { type NewmanRunSummary } from 'newman';
import { DEFAULT_MONGODB_URI, DEFAULT_REDIS_URL, ensureStack } from './stack';
import { freePort } from './free-port';

const ROOT = path.resolve(__dirname, '..');
const COLLECTION = path.join(ROOT, 'postman', 'realtime-data-service.postman_collection.json');

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

async function main(): Promise<number> {
  const stack = await ensureStack({
    redisUrl: process.env.REDIS_URL ?? DEFAULT_REDIS_URL,
    mongoUri: process.env.MONGODB_URI ?? DEFAULT_MONGODB_URI,
  });
  const suffix = randomBytes(4).toString('hex');
  const mongoUri = new URL(stack.mongoUri);
  mongoUri.pathname = `/postman_${suffix}`;
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    MONGODB_URI: mongoUri.toString(),
    REDIS_URL: stack.redisUrl,
    QUEUE_NAME: `postman-${suffix}`,
    LOG_LEVEL: 'warn',
    METRICS_PORT: '0',
    // Set and empty: a developer's .env must not close the API to the collection.
    INGEST_API_KEYS: '',
    READ_API_KEYS: '',
  };
  const children = [start('server.js', env), start('worker.js', env)];
  try {
    await waitUntilReady(baseUrl);
    const summary = await new Promise<NewmanRunSummary>((resolve, reject) => {
      newman.run({ collection: COLLECTION, envVar: [{ key: 'baseUrl', value: baseUrl }], reporters: ['cli'] }, (error, result) =>
        error ? reject(error) : resolve(result),
      );
    });
    const { total = 0, failed = 0 } = summary.run.stats.assertions;
    process.stdout.write(`newman: ${total - failed} of ${total} assertions passed\n`);
    return summary.run.failures.length === 0 ? 0 : 1;
  } finally {
    await Promise.all(children.map(stopped));
    const client = await MongoClient.connect(mongoUri.toString());
    await client.db().dropDatabase();
    await client.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
