import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** Runs one of the service's processes from source; `signalAfterMs` sends it SIGTERM that long after it was spawned. */
function runProcess(script: string, env: Record<string, string>, signalAfterMs?: number): Promise<Exit> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join('src', script)], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn', METRICS_PORT: '0', QUEUE_NAME: `test-start-${randomBytes(4).toString('hex')}`, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  if (signalAfterMs !== undefined) setTimeout(() => child.kill('SIGTERM'), signalAfterMs);
  const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, output });
    }),
  );
}

describe('starting and stopping the processes', () => {
  it.each([300, 1000, 2500])(
    'when a worker is sent SIGTERM %d ms after it was started, then it stops cleanly with exit code 0',
    async (delay) => {
      const exit = await runProcess('worker.ts', {}, delay);
      expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
      expect(exit.output).not.toMatch(/Connection is closed|Unhandled/i);
    },
  );

  it('when the API is sent SIGTERM while it starts, then it stops cleanly with exit code 0', async () => {
    const exit = await runProcess('server.ts', { PORT: '0' }, 1000);
    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
  });

  it.each([
    ['1', /INFO.*\(worker\).*worker started/],
    ['0', /^\{"level":30,.*"name":"worker".*"msg":"worker started"\}$/m],
  ])('when LOG_PRETTY is %s, then the worker logs %p', async (prettyLines, line) => {
    const exit = await runProcess('worker.ts', { LOG_PRETTY: prettyLines, LOG_LEVEL: 'info' }, 4000);
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
