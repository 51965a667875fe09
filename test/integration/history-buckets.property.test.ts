import fc from 'fast-check';
import type { Point } from '../../src/domain/point-schema';
import { groupByKey } from '../../src/domain/stats';
import type { HistoryJob, HistoryQuery } from '../../src/storage/contract';
import { HISTORY_BUCKET_SPAN_MS, historyId } from '../../src/storage/shared/history-buckets';
import { ownRepositories } from '../support/own-repositories';
import { STORAGE_PROFILES } from '../support/profiles';
import { applyJob } from '../support/store-writes';

/*
 * Buckets overlap in time: several jobs carry points of one key in one window, late points land in old windows, and
 * a job's points straddle windows. Whatever the jobs, every page must be what sorting all points newest first
 * (timestamp, then record id) and cutting at the cursor gives: nothing skipped, nothing repeated.
 */
const own = ownRepositories('history_buckets');
const T0 = 1_700_000_000_000;
const KEYS = ['hb/a', 'hb/b'];

// Timestamps over three windows, in steps that often tie.
const pointArb = fc.record({
  key: fc.constantFrom(...KEYS),
  offset: fc.integer({ min: 0, max: 18 }).map((step) => step * (HISTORY_BUCKET_SPAN_MS / 6)),
});
const jobsArb = fc.array(fc.array(pointArb, { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 6 });
const queryArb = fc.record({
  key: fc.option(fc.constantFrom(...KEYS), { nil: undefined }),
  limit: fc.integer({ min: 1, max: 7 }),
  from: fc.option(fc.integer({ min: 0, max: 18 }), { nil: undefined }),
  to: fc.option(fc.integer({ min: 0, max: 18 }), { nil: undefined }),
  byBatch: fc.boolean(),
});

interface Expected {
  id: string;
  t: number;
  key: string;
  batchId: string;
  value: number;
}

describe.each(STORAGE_PROFILES)('history buckets of the %s profile', (profile) => {
  it('when jobs overlap in time, then every page follows newest first exactly, across cursors', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(jobsArb, queryArb, async (jobSpecs, querySpec) => {
        run += 1;
        // A tier of 4 points per key: most pages reach below it and the store answers them, as the API would.
        const { repos } = await own.open({ STORAGE_PROFILE: profile, HISTORY_RECENT_PER_KEY: '4' });
        const all: Expected[] = [];
        let lane = 0;
        for (const [index, spec] of jobSpecs.entries()) {
          const batchId = `hb${run}-${index}`;
          const points: Point[] = spec.map(({ key, offset }, i) => ({ key, value: all.length + i, ts: T0 + offset, i }));
          const job: HistoryJob = { batchId, points, receivedAt: new Date(T0) };
          lane += 1;
          await applyJob(repos.aggregates, groupByKey(points), { slot: 10, lane: `lane${lane}`, seq: 1 });
          await repos.history.insertJobs([job], new Date(T0));
          // Every job twice: a re-run must change nothing.
          await repos.history.insertJobs([job], new Date(T0 + 1));
          for (const point of points)
            all.push({ id: historyId(batchId, point.i), t: point.ts, key: point.key, batchId, value: point.value });
        }
        const step = HISTORY_BUCKET_SPAN_MS / 6;
        const query: HistoryQuery = { limit: querySpec.limit };
        if (querySpec.key) query.key = querySpec.key;
        if (querySpec.byBatch) query.batchId = `hb${run}-0`;
        if (querySpec.from !== undefined) query.from = T0 + querySpec.from * step;
        if (querySpec.to !== undefined) query.to = T0 + querySpec.to * step;
        const expected = all
          .filter(
            (point) =>
              (query.key === undefined || point.key === query.key) &&
              (query.batchId === undefined || point.batchId === query.batchId) &&
              (query.from === undefined || point.t >= query.from) &&
              (query.to === undefined || point.t <= query.to),
          )
          .sort((a, b) => b.t - a.t || (a.id < b.id ? 1 : -1))
          .map((point) => point.value);
        const listed: number[] = [];
        let after: HistoryQuery['after'];
        for (let pages = 0; pages <= all.length; pages++) {
          const page = await repos.history.page({ ...query, after });
          listed.push(...page.items.map((item) => item.value));
          if (!page.next) break;
          after = page.next;
        }
        expect(listed).toEqual(expected);
      }),
      { numRuns: 40 },
    );
  });
});
