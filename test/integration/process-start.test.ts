import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { mongoServerUri } from '../support/harness';

const ROOT = path.join(__dirname, '..', '..');

const databases: string[] = [];

afterAll(async () => {
  const client = await MongoClient.connect(mongoServerUri());
  for (const name of databases) await client.db(name).dropDatabase();
  await client.close();
});

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** Runs one of the service's processes from source; `signalOn`: send it SIGTERM once its output matches. */
function runProcess(script: string, env: Record<string, string>, signalOn?: RegExp): Promise<Exit> {
  const suffix = randomBytes(4).toString('hex');
  databases.push(`test_start_${suffix}`);
  const child = spawn(process.execPath, ['--import', 'tsx', path.join('src', script)], {
    cwd: ROOT,
    env: {
      ...process.env,
      // A database of its own: the default one is a developer's.
      MONGODB_URI: `${mongoServerUri()}/test_start_${suffix}`,
      LOG_LEVEL: 'info',
      LOG_PRETTY: '0',
      METRICS_PORT: '0',
      QUEUE_NAME: `test-start-${suffix}`,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let signalled = false;
  const read = (chunk: Buffer): void => {
    output += chunk.toString();
    if (signalOn && !signalled && signalOn.test(output)) {
      signalled = true;
      child.kill('SIGTERM');
    }
  };
  child.stdout.on('data', read);
  child.stderr.on('data', read);
  const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) =>
    child.once('exit', (code, exitSignal) => {
      clearTimeout(guard);
      resolve({ code, signal: exitSignal, output });
    }),
  );
}

describe('starting and stopping the processes', () => {
  it('when a worker still waiting for MongoDB is sent SIGTERM, then it stops at once with exit code 0', async () => {
    // Nothing listens on port 1: the worker retries its connection until it is stopped.
    const exit = await runProcess('worker.ts', { MONGODB_URI: 'mongodb://127.0.0.1:1/realtime' }, /MongoDB is not reachable yet/);
    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
    expect(exit.output).toMatch(/stopped while starting/);
    expect(exit.output).not.toMatch(/Connection is closed|Unhandled/i);
  });

  it('when a running worker is sent SIGTERM, then it finishes and exits 0', async () => {
    const exit = await runProcess('worker.ts', {}, /worker started/);
    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
    expect(exit.output).not.toMatch(/Connection is closed|TypeError/);
    expect(exit.output).toMatch(/finishing active jobs, then stopping/);
  });

  it.each([
    ['1', /INFO.*\(worker\).*worker started/],
    ['0', /^\{"level":30,.*"name":"worker".*"msg":"worker started"\}$/m],
  ])('when LOG_PRETTY is %s, then the worker logs %p', async (prettyLines, line) => {
    const exit = await runProcess('worker.ts', { LOG_PRETTY: prettyLines }, /worker started/);
    expect(exit.code).toBe(0);
    expect(exit.output).toMatch(line);
  });

  it('when the API port is taken, then the API exits 1 saying which port and to set PORT', async () => {
    const blocker: Server = createServer();
    const port = await new Promise<number>((resolve) => blocker.listen(0, () => resolve((blocker.address() as { port: number }).port)));
    try {
      const exit = await runProcess('server.ts', { PORT: String(port) });
      expect(exit.code).toBe(1);
      expect(exit.output).toContain(`Port ${port} is already in use by another process: stop it, or set PORT to a free port`);
      expect(exit.output).not.toMatch(/EADDRINUSE|\n\s+at /);
    } finally {
      blocker.close();
    }
  });
});
