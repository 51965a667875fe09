import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compareCore, percentile } from '../../bench/common';
import { FINDINGS_END, FINDINGS_START, readFindings, renderMarkdown, renderSvg } from '../../bench/docs';
import { parseBenchOptions } from '../../bench/options';
import { UsageError } from '../../scripts/cli';
import { evaluateTargets, type TargetRow } from '../../bench/report';
import {
  naiveStatusOf,
  overallStatus,
  statusOf,
  type BenchResults,
  type BenchRun,
  type CeilingRun,
  type NaiveRun,
  type ServiceRun,
} from '../../bench/results-file';

const MB = 1024 * 1024;

function ceiling(size: number, pointsPerSecond: number, jobsPerWrite = 1): CeilingRun {
  return {
    contender: 'ceiling',
    size,
    jobsPerWrite,
    points: size,
    jobs: size / 1000,
    seconds: size / pointsPerSecond,
    pointsPerSecond,
    commandsPerJob: { update: 1, insert: 1 },
    historyInserted: size,
    exact: true,
    timedOut: false,
    error: null,
    mismatches: [],
    status: 'EXACT',
  };
}

function naive(pointsPerSecond: number): NaiveRun {
  return {
    contender: 'naive',
    size: 100_000,
    points: 5000,
    countedPoints: 5000,
    acceptedPointsPerSecond: 10_000,
    seconds: 5000 / pointsPerSecond,
    pointsPerSecond,
    apiPeakRssBytes: 100 * MB,
    workerPeakRssBytes: 100 * MB,
    redis: null,
    exact: true,
    settled: true,
    timedOut: false,
    error: null,
    mismatches: [],
    status: 'EXACT',
  };
}

function service(size: number, workers: number, pointsPerSecond: number, overrides: Partial<ServiceRun> = {}): ServiceRun {
  return {
    contender: 'service',
    size,
    workers,
    points: size,
    countedPoints: size,
    acceptedPointsPerSecond: 100_000,
    seconds: size / pointsPerSecond,
    pointsPerSecond,
    exact: true,
    timedOut: false,
    error: null,
    mismatches: [],
    latency: {
      targetPointsPerSecond: pointsPerSecond / 2,
      pointsPerRequest: 1000,
      requestsPerSecond: 5,
      probes: 100,
      received: 100,
      p50Ms: 200,
      p99Ms: 600,
      maxMs: 700,
      errors: [],
      exact: true,
      mismatches: [],
    },
    reads: null,
    apiPeakRssBytes: 200 * MB,
    workerPeakRssBytes: [200 * MB],
    redis: { usedMemoryBytes: 50 * MB, runKeysBytes: MB, runKeys: 100, byKind: { 'bull jobs': { keys: 100, bytes: MB } } },
    redisUsedMemory: { beforeBytes: 40 * MB, peakBytes: 90 * MB },
    phases: { start: 1, throughput: size / pointsPerSecond },
    status: 'EXACT',
    ...overrides,
  };
}

function results(runs: BenchRun[], sizes = [100_000, 1_000_000]): BenchResults {
  return {
    schema: 1,
    mode: 'full',
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:08:00.000Z',
    command: 'npm run bench',
    machine: { cpu: 'Test CPU', cores: 2, memoryBytes: 8 * 1024 * MB, os: 'Linux', node: 'v20.0.0' },
    store: { name: 'FerretDB', version: 'v1.24.2', backend: 'SQLite', label: 'FerretDB v1.24.2 (SQLite backend)' },
    redis: { version: '7.0.15' },
    settings: {
      sizes,
      keys: 100,
      workers: [1],
      naiveSample: 5000,
      ceilingJobs: [1],
      batch: 1000,
      concurrency: 4,
      latencySeconds: 20,
      reads: 200,
      phaseTimeoutSeconds: 180,
      budgetSeconds: 540,
      service: { JOB_CHUNK_SIZE: 1000 },
    },
    runs,
    phases: [{ name: 'npm run build', seconds: 5 }],
    totalSeconds: 480,
    status: overallStatus(runs),
  };
}

const stateOf = (rows: TargetRow[], startsWith: string): string | undefined => rows.find((row) => row.target.startsWith(startsWith))?.state;

describe('bench options', () => {
  it('when no option is given, then the full benchmark of issue 4 runs: 1e5 and 1e6 points, 1 and 2 workers, docs regenerated', () => {
    const options = parseBenchOptions([]);
    expect(options).toMatchObject({
      mode: 'full',
      sizes: [100_000, 1_000_000],
      workers: [1, 2],
      naiveSample: 5000,
      docs: true,
      build: true,
    });
  });

  it('when --smoke is given, then 1e4 points, 1 worker and a naive sample of 500 run, and the docs are left alone', () => {
    const options = parseBenchOptions(['--smoke']);
    expect(options).toMatchObject({ mode: 'smoke', sizes: [10_000], workers: [1], naiveSample: 500, docs: false });
    expect(options?.budgetSeconds).toBeLessThanOrEqual(120);
  });

  it('when sizes are given in exponent form, then they are read as whole numbers, smallest first', () => {
    expect(parseBenchOptions(['--sizes', '1e6,2e4,1e6'])?.sizes).toEqual([20_000, 1_000_000]);
  });

  it.each([
    ['--sizes', '1.5e3'],
    ['--keys', '0'],
    ['--workers', 'two'],
    ['--unknown', '1'],
  ])('when %s %s is given, then it is a usage error', (name, value) => {
    expect(() => parseBenchOptions([name, value])).toThrow(UsageError);
  });
});

describe('bench figures', () => {
  it('when percentiles are asked of samples, then they are nearest-rank values of the samples', () => {
    const samples = Array.from({ length: 100 }, (_, index) => 100 - index);
    expect(percentile(samples, 50)).toBe(50);
    expect(percentile(samples, 99)).toBe(99);
    expect(percentile(samples, 100)).toBe(100);
    expect(percentile([], 50)).toBeNull();
  });

  it('when a stored total differs, is missing or was never generated, then each is a mismatch', () => {
    const expected = new Map([
      ['a', { count: 2, sum: 3, min: 1, max: 2, firstTs: 1, lastTs: 2, lastValue: 2 }],
      ['b', { count: 1, sum: 5, min: 5, max: 5, firstTs: 1, lastTs: 1, lastValue: 5 }],
    ]);
    const actual = new Map([
      ['a', { count: 3, sum: 3, min: 1, max: 2 }],
      ['c', { count: 1, sum: 1, min: 1, max: 1 }],
    ]);
    expect(compareCore(expected, actual)).toEqual([
      { key: 'a', problems: ['count expected 2, got 3'] },
      { key: 'b', problems: ['missing'] },
      { key: 'c', problems: ['not generated by this run'] },
    ]);
  });

  it('when one run is INVALID and another timed out, then the whole bench is INVALID', () => {
    expect(statusOf({ exact: false, timedOut: true, error: null })).toBe('TIMEOUT');
    expect(statusOf({ exact: false, timedOut: true, error: 'worker exited' })).toBe('INVALID');
    expect(overallStatus([service(1000, 1, 10, { status: 'TIMEOUT' }), ceiling(1000, 10)])).toBe('TIMEOUT');
    expect(overallStatus([service(1000, 1, 10, { status: 'TIMEOUT' }), { ...ceiling(1000, 10), status: 'INVALID' }])).toBe('INVALID');
  });

  it('when the naive baseline processed every point but lost counts, then it is INEXACT, its rate still compares, and the bench stays valid', () => {
    const lossy = { exact: false, settled: true, timedOut: false, error: null };
    expect(naiveStatusOf(lossy)).toBe('INEXACT');
    expect(naiveStatusOf({ ...lossy, settled: false, timedOut: true })).toBe('TIMEOUT');
    expect(naiveStatusOf({ ...lossy, error: 'worker exited' })).toBe('INVALID');
    const inexact: NaiveRun = { ...naive(100), countedPoints: 4999, exact: false, status: 'INEXACT' };
    expect(overallStatus([inexact, service(100_000, 1, 4000)])).toBe('EXACT');
    const row = evaluateTargets(results([ceiling(100_000, 5000), inexact, service(100_000, 1, 4000)])).find((target) =>
      target.target.includes('naive baseline'),
    );
    expect(row).toMatchObject({ state: 'met', measured: expect.stringContaining('it lost 1 count(s)') });
  });
});

describe('issue 4 targets', () => {
  it('when the service is 40× the naive baseline and 80% of the faster ceiling at both sizes, then both ratio targets are met', () => {
    const rows = evaluateTargets(
      results([
        ceiling(100_000, 1000),
        ceiling(100_000, 5000, 16),
        naive(100),
        service(100_000, 1, 4000),
        ceiling(1_000_000, 5000, 16),
        service(1_000_000, 1, 4000),
      ]),
    );
    expect(rows.filter((row) => row.target.includes('naive baseline')).map((row) => row.state)).toEqual(['met', 'met']);
    expect(rows.filter((row) => row.target.includes('storage ceiling')).map((row) => row.state)).toEqual(['met', 'met']);
    expect(rows.find((row) => row.target.startsWith('1e5: end to end ≥ 50%'))?.measured).toContain('16 jobs per write');
  });

  it('when the 1e6 run timed out, then the targets that need it are not measured, not met', () => {
    const rows = evaluateTargets(
      results([
        ceiling(100_000, 1000),
        naive(100),
        service(100_000, 1, 4000),
        service(1_000_000, 1, 3000, { status: 'TIMEOUT', timedOut: true, exact: false }),
      ]),
    );
    expect(stateOf(rows, '1e6: end to end ≥ 30×')).toBe('not measured');
    expect(stateOf(rows, 'from the smallest to the largest size')).toBe('not measured');
  });

  it('when p99 is over a second or a probe is lost, then the latency target is not met', () => {
    const slow = service(100_000, 1, 4000);
    const lost = service(1_000_000, 1, 4000);
    expect(stateOf(evaluateTargets(results([slow, lost])), 'p99')).toBe('met');
    if (slow.latency) slow.latency.p99Ms = 1500;
    expect(stateOf(evaluateTargets(results([slow, lost])), 'p99')).toBe('not met');
    if (slow.latency) slow.latency.p99Ms = 600;
    if (lost.latency) lost.latency.received = 99;
    expect(stateOf(evaluateTargets(results([slow, lost])), 'p99')).toBe('not met');
  });

  it('when memory grows with the points, then the RSS and Redis targets are not met', () => {
    const small = service(100_000, 1, 4000);
    const large = service(1_000_000, 1, 4000, {
      workerPeakRssBytes: [400 * MB],
      redis: { usedMemoryBytes: 0, runKeysBytes: 10 * MB, runKeys: 1, byKind: {} },
    });
    const rows = evaluateTargets(results([small, large]));
    expect(stateOf(rows, 'from the smallest')).toBe('met');
    expect(stateOf(rows, 'API and worker peak RSS')).toBe('not met');
    expect(stateOf(rows, 'Redis memory bounded')).toBe('not met');
  });

  it('when reads were fast among fewer than 1e6 records, then the history target is not measured; slow ones are not met', () => {
    const reads = {
      key: 'bench/0',
      historyRecords: 100_000,
      statsRequests: 200,
      historyRequests: 200,
      statsP50Ms: 2,
      statsP95Ms: 4,
      historyP50Ms: 20,
      historyP95Ms: 40,
      statsError: null,
      historyError: null,
    };
    const fast = evaluateTargets(results([service(100_000, 1, 4000, { reads })]));
    expect(stateOf(fast, 'history')).toBe('not measured');
    expect(stateOf(fast, 'stats of one key')).toBe('met');
    const timedOut = evaluateTargets(
      results([service(100_000, 1, 4000, { reads: { ...reads, historyRequests: 0, historyError: 'timed out' } })]),
    );
    expect(stateOf(timedOut, 'history')).toBe('not met');
  });
});

describe('issue 9 targets: the keys dimension', () => {
  const reads = (statsP95Ms: number) => ({
    key: 'bench/0',
    historyRecords: 100_000,
    statsRequests: 200,
    historyRequests: 200,
    statsP50Ms: statsP95Ms / 2,
    statsP95Ms,
    historyP50Ms: 5,
    historyP95Ms: 9,
    statsError: null,
    historyError: null,
  });
  const atKeys = (keys: number, pointsPerSecond: number, statsP95Ms: number): ServiceRun =>
    service(100_000, 1, pointsPerSecond, { keys, latency: null, reads: reads(statsP95Ms) });

  it('when 10,000 keys run at 60% and 100,000 keys at 20% of the 100-key rate, then the first is met and the second not', () => {
    const rows = evaluateTargets(
      results([service(100_000, 1, 30_000), atKeys(100, 20_000, 5), atKeys(10_000, 12_000, 8), atKeys(100_000, 4_000, 18)]),
    );
    expect(stateOf(rows, '10,000 keys: end to end ≥ 50%')).toBe('met');
    expect(rows.find((row) => row.target.startsWith('10,000 keys'))?.measured).toBe(
      '60%: 12,000 points/s at 10,000 keys vs 20,000 points/s at 100 keys',
    );
    expect(stateOf(rows, '100,000 keys: end to end ≥ 25%')).toBe('not met');
    expect(stateOf(rows, 'stats of one key at 100,000 keys')).toBe('met');
  });

  it('when keys runs are in the results, then the sizes targets still compare only the sizes runs', () => {
    const rows = evaluateTargets(
      results([ceiling(100_000, 5000, 16), naive(100), service(100_000, 1, 4000), atKeys(100, 40_000, 5)], [100_000]),
    );
    expect(rows.find((row) => row.target.startsWith('1e5: end to end ≥ 50%'))?.measured).toMatch(/^80%: 4,000 points\/s/);
  });

  it('when stats at 100,000 keys are slower than 20 ms and than 3× the 100-key figure, then that target is not met', () => {
    const rows = evaluateTargets(results([atKeys(100, 20_000, 5), atKeys(100_000, 10_000, 25)]));
    expect(stateOf(rows, 'stats of one key at 100,000 keys')).toBe('not met');
    const slowBase = evaluateTargets(results([atKeys(100, 20_000, 10), atKeys(100_000, 10_000, 25)]));
    expect(stateOf(slowBase, 'stats of one key at 100,000 keys')).toBe('met');
  });

  it('when the docs are rendered, then the keys table shows each count with its ceiling split, rate and reads, and the chart leaves them out', () => {
    const data = results(
      [
        ceiling(100_000, 5000, 16),
        service(100_000, 1, 4000),
        { ...ceiling(100_000, 9000, 16), keys: 10_000, writeSeconds: { statistics: 1.2, series: 2, history: 4.5 } },
        atKeys(10_000, 7_000, 8),
      ],
      [100_000],
    );
    data.settings.keyCounts = [10_000];
    data.settings.keyPoints = 100_000;
    const markdown = renderMarkdown(data, 'bench/results/x.json', 'findings');
    expect(markdown).toContain('| 10,000 | 9,000 (EXACT) | 1.2 / 2.0 / 4.5 | 7,000 (EXACT) | 8.0 ms | 9.0 ms | – |');
    expect(renderSvg(data)).not.toContain('10,000 keys');
  });

  it('when the sizes runs read among few keys and a keys run among 10,000, then the series target is judged on the latter', () => {
    const few = { ...reads(5), keys: 100, seriesRequests: 50, seriesP50Ms: 1, seriesP95Ms: 2, seriesError: null };
    const many = { ...reads(8), keys: 10_000, seriesRequests: 50, seriesP50Ms: 2, seriesP95Ms: 3, seriesError: null };
    const rows = evaluateTargets(
      results(
        [service(100_000, 1, 4000, { reads: few }), service(100_000, 1, 3000, { keys: 10_000, latency: null, reads: many })],
        [100_000],
      ),
    );
    expect(rows.find((row) => row.target.startsWith('series'))).toMatchObject({
      state: 'met',
      measured: '3.0 ms among 10,000 keys (50 requests)',
    });
  });

  it('when the keys runs are missing, then their targets are not measured', () => {
    const rows = evaluateTargets(results([service(100_000, 1, 4000)]));
    expect(stateOf(rows, '10,000 keys')).toBe('not measured');
    expect(stateOf(rows, 'stats of one key at 100,000 keys')).toBe('not measured');
  });

  it('when --key-counts is given, then those counts run on --key-points points; 0 and --smoke run none', () => {
    expect(parseBenchOptions([])).toMatchObject({ keyCounts: [100, 10_000, 100_000], keyPoints: 100_000 });
    expect(parseBenchOptions(['--key-counts', '1e4,100', '--key-points', '2e4'])).toMatchObject({
      keyCounts: [100, 10_000],
      keyPoints: 20_000,
    });
    expect(parseBenchOptions(['--key-counts', '0'])?.keyCounts).toEqual([]);
    expect(parseBenchOptions(['--smoke'])?.keyCounts).toEqual([]);
  });
});

describe('docs/BENCHMARKS.md', () => {
  it('when the docs are regenerated, then the hand-written findings are kept and every figure names the store', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-docs-'));
    const file = path.join(dir, 'BENCHMARKS.md');
    const data = results([ceiling(100_000, 1000), naive(100), service(100_000, 1, 4000)], [100_000]);
    fs.writeFileSync(file, renderMarkdown(data, 'bench/results/x.json', 'History is slow because FerretDB sorts in Go.'));
    const again = renderMarkdown(data, 'bench/results/x.json', readFindings(file));
    expect(again).toContain(`${FINDINGS_START}\nHistory is slow because FerretDB sorts in Go.\n${FINDINGS_END}`);
    expect(again).toContain('end to end, points/s (FerretDB)');
    expect(again).toContain('FerretDB v1.24.2 (SQLite backend)');
    fs.rmSync(dir, { recursive: true });
  });

  it('when there is no earlier file, then the findings section holds a placeholder to fill in', () => {
    expect(readFindings(path.join(os.tmpdir(), 'no-such-benchmarks.md'))).toMatch(/by hand/);
  });

  it('when a run was cut short, then its bar is hatched and marked', () => {
    const svg = renderSvg(results([service(100_000, 1, 4000, { status: 'TIMEOUT' })], [100_000]));
    expect(svg).toContain('url(#partial)');
    expect(svg).toContain('4,000*');
  });
});
