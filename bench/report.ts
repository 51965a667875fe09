import { formatNumber } from '../load-test';
import {
  isSizeRun,
  keysOf,
  keysServiceRun,
  sizeServiceRuns,
  type BenchResults,
  type BenchRun,
  type CeilingRun,
  type ServiceRun,
} from './results-file';
import type { ReadsResult } from './service-run';

const MB = 1024 * 1024;
const formatMb = (bytes: number | null | undefined): string =>
  bytes === null || bytes === undefined ? '?' : `${Math.round(bytes / MB)} MB`;
const formatMs = (ms: number | null | undefined): string => {
  if (ms === null || ms === undefined) return '–';
  return ms >= 100 ? formatNumber(ms) : ms.toFixed(1);
};

/** 100000 → "1e5" style labels for sizes that are powers of ten, else the number. */
export function sizeLabel(size: number): string {
  const exponent = Math.log10(size);
  return Number.isInteger(exponent) && exponent >= 3 ? `1e${exponent}` : formatNumber(size);
}

export function contenderLabel(run: BenchRun): string {
  const keys = keysOf(run);
  const over = keys === undefined ? '' : `, ${formatNumber(keys)} keys`;
  if (run.contender === 'ceiling') return `storage ceiling, ${run.jobsPerWrite} job${run.jobsPerWrite === 1 ? '' : 's'} per write${over}`;
  if (run.contender === 'naive') return `naive baseline (first ${formatNumber(run.points)} points)`;
  return `this service, ${run.workers} worker${run.workers === 1 ? '' : 's'}${over}`;
}

function countedText(run: BenchRun): string {
  const counted = run.contender === 'ceiling' ? run.points : run.countedPoints;
  const total = run.contender === 'naive' ? run.points : run.size;
  return counted === total ? formatNumber(total) : `${formatNumber(counted)} of ${formatNumber(total)}`;
}

function rateText(run: BenchRun): string {
  if (run.pointsPerSecond <= 0) return '–';
  return run.status === 'TIMEOUT' ? `${formatNumber(run.pointsPerSecond)} (so far)` : formatNumber(run.pointsPerSecond);
}

function latencyText(run: BenchRun): string {
  if (run.contender !== 'service' || !run.latency) return '–';
  const { p50Ms, p99Ms, received, probes } = run.latency;
  const missing = received < probes ? `, ${probes - received} lost` : '';
  return `${formatMs(p50Ms)} / ${formatMs(p99Ms)} ms (${received} probes${missing})`;
}

function rssText(run: BenchRun): string {
  if (run.contender === 'ceiling') return '–';
  if (run.contender === 'naive') return `${formatMb(run.apiPeakRssBytes)} / ${formatMb(run.workerPeakRssBytes)} (under tsx)`;
  return `${formatMb(run.apiPeakRssBytes)} / ${run.workerPeakRssBytes.map(formatMb).join(', ') || '?'}`;
}

function redisText(run: BenchRun): string {
  if (run.contender === 'ceiling' || !run.redis) return '–';
  const peak = run.contender === 'service' && run.redisUsedMemory ? `, peak ${formatMb(run.redisUsedMemory.peakBytes)}` : '';
  return `${formatMb(run.redis.usedMemoryBytes)}${peak} (run's keys ${(run.redis.runKeysBytes / MB).toFixed(1)} MB)`;
}

function acceptedText(run: BenchRun): string {
  return run.contender === 'ceiling' ? '–' : formatNumber(run.acceptedPointsPerSecond);
}

export interface TableRow {
  contender: string;
  size: string;
  counted: string;
  seconds: string;
  endToEnd: string;
  accepted: string;
  latency: string;
  rss: string;
  redis: string;
  totals: string;
}

export function tableRows(results: BenchResults): TableRow[] {
  return results.runs.map((run) => ({
    contender: contenderLabel(run),
    size: sizeLabel(run.size),
    counted: countedText(run),
    seconds: run.seconds.toFixed(1),
    endToEnd: rateText(run),
    accepted: acceptedText(run),
    latency: latencyText(run),
    rss: rssText(run),
    redis: redisText(run),
    totals: run.status,
  }));
}

const HEADERS: TableRow = {
  contender: 'contender',
  size: 'data',
  counted: 'points counted',
  seconds: 'seconds',
  endToEnd: 'end to end, points/s',
  accepted: 'accepted at API, points/s',
  latency: 'POST → stats:update p50 / p99',
  rss: 'peak RSS API / worker(s)',
  redis: 'Redis used_memory after the run',
  totals: 'totals',
};

const COLUMNS = Object.keys(HEADERS) as (keyof TableRow)[];

/** The plain-text table for the terminal. */
export function formatTable(results: BenchResults): string {
  const rows = [HEADERS, ...tableRows(results)];
  const widths = COLUMNS.map((column) => Math.max(...rows.map((row) => row[column].length)));
  const line = (row: TableRow): string =>
    COLUMNS.map((column, index) => row[column].padEnd(widths[index] ?? 0))
      .join('  ')
      .trimEnd();
  const lines = [line(HEADERS), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.slice(1).map(line)];
  return `All figures measured on ${results.store.label}, Redis ${results.redis.version}.\n${lines.join('\n')}\n`;
}

export function markdownTable(results: BenchResults): string {
  const headers: TableRow = {
    ...HEADERS,
    endToEnd: `end to end, points/s (${results.store.name})`,
    accepted: `accepted at API, points/s (${results.store.name})`,
    latency: `POST → stats:update p50 / p99 (${results.store.name})`,
  };
  const escape = (text: string): string => text.replace(/\|/g, '\\|');
  const line = (row: TableRow): string => `| ${COLUMNS.map((column) => escape(row[column])).join(' | ')} |`;
  return [line(headers), `| ${COLUMNS.map(() => '---').join(' | ')} |`, ...tableRows(results).map(line)].join('\n');
}

export type TargetState = 'met' | 'not met' | 'not measured';

export interface TargetRow {
  target: string;
  measured: string;
  state: TargetState;
}

const exactRuns = <T extends BenchRun>(runs: readonly T[]): T[] => runs.filter((run) => run.status === 'EXACT');

function bestService(results: BenchResults, size: number): ServiceRun | undefined {
  const runs = exactRuns(sizeServiceRuns(results).filter((run) => run.size === size));
  return runs.sort((a, b) => b.pointsPerSecond - a.pointsPerSecond)[0];
}

const allOf = (states: TargetState[]): TargetState => {
  if (states.length === 0 || states.includes('not measured')) return 'not measured';
  return states.every((state) => state === 'met') ? 'met' : 'not met';
};

function ratioTargets(results: BenchResults): TargetRow[] {
  const rows: TargetRow[] = [];
  const naive = results.runs.find((run) => run.contender === 'naive');
  for (const size of results.settings.sizes) {
    const service = bestService(results, size);
    // The ceiling is the best the store did with these points, whichever way the jobs were grouped.
    const ceilings = results.runs.filter((run): run is CeilingRun => run.contender === 'ceiling' && isSizeRun(run) && run.size === size);
    const ceiling = exactRuns(ceilings).sort((a, b) => b.pointsPerSecond - a.pointsPerSecond)[0] ?? ceilings[0];
    const label = sizeLabel(size);
    if (!service) {
      rows.push({
        target: `${label}: end to end ≥ 30× the naive baseline`,
        measured: 'no service run at this size completed',
        state: 'not measured',
      });
      rows.push({
        target: `${label}: end to end ≥ 50% of the storage ceiling`,
        measured: 'no service run at this size completed',
        state: 'not measured',
      });
      continue;
    }
    const serviceText = `${formatNumber(service.pointsPerSecond)} points/s (${service.workers} worker${service.workers === 1 ? '' : 's'})`;
    if (naive?.status === 'EXACT' || naive?.status === 'INEXACT') {
      const ratio = service.pointsPerSecond / naive.pointsPerSecond;
      const lost = naive.status === 'INEXACT' ? `; it lost ${formatNumber(naive.points - naive.countedPoints)} count(s)` : '';
      rows.push({
        target: `${label}: end to end ≥ 30× the naive baseline`,
        measured: `${ratio.toFixed(1)}×: ${serviceText} vs ${formatNumber(naive.pointsPerSecond)} points/s (naive, first ${formatNumber(naive.points)} points${lost})`,
        state: ratio >= 30 ? 'met' : 'not met',
      });
    } else {
      rows.push({
        target: `${label}: end to end ≥ 30× the naive baseline`,
        measured: 'the naive run did not complete',
        state: 'not measured',
      });
    }
    if (ceiling?.status === 'EXACT') {
      const share = service.pointsPerSecond / ceiling.pointsPerSecond;
      rows.push({
        target: `${label}: end to end ≥ 50% of the storage ceiling`,
        measured: `${Math.round(share * 100)}%: ${serviceText} vs ${formatNumber(ceiling.pointsPerSecond)} points/s (${contenderLabel(ceiling)})`,
        state: share >= 0.5 ? 'met' : 'not met',
      });
    } else {
      rows.push({
        target: `${label}: end to end ≥ 50% of the storage ceiling`,
        measured: ceiling ? `ceiling ${ceiling.status}: ${formatNumber(ceiling.pointsPerSecond)} points/s so far` : 'no ceiling run',
        state: 'not measured',
      });
    }
  }
  return rows;
}

function latencyTarget(results: BenchResults): TargetRow {
  const runs = sizeServiceRuns(results).filter((run) => run.latency !== null);
  const parts = runs.map((run) => {
    const latency = run.latency;
    const p99 = latency?.p99Ms ?? null;
    const complete = latency !== null && latency.received === latency.probes;
    const state: TargetState = p99 === null ? 'not measured' : p99 <= 1000 && complete ? 'met' : 'not met';
    const lost = latency && !complete ? `, ${latency.probes - latency.received} of ${latency.probes} probes lost` : '';
    return { state, text: `${sizeLabel(run.size)} ${run.workers}w: ${formatMs(p99)} ms${lost}` };
  });
  return {
    target: 'p99 POST → socket stats:update ≤ 1 s at half the maximum rate',
    measured: parts.map((part) => part.text).join('; ') || 'no latency phase ran',
    state: allOf(parts.map((part) => part.state)),
  };
}

/** Compares the smallest and the largest size, per worker count. */
function scalingTargets(results: BenchResults): TargetRow[] {
  const sizes = results.settings.sizes;
  const small = sizes[0];
  const large = sizes[sizes.length - 1];
  const notMeasured = (target: string, why: string): TargetRow => ({ target, measured: why, state: 'not measured' });
  const targets = {
    throughput: 'from the smallest to the largest size: throughput within 20%',
    rss: 'API and worker peak RSS flat (largest size ≤ 1.2× the smallest)',
    redis: "Redis memory bounded (the run's keys after the largest size ≤ 2× those after the smallest + 1 MB)",
  };
  if (small === undefined || large === undefined || small === large) {
    return Object.values(targets).map((target) => notMeasured(target, 'only one size was run'));
  }
  const throughput: { state: TargetState; text: string }[] = [];
  const rss: { state: TargetState; text: string }[] = [];
  const redis: { state: TargetState; text: string }[] = [];
  for (const workers of results.settings.workers) {
    const at = (size: number): ServiceRun | undefined =>
      sizeServiceRuns(results).find((run) => run.size === size && run.workers === workers);
    const a = at(small);
    const b = at(large);
    const label = `${workers}w`;
    if (a?.status !== 'EXACT' || b?.status !== 'EXACT') {
      const why = `${label}: ${sizeLabel(small)} ${a?.status ?? 'not run'}, ${sizeLabel(large)} ${b?.status ?? 'not run'}`;
      throughput.push({ state: 'not measured', text: why });
      rss.push({ state: 'not measured', text: why });
      redis.push({ state: 'not measured', text: why });
      continue;
    }
    const ratio = b.pointsPerSecond / a.pointsPerSecond;
    throughput.push({
      state: Math.abs(1 - ratio) <= 0.2 ? 'met' : 'not met',
      text: `${label}: ${formatNumber(a.pointsPerSecond)} → ${formatNumber(b.pointsPerSecond)} points/s (${Math.round((ratio - 1) * 100)}%)`,
    });
    const peak = (run: ServiceRun): number => Math.max(run.apiPeakRssBytes ?? 0, ...run.workerPeakRssBytes.map((bytes) => bytes ?? 0));
    const apiFlat = (b.apiPeakRssBytes ?? Infinity) <= 1.2 * (a.apiPeakRssBytes ?? 0);
    const workerFlat = peak(b) <= 1.2 * peak(a);
    rss.push({
      state: apiFlat && workerFlat ? 'met' : 'not met',
      text: `${label}: API ${formatMb(a.apiPeakRssBytes)} → ${formatMb(b.apiPeakRssBytes)}, largest ${formatMb(peak(a))} → ${formatMb(peak(b))}`,
    });
    const keysA = a.redis?.runKeysBytes ?? 0;
    const keysB = b.redis?.runKeysBytes ?? Infinity;
    redis.push({
      state: keysB <= 2 * keysA + MB ? 'met' : 'not met',
      text: `${label}: ${(keysA / MB).toFixed(1)} → ${(keysB / MB).toFixed(1)} MB`,
    });
  }
  return [
    {
      target: targets.throughput,
      measured: throughput.map((part) => part.text).join('; '),
      state: allOf(throughput.map((part) => part.state)),
    },
    { target: targets.rss, measured: rss.map((part) => part.text).join('; '), state: allOf(rss.map((part) => part.state)) },
    { target: targets.redis, measured: redis.map((part) => part.text).join('; '), state: allOf(redis.map((part) => part.state)) },
  ];
}

function readTargets(results: BenchResults): TargetRow[] {
  const reads = sizeServiceRuns(results).find((candidate) => candidate.reads !== null)?.reads;
  const historyTarget = 'history: newest 100 records of one key among 1e6 records over 100 keys, p95 < 100 ms';
  const statsTarget = 'stats of one key p95 < 10 ms';
  const seriesTarget = 'series: one key, 24 h at 1m, among 10,000 keys, p95 < 50 ms';
  if (!reads) {
    return [
      { target: historyTarget, measured: 'no read phase ran', state: 'not measured' },
      { target: statsTarget, measured: 'no read phase ran', state: 'not measured' },
      { target: seriesTarget, measured: 'no read phase ran', state: 'not measured' },
    ];
  }
  const among = `among ${formatNumber(reads.historyRecords)} records`;
  const measured = (p95: number | null, requests: number, error: string | null): string =>
    error ? `${requests} answered, then: ${error} (${among})` : `${formatMs(p95)} ms ${among} (${requests} requests)`;
  // A request that failed or timed out counts as slow: the phase stops at the first failure.
  const historyP95 = reads.historyError ? Infinity : (reads.historyP95Ms ?? Infinity);
  const statsP95 = reads.statsError ? Infinity : (reads.statsP95Ms ?? Infinity);
  return [
    {
      target: historyTarget,
      measured: measured(reads.historyP95Ms, reads.historyRequests, reads.historyError),
      // Fast among fewer records proves nothing about 1e6; slow among fewer is already a miss.
      state: historyP95 >= 100 ? 'not met' : reads.historyRecords >= 1_000_000 ? 'met' : 'not measured',
    },
    {
      target: statsTarget,
      measured: measured(reads.statsP95Ms, reads.statsRequests, reads.statsError),
      state: statsP95 < 10 ? 'met' : 'not met',
    },
    seriesRow(seriesReads(results) ?? reads, seriesTarget),
  ];
}

/** The reads among the most keys (the keys dimension's largest run, when it ran): the series target is about many keys. */
function seriesReads(results: BenchResults): ReadsResult | undefined {
  const all = results.runs.flatMap((run) => (run.contender === 'service' && run.reads?.keys !== undefined ? [run.reads] : []));
  return all.sort((a, b) => (b.keys ?? 0) - (a.keys ?? 0))[0];
}

function seriesRow(reads: ReadsResult, target: string): TargetRow {
  if (reads.seriesRequests === undefined || reads.keys === undefined) return { target, measured: 'not in this run', state: 'not measured' };
  const among = `among ${formatNumber(reads.keys)} keys`;
  const p95 = reads.seriesError ? Infinity : (reads.seriesP95Ms ?? Infinity);
  return {
    target,
    measured: reads.seriesError
      ? `${reads.seriesRequests} answered, then: ${reads.seriesError} (${among})`
      : `${formatMs(reads.seriesP95Ms ?? null)} ms ${among} (${reads.seriesRequests} requests)`,
    // As for history: fast among fewer keys proves nothing about 10,000.
    state: p95 >= 50 ? 'not met' : reads.keys >= 10_000 ? 'met' : 'not measured',
  };
}

/**
 * The keys dimension against its 100-key run: end-to-end rate at 10,000 keys ≥ 50% and at 100,000 keys ≥ 25%, and the
 * stats of one key at 100,000 keys p95 ≤ 20 ms or 3× its 100-key figure, whichever is larger.
 */
function keysTargets(results: BenchResults): TargetRow[] {
  const base = keysServiceRun(results, 100);
  const rows: TargetRow[] = [];
  const rateText = (run: ServiceRun): string => `${formatNumber(run.pointsPerSecond)} points/s at ${formatNumber(run.keys ?? 0)} keys`;
  for (const [keys, share] of [
    [10_000, 0.5],
    [100_000, 0.25],
  ] as const) {
    const target = `${formatNumber(keys)} keys: end to end ≥ ${share * 100}% of the rate at 100 keys (same points, one run)`;
    const run = keysServiceRun(results, keys);
    if (base?.status !== 'EXACT' || run?.status !== 'EXACT') {
      const why = `100 keys ${base?.status ?? 'not run'}, ${formatNumber(keys)} keys ${run?.status ?? 'not run'}`;
      rows.push({ target, measured: why, state: 'not measured' });
      continue;
    }
    const ratio = run.pointsPerSecond / base.pointsPerSecond;
    rows.push({
      target,
      measured: `${Math.round(ratio * 100)}%: ${rateText(run)} vs ${rateText(base)}`,
      state: ratio >= share ? 'met' : 'not met',
    });
  }
  const statsTarget = 'stats of one key at 100,000 keys: p95 ≤ 20 ms, or 3× its figure at 100 keys if larger';
  const large = keysServiceRun(results, 100_000)?.reads;
  const small = base?.reads;
  if (!large || !small || large.statsError || small.statsError || large.statsP95Ms === null || small.statsP95Ms === null) {
    rows.push({
      target: statsTarget,
      measured: large?.statsError ?? small?.statsError ?? 'no reads at 100 and 100,000 keys',
      state: 'not measured',
    });
  } else {
    const limit = Math.max(20, 3 * small.statsP95Ms);
    rows.push({
      target: statsTarget,
      measured: `${formatMs(large.statsP95Ms)} ms at 100,000 keys vs ${formatMs(small.statsP95Ms)} ms at 100 keys (limit ${formatMs(limit)} ms, ${large.statsRequests} requests)`,
      state: large.statsP95Ms <= limit ? 'met' : 'not met',
    });
  }
  return rows;
}

/** The targets of issues 4 and 9, each met, not met, or not measured (and why). */
export function evaluateTargets(results: BenchResults): TargetRow[] {
  return [...ratioTargets(results), latencyTarget(results), ...scalingTargets(results), ...readTargets(results), ...keysTargets(results)];
}

export function formatTargets(results: BenchResults): string {
  return evaluateTargets(results)
    .map((row) => `${row.state.padEnd(12)} ${row.target}: ${row.measured}`)
    .join('\n');
}

export function formatPhases(results: BenchResults): string {
  return results.phases.map((phase) => `${phase.seconds.toFixed(1).padStart(7)} s  ${phase.name}`).join('\n');
}
