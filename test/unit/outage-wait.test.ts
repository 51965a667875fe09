import { MongoNetworkError } from 'mongodb';
import pino from 'pino';
import { RefusedDataError } from '../../src/storage/contract';
import { PermanentJobError } from '../../src/services/job-errors';
import { OutageWait, type HealthProbe } from '../../src/services/outage-wait';

const logger = pino({ level: 'silent' });
const FAST = { firstPauseMs: 5, maxPauseMs: 20, probeTimeoutMs: 50 };
const running = (): boolean => false;

/** A service that is down until `up()`: its probe rejects (or never answers, `hangs`) meanwhile. */
function service(name: string, hangs = false): HealthProbe & { up(): void; down(): void } {
  let reachable = true;
  return {
    name,
    check: () => (reachable ? Promise.resolve() : hangs ? new Promise(() => undefined) : Promise.reject(new Error(`${name} down`))),
    up: () => (reachable = true),
    down: () => (reachable = false),
  };
}

/** A job whose run number `n` (from 1) does `step(n)`; `runs` counts its runs. */
function job<T>(step: (run: number) => T): { runs: () => number; run: () => Promise<T> } {
  let runs = 0;
  return {
    runs: () => runs,
    run: async () => {
      await Promise.resolve();
      runs += 1;
      return step(runs);
    },
  };
}

describe('OutageWait', () => {
  it('when a job fails while the database does not answer, then it runs again once it does, in the same run', async () => {
    const database = service('mongodb');
    const wait = new OutageWait([database, service('redis')], { ...FAST, budgetMs: 5000 }, logger);
    const storing = job((run) => {
      if (run > 1) return 'stored';
      database.down();
      setTimeout(() => database.up(), 60);
      throw new Error('server selection timed out');
    });

    expect(await wait.run('b:0', storing.run, running)).toBe('stored');
    expect(storing.runs()).toBe(2);
  });

  it('when a call got no answer and the database answers again by the time it is looked at, then the job runs again', async () => {
    const wait = new OutageWait([service('mongodb')], { ...FAST, budgetMs: 5000 }, logger);
    const storing = job((run) => {
      // A pooled connection that broke in the database's restart, found after it is back.
      if (run === 1) throw new MongoNetworkError('connect ECONNREFUSED 127.0.0.1:27017');
      return 'stored';
    });

    expect(await wait.run('b:0', storing.run, running)).toBe('stored');
    expect(storing.runs()).toBe(2);
  });

  it('when a probe never answers, then that service counts as down until it does', async () => {
    const redis = service('redis', true);
    redis.down();
    const wait = new OutageWait([service('mongodb'), redis], { ...FAST, budgetMs: 5000 }, logger);

    expect(await wait.unreachable()).toEqual(['redis']);
    redis.up();
    expect(await wait.unreachable()).toEqual([]);
  });

  it('when a job fails while every service answers, then the failure is its own and goes to Bull at once', async () => {
    const wait = new OutageWait([service('mongodb'), service('redis')], { ...FAST, budgetMs: 5000 }, logger);
    const failing = job(() => {
      throw new Error('lock wait timed out');
    });

    await expect(wait.run('b:0', failing.run, running)).rejects.toThrow('lock wait timed out');
    expect(failing.runs()).toBe(1);
  });

  it.each([
    ['a permanent failure', new PermanentJobError('invalid job payload')],
    ['data the store refused', new RefusedDataError('sum out of range')],
  ])('when a job fails with %s during an outage, then it is not waited out', async (_, error) => {
    const database = service('mongodb');
    database.down();
    const wait = new OutageWait([database], { ...FAST, budgetMs: 5000 }, logger);
    const failing = job(() => {
      throw error;
    });

    await expect(wait.run('b:0', failing.run, running)).rejects.toBe(error);
    expect(failing.runs()).toBe(1);
  });

  it('when the outage outlasts the budget, then the last failure goes to Bull (which uses an attempt)', async () => {
    const database = service('mongodb');
    database.down();
    const wait = new OutageWait([database], { ...FAST, budgetMs: 100 }, logger);
    const failing = job((run) => {
      throw new Error(`connection refused ${run}`);
    });

    await expect(wait.run('b:0', failing.run, running)).rejects.toThrow('connection refused 1');
    expect(failing.runs()).toBe(1);
  });

  it('when a job that keeps meeting outages outlasts the budget, then it stops running again', async () => {
    const database = service('mongodb');
    const wait = new OutageWait([database], { ...FAST, budgetMs: 200 }, logger);
    const failing = job((run) => {
      // Each run brings the database down for a moment (as a batch that crashes the server would).
      database.down();
      setTimeout(() => database.up(), 30);
      throw new Error(`connection reset ${run}`);
    });

    await expect(wait.run('b:0', failing.run, running)).rejects.toThrow(/connection reset/);
    expect(failing.runs()).toBeGreaterThan(1);
    expect(failing.runs()).toBeLessThan(20);
  });

  it('when the worker is stopping, then a job that met an outage fails at once instead of waiting', async () => {
    const database = service('mongodb');
    database.down();
    const wait = new OutageWait([database], { ...FAST, budgetMs: 60_000 }, logger);
    const failing = job(() => {
      throw new Error('server selection timed out');
    });

    await expect(wait.run('b:0', failing.run, () => true)).rejects.toThrow('server selection timed out');
  });
});
