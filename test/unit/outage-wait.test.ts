import { MongoNetworkError } from 'mongodb';
import pino from 'pino';
import { RefusedDataError } from '../../src/storage/contract';
import { PermanentJobError } from '../../src/services/job-errors';
import { OutageWait, type HealthProbe } from '../../src/services/outage-wait';

const logger = pino({ level: 'silent' });
const FAST = { firstPauseMs: 5, maxPauseMs: 20, probeTimeoutMs: 50 };

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

describe('OutageWait', () => {
  it('when a job fails while the database does not answer, then it runs again once it does, in the same run', async () => {
    const database = service('mongodb');
    const wait = new OutageWait([database, service('redis')], { ...FAST, budgetMs: 5000 }, logger);
    let runs = 0;
    const result = await wait.run(
      'b:0',
      async () => {
        await Promise.resolve();
        runs += 1;
        if (runs === 1) {
          database.down();
          setTimeout(() => database.up(), 60);
          throw new Error('server selection timed out');
        }
        return 'stored';
      },
      () => false,
    );

    expect(result).toBe('stored');
    expect(runs).toBe(2);
  });

  it('when a call got no answer and the database answers again by the time it is looked at, then the job runs again', async () => {
    const wait = new OutageWait([service('mongodb')], { ...FAST, budgetMs: 5000 }, logger);
    let runs = 0;
    const result = await wait.run(
      'b:0',
      async () => {
        await Promise.resolve();
        runs += 1;
        // A pooled connection that broke in the database's restart, found after it is back.
        if (runs === 1) throw new MongoNetworkError('connect ECONNREFUSED 127.0.0.1:27017');
        return 'stored';
      },
      () => false,
    );

    expect(result).toBe('stored');
    expect(runs).toBe(2);
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
    let runs = 0;
    const failing = wait.run(
      'b:0',
      async () => {
        await Promise.resolve();
        runs += 1;
        throw new Error('lock wait timed out');
      },
      () => false,
    );

    await expect(failing).rejects.toThrow('lock wait timed out');
    expect(runs).toBe(1);
  });

  it.each([
    ['a permanent failure', new PermanentJobError('invalid job payload')],
    ['data the store refused', new RefusedDataError('sum out of range')],
  ])('when a job fails with %s during an outage, then it is not waited out', async (_, error) => {
    const database = service('mongodb');
    database.down();
    const wait = new OutageWait([database], { ...FAST, budgetMs: 5000 }, logger);
    let runs = 0;
    const failing = wait.run(
      'b:0',
      async () => {
        await Promise.resolve();
        runs += 1;
        throw error;
      },
      () => false,
    );

    await expect(failing).rejects.toBe(error);
    expect(runs).toBe(1);
  });

  it('when the outage outlasts the budget, then the last failure goes to Bull (which uses an attempt)', async () => {
    const database = service('mongodb');
    database.down();
    const wait = new OutageWait([database], { ...FAST, budgetMs: 100 }, logger);
    let runs = 0;
    const failing = wait.run(
      'b:0',
      async () => {
        await Promise.resolve();
        runs += 1;
        throw new Error(`connection refused ${runs}`);
      },
      () => false,
    );

    await expect(failing).rejects.toThrow('connection refused 1');
    expect(runs).toBe(1);
  });

  it('when a job that keeps meeting outages outlasts the budget, then it stops running again', async () => {
    const database = service('mongodb');
    const wait = new OutageWait([database], { ...FAST, budgetMs: 200 }, logger);
    let runs = 0;
    const failing = wait.run(
      'b:0',
      async () => {
        await Promise.resolve();
        runs += 1;
        // Each run brings the database down for a moment (as a batch that crashes the server would).
        database.down();
        setTimeout(() => database.up(), 30);
        throw new Error(`connection reset ${runs}`);
      },
      () => false,
    );

    await expect(failing).rejects.toThrow(/connection reset/);
    expect(runs).toBeGreaterThan(1);
    expect(runs).toBeLessThan(20);
  });

  it('when the worker is stopping, then a job that met an outage fails at once instead of waiting', async () => {
    const database = service('mongodb');
    database.down();
    const wait = new OutageWait([database], { ...FAST, budgetMs: 60_000 }, logger);
    const failing = wait.run(
      'b:0',
      async () => {
        await Promise.resolve();
        throw new Error('server selection timed out');
      },
      () => true,
    );

    await expect(failing).rejects.toThrow('server selection timed out');
  });
});
