import { Writable } from 'node:stream';
import pino from 'pino';
import { connectMongo } from '../../src/storage/connect';
import { createLogger } from '../../src/logger';
import { createRepositories, type Repositories } from '../../src/storage';
import { checkRollups, rebuildRollups } from '../../src/storage/rollup-rebuild';
import { getJson, postJson, startHarness, waitForBatch, type Harness } from '../support/harness';
import { historyBuckets, storedPoints } from '../support/stored-history';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
// Whole hours ago, so every minute bucket is within its 48 h retention; one point three days back has none.
const BASE = Math.floor(Date.now() / HOUR) * HOUR - 5 * HOUR;

let h: Harness;
let repos: Repositories;
let closeRepos: () => Promise<void>;

beforeAll(async () => {
  h = await startHarness();
  // The repositories a process of this deployment builds: the same database, Redis namespace and profile.
  const logger = createLogger('silent', 'test');
  const connection = await connectMongo(h.config.MONGODB_URI, logger, false);
  repos = await createRepositories({ connection, config: h.config, redis: h.redis, logger });
  closeRepos = () => connection.close();
});

afterAll(async () => {
  await closeRepos();
  await h.close();
});

/** What a user sees of each key's rollups, every step. */
async function allSeries(keys: readonly string[]): Promise<unknown[]> {
  const query = keys.map((key) => `key=${encodeURIComponent(key)}`).join('&');
  const answers = [];
  // 1-minute buckets are kept 48 h, and a query may not reach past that.
  for (const [step, from] of [
    ['1m', BASE],
    ['1h', BASE - 4 * DAY],
    ['1d', BASE - 4 * DAY],
  ] as const) {
    const answer = await getJson(h.baseUrl, `/api/data/series?${query}&step=${step}&from=${from}&to=${Date.now()}`);
    expect(answer.status).toBe(200);
    answers.push(answer.body);
  }
  return answers;
}

/** The warnings a process logs at start about its rollups. */
async function startupWarnings(): Promise<string[]> {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  await checkRollups(repos.series, repos.models, pino({ level: 'warn' }, sink));
  return lines;
}

describe('rollups kept in Redis (FerretDB profile), after Redis lost them', () => {
  it('when Redis loses the rollups, then a process says so at start, and the rebuild from history restores exactly what users saw', async () => {
    if (repos.profile.series !== 'redis') {
      // The MongoDB profile keeps rollups in the database: nothing is in Redis to lose, and the rebuild refuses.
      await expect(rebuildRollups(repos.series, repos.models, { historyRetentionMs: null, groupPoints: 7 })).rejects.toThrow(
        /nothing to rebuild/,
      );
      expect(await startupWarnings()).toEqual([]);
      return;
    }
    const keys = ['rebuild/a', 'rebuild/b', 'rebuild/c'];
    for (let batch = 0; batch < 3; batch += 1) {
      const points = keys.flatMap((key, k) =>
        Array.from({ length: 12 }, (_, i) => ({ key, value: batch * 100 + k * 10 + i, timestamp: BASE + i * 17 * MINUTE + batch * HOUR })),
      );
      points.push({ key: 'rebuild/a', value: -5, timestamp: BASE - 3 * DAY });
      const accepted = await postJson(h.baseUrl, { points });
      expect(accepted.status).toBe(202);
      expect((await waitForBatch(h.baseUrl, String(accepted.body.batchId))).status).toBe('completed');
    }
    const before = await allSeries(keys);
    expect(JSON.stringify(before)).toContain('"count":');
    expect(await startupWarnings()).toEqual([]);

    // Redis loses everything the rollups had: buckets, guards, and the mark that they are complete.
    const lost = await h.redis.keys(`${h.config.QUEUE_NAME}:series:*`);
    await h.redis.del(...lost);
    expect(await allSeries(keys)).not.toEqual(before);
    const warnings = await startupWarnings();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('npm run rollups:rebuild');

    // Groups of 7 records: the 111 records take several writes, as a large history does.
    const report = await rebuildRollups(repos.series, repos.models, { historyRetentionMs: null, groupPoints: 7 });
    expect(report.records).toBe(111);
    expect(await allSeries(keys)).toEqual(before);
    expect(await startupWarnings()).toEqual([]);

    // Points after the rebuild are added to the rebuilt buckets, once.
    const late = await postJson(h.baseUrl, { points: [{ key: 'rebuild/b', value: 1000, timestamp: BASE }] });
    expect((await waitForBatch(h.baseUrl, String(late.body.batchId))).status).toBe('completed');
    const minute = await getJson(h.baseUrl, `/api/data/series?key=rebuild%2Fb&step=1m&from=${BASE}&to=${BASE}`);
    expect(minute.body.series[0].buckets[0]).toMatchObject({ count: 2, sum: 10 + 1000 });

    // With HISTORY_RETENTION, history lost its older records: their buckets stay as they are, the rest is rebuilt.
    const withLate = await allSeries(keys);
    const retentionMs = 2 * HOUR;
    // The sweep lags: records up to an hour past the retention are still there, and must not be added again. It
    // deletes whole buckets, those whose newest point is older than its cutoff.
    const sweptBuckets = { max: { $lt: new Date(Date.now() - retentionMs - HOUR) } };
    const swept = await storedPoints(h.db, sweptBuckets);
    expect(swept).toBeGreaterThan(0);
    await historyBuckets(h.db).deleteMany(sweptBuckets);
    const bounded = await rebuildRollups(repos.series, repos.models, { historyRetentionMs: retentionMs, groupPoints: 7 });
    expect(bounded.records).toBe(112 - swept);
    expect(await allSeries(keys)).toEqual(withLate);
  });

  it('when a rebuild of the same queue is running, then another one is refused', async () => {
    const series = repos.series.rebuildable();
    if (!series) return;
    // A first rebuild holds the lock until released.
    let release = (): void => undefined;
    let held: Promise<void> = Promise.resolve();
    await new Promise<void>((entered) => {
      held = series.withRebuildLock(() => {
        entered();
        return new Promise<void>((resolve) => (release = resolve));
      });
    });
    try {
      await expect(rebuildRollups(repos.series, repos.models, { historyRetentionMs: null })).rejects.toThrow(/another rollup rebuild/);
    } finally {
      release();
      await held;
    }
  });
});
