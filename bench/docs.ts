import fs from 'node:fs';
import path from 'node:path';
import { formatNumber } from '../load-test';
import { contenderLabel, evaluateTargets, markdownTable, sizeLabel } from './report';
import { isSizeRun, keysServiceRun, sizeServiceRuns, type BenchResults, type BenchRun, type CeilingRun } from './results-file';

export const FINDINGS_START = '<!-- findings:start (written by hand; kept when npm run bench regenerates this file) -->';
export const FINDINGS_END = '<!-- findings:end -->';
const DEFAULT_FINDINGS = '_Where the time goes, what was changed and what each change did: to be written by hand._';
const GIB = 1024 ** 3;

/** The hand-written findings of an existing BENCHMARKS.md, or a placeholder. */
export function readFindings(markdownPath: string): string {
  if (!fs.existsSync(markdownPath)) return DEFAULT_FINDINGS;
  const text = fs.readFileSync(markdownPath, 'utf8');
  const start = text.indexOf(FINDINGS_START);
  const end = text.indexOf(FINDINGS_END);
  if (start < 0 || end < start) return DEFAULT_FINDINGS;
  return text.slice(start + FINDINGS_START.length, end).trim() || DEFAULT_FINDINGS;
}

function seconds(value: number): string {
  return value >= 60 ? `${Math.floor(value / 60)} min ${Math.round(value % 60)} s` : `${value.toFixed(1)} s`;
}

function readsSection(results: BenchResults): string[] {
  const run = sizeServiceRuns(results).find((candidate) => candidate.reads !== null);
  const reads = run?.reads;
  if (!run || !reads) return [];
  const ms = (value: number | null): string => (value === null ? '–' : `${value.toFixed(1)} ms`);
  const stopped = (error: string | null): string => (error ? ` (then a request failed: ${error})` : '');
  return [
    `Reads on the running API after the ${sizeLabel(run.size)} run with ${run.workers} worker(s), one request at a time, key \`${reads.key}\`, ` +
      `${formatNumber(reads.historyRecords)} records in the database (${results.store.label}):`,
    '',
    '| request | requests | p50 | p95 |',
    '| --- | --- | --- | --- |',
    `| \`GET /api/data/stats/:key\` | ${reads.statsRequests}${stopped(reads.statsError)} | ${ms(reads.statsP50Ms)} | ${ms(reads.statsP95Ms)} |`,
    `| \`GET /api/data/history?key=…&limit=100\` | ${reads.historyRequests}${stopped(reads.historyError)} | ${ms(reads.historyP50Ms)} | ${ms(reads.historyP95Ms)} |`,
    '',
  ];
}

function redisSection(results: BenchResults): string[] {
  const runs = sizeServiceRuns(results).filter((run) => run.redis !== null);
  const last = runs[runs.length - 1];
  if (!last?.redis) return [];
  const rows = Object.entries(last.redis.byKind)
    .sort(([, a], [, b]) => b.bytes - a.bytes)
    .map(([kind, { keys, bytes }]) => `| ${kind} | ${formatNumber(keys)} | ${formatNumber(bytes / 1024)} |`);
  return [
    `What the ${sizeLabel(last.size)} run with ${last.workers} worker(s) left in Redis (its own keys, \`MEMORY USAGE\`):`,
    '',
    '| keys | count | KiB |',
    '| --- | --- | --- |',
    ...rows,
    '',
  ];
}

/** The keys dimension: per key count, the ceiling (with where its time went), the service, and the reads. */
function keysSection(results: BenchResults): string[] {
  const counts = results.settings.keyCounts ?? [];
  if (counts.length === 0) return [];
  const ms = (value: number | null | undefined): string => (value === null || value === undefined ? '–' : `${value.toFixed(1)} ms`);
  const rows = counts.map((keys) => {
    const ceiling = results.runs.find((run): run is CeilingRun => run.contender === 'ceiling' && run.keys === keys);
    const service = keysServiceRun(results, keys);
    const spent = ceiling?.writeSeconds;
    const split = spent ? `${spent.statistics.toFixed(1)} / ${spent.series.toFixed(1)} / ${spent.history.toFixed(1)}` : '–';
    const reads = service?.reads;
    const rate = (run: BenchRun | undefined): string => (run ? `${formatNumber(run.pointsPerSecond)} (${run.status})` : 'not run');
    return `| ${formatNumber(keys)} | ${rate(ceiling)} | ${split} | ${rate(service)} | ${ms(reads?.statsP95Ms)} | ${ms(reads?.historyP95Ms)} | ${ms(reads?.seriesP95Ms)} |`;
  });
  return [
    '## Keys',
    '',
    `${sizeLabel(results.settings.keyPoints ?? 0)} points over each number of keys, one worker, a fresh database each; the reads after each run, one request at a time (${results.store.label}):`,
    '',
    '| keys | storage ceiling, points/s | ceiling seconds in statistics / series / history | this service, points/s | stats p95 | history p95 | series p95 |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
  ];
}

function ceilingCommands(results: BenchResults): string {
  const largest = Math.max(...results.settings.sizes);
  const runs = results.runs.filter((run): run is CeilingRun => run.contender === 'ceiling' && isSizeRun(run) && run.size === largest);
  const parts = runs.map((run) => {
    const commands = Object.entries(run.commandsPerJob).map(([name, count]) => `${count.toFixed(2)} \`${name}\``);
    const sent = run.per1000Points;
    const per1000 = sent
      ? ` (per 1,000 points: ${sent.commands.toFixed(2)} commands, ${sent.documents.toFixed(0)} documents, ${(sent.bytes / 1024).toFixed(0)} KiB)`
      : '';
    return `${run.jobsPerWrite} per write: ${commands.join(', ')}${per1000}`;
  });
  return parts.length > 0 ? ` Commands sent per job at ${sizeLabel(largest)}: ${parts.join('; ')}.` : '';
}

/** docs/BENCHMARKS.md, generated from one results file; `findings` is carried over by hand. */
export function renderMarkdown(results: BenchResults, resultsPath: string, findings: string): string {
  const { machine, store, settings } = results;
  const service = Object.entries(settings.service)
    .map(([name, value]) => `${name}=${value}`)
    .join(', ');
  const targets = evaluateTargets(results);
  const lines = [
    '# Benchmarks',
    '',
    `<!-- Generated by \`npm run bench\` from ${resultsPath}; regenerate with \`npm run bench -- --report ${resultsPath}\`. Edit only the Findings section. -->`,
    '',
    `Every figure here was measured on **${store.label}** as the store (users run MongoDB, which is faster for the same work), ` +
      `Redis ${results.redis.version}, on ${results.startedAt.slice(0, 10)}.`,
    '',
    `- Machine: ${machine.cpu}, ${machine.cores} cores, ${(machine.memoryBytes / GIB).toFixed(0)} GiB RAM, ${machine.os}; Node ${machine.node}.`,
    `- Command: \`${results.command}\` (${seconds(results.totalSeconds)} in all, status ${results.status}).`,
    `- Data: ${settings.sizes.map(sizeLabel).join(' and ')} points over ${settings.keys} keys, integer values, so every total is known exactly; ` +
      `${formatNumber(settings.batch)} points per request, ${settings.concurrency} requests in flight, keep-alive.`,
    `- Service settings: ${service}.`,
    '',
    '## Results',
    '',
    markdownTable(results),
    '',
    '![Points per second, end to end, per contender and size](benchmarks.svg)',
    '',
    ...readsSection(results),
    ...redisSection(results),
    ...keysSection(results),
    '## Targets',
    '',
    `Measured on ${store.label}.`,
    '',
    '| target | measured | |',
    '| --- | --- | --- |',
    ...targets.map((row) => `| ${row.target} | ${row.measured.replace(/\|/g, '\\|')} | **${row.state}** |`),
    '',
    '## Phase timings',
    '',
    '| phase | seconds |',
    '| --- | --- |',
    ...results.phases.map((phase) => `| ${phase.name} | ${phase.seconds.toFixed(1)} |`),
    '',
    '## How it is measured',
    '',
    '- **Storage ceiling**: the same points, cut into the same jobs as the API cuts them (requests of ' +
      `${formatNumber(settings.batch)} points, JOB_CHUNK_SIZE chunks), written through the worker's own group commit ` +
      "(WriteCombiner) and the service's repositories (statistics and rollups under a fresh lane sequence per job, " +
      'history, processed records), one write after the other: no HTTP, queue, claims, batch status or publishes, and ' +
      'no concurrency. The time of the writes only. ' +
      `Run with ${settings.ceilingJobs.join(' and ')} job(s) per write: one job at a time, and as many as one worker writes ` +
      'together under load (its group commit, WORKER_CONCURRENCY jobs); the targets compare with the faster.' +
      ceilingCommands(results),
    '- **Naive baseline** (`bench/naive/`): the original design, one Bull job per point; per job a Mongoose `findOneAndUpdate` ' +
      '`$inc` upsert, the average recomputed and saved, one history insert and one publish; concurrency 4. It cannot process ' +
      `the full data in the time, so it runs on the first ${formatNumber(settings.naiveSample)} points, once for all sizes, and ` +
      'its count, sum, min and max are checked for that sample. On FerretDB its concurrent `$inc` upserts can lose counts: ' +
      'a run that processed every point but counted fewer is INEXACT, its rate (points processed per second) still stands.',
    '- **This service**: `npm run build`, then `node dist/server.js` and N × `node dist/worker.js` with a fresh database and ' +
      'queue, fed over HTTP by the load generator (`load-test.ts`) until every point is counted and every total checked. ' +
      'Accepted: points/s until the last 202; end to end: until the stats count every point.',
    `- **Latency**: after each service run, ${settings.latencySeconds} s of open-loop requests at half the end-to-end rate ` +
      'that run reached, each carrying one point of its own probe key; a socket subscribes to it just before the POST and ' +
      'the time to its `stats:update` is the latency. The phase’s own totals must be exact too.',
    '- **Memory**: peak RSS (VmHWM) of each process at the end of its run; Redis `used_memory` of the whole server after ' +
      'the run, and the bytes held by the run’s own keys (`MEMORY USAGE`).',
    `- A throughput phase that passes its time limit (${settings.phaseTimeoutSeconds} s, or less to stay within the ` +
      `${seconds(settings.budgetSeconds)} budget) stops: TIMEOUT, with the rate reached so far; its latency phase runs on the ` +
      'same processes after the backlog is dropped. A run whose totals are not exact is INVALID and the command exits non-zero.',
    '',
    '## Findings',
    '',
    FINDINGS_START,
    findings,
    FINDINGS_END,
    '',
  ];
  return lines.join('\n');
}

// Greys for the ceilings, red for the naive baseline, colours for the service's runs.
const PALETTES: Record<BenchRun['contender'], string[]> = {
  ceiling: ['#7f7f7f', '#b5b5b5', '#5a5a5a'],
  naive: ['#d62728'],
  service: ['#1f77b4', '#2ca02c', '#9467bd', '#17becf'],
};

/** One colour per series, by its contender and its order among that contender's series. */
function seriesColors(runs: readonly BenchRun[], seriesOf: (run: BenchRun) => string): Map<string, string> {
  const colors = new Map<string, string>();
  const used: Record<string, number> = {};
  for (const run of runs) {
    const name = seriesOf(run);
    if (colors.has(name)) continue;
    const palette = PALETTES[run.contender];
    const index = used[run.contender] ?? 0;
    used[run.contender] = index + 1;
    colors.set(name, palette[index % palette.length] ?? '#333333');
  }
  return colors;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** The axis top: a round number at or above `value`, close enough that the bars fill most of the plot. */
function niceCeiling(value: number): number {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  return [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10].map((step) => step * magnitude).find((candidate) => candidate >= value) ?? 10 * magnitude;
}

const round = (n: number): number => Math.round(n * 10) / 10;

/** docs/benchmarks.svg: points/s end to end, one group of bars per size, one bar per contender. */
export function renderSvg(results: BenchResults): string {
  const seriesOf = (run: BenchRun): string => contenderLabel(run).replace(/ \(first .*\)$/, ' (sample)');
  // The chart is the sizes dimension; the keys dimension has its own table.
  const sizeRuns = results.runs.filter(isSizeRun);
  const colors = seriesColors(sizeRuns, seriesOf);
  const series = [...colors.keys()];
  const colorOf = (name: string): string => colors.get(name) ?? '#333333';
  const naive = results.runs.find((run) => run.contender === 'naive');
  const sizes = results.settings.sizes;
  const valueAt = (size: number, name: string): BenchRun | undefined =>
    // The naive baseline ran once, on a sample: the same bar stands in every group.
    name.startsWith('naive') ? naive : sizeRuns.find((run) => run.size === size && seriesOf(run) === name);
  const width = 820;
  const height = 420;
  const margin = { top: 56, right: 24, bottom: 96, left: 84 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const top = niceCeiling(Math.max(1, ...sizeRuns.map((run) => run.pointsPerSecond)));
  const y = (value: number): number => round(margin.top + plotHeight - (value / top) * plotHeight);
  const groupWidth = plotWidth / Math.max(1, sizes.length);
  const barWidth = round(Math.min(70, (groupWidth * 0.8) / Math.max(1, series.length)));
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    '<defs><pattern id="partial" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">' +
      '<rect width="6" height="6" fill="#ffffff"/><rect width="3" height="6" fill="#bbbbbb"/></pattern></defs>',
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">Points per second, end to end (higher is better)</text>`,
    `<text x="${width / 2}" y="40" text-anchor="middle" fill="#555555">${escapeXml(`${results.store.label}, Redis ${results.redis.version}, ${results.machine.cores} cores, ${results.startedAt.slice(0, 10)}`)}</text>`,
  ];
  for (let tick = 0; tick <= 5; tick += 1) {
    const value = (top / 5) * tick;
    parts.push(
      `<line x1="${margin.left}" x2="${width - margin.right}" y1="${y(value)}" y2="${y(value)}" stroke="#e5e5e5"/>`,
      `<text x="${margin.left - 8}" y="${y(value) + 4}" text-anchor="end" fill="#555555">${formatNumber(value)}</text>`,
    );
  }
  sizes.forEach((size, group) => {
    const groupLeft = round(margin.left + group * groupWidth + (groupWidth - barWidth * series.length) / 2);
    series.forEach((name, index) => {
      const run = valueAt(size, name);
      if (!run) return;
      const x = round(groupLeft + index * barWidth);
      const value = run.pointsPerSecond;
      const partial = run.status !== 'EXACT' && run.status !== 'INEXACT';
      const fill = partial ? 'url(#partial)' : colorOf(name);
      const stroke = colorOf(name);
      parts.push(
        `<rect x="${x + 2}" y="${y(value)}" width="${barWidth - 4}" height="${Math.max(0, y(0) - y(value))}" fill="${fill}" stroke="${stroke}"/>`,
        `<text x="${x + barWidth / 2}" y="${y(value) - 4}" text-anchor="middle">${formatNumber(value)}${partial ? '*' : ''}</text>`,
      );
    });
    parts.push(
      `<text x="${margin.left + group * groupWidth + groupWidth / 2}" y="${y(0) + 18}" text-anchor="middle" font-weight="bold">${sizeLabel(size)} points</text>`,
    );
  });
  parts.push(`<line x1="${margin.left}" x2="${width - margin.right}" y1="${y(0)}" y2="${y(0)}" stroke="#333333"/>`);
  series.forEach((name, index) => {
    const x = margin.left + (index % 3) * 240;
    const rowY = height - 52 + Math.floor(index / 3) * 18;
    parts.push(
      `<rect x="${x}" y="${rowY - 10}" width="12" height="12" fill="${colorOf(name)}"/>`,
      `<text x="${x + 18}" y="${rowY}">${escapeXml(name)}</text>`,
    );
  });
  parts.push(
    `<text x="${margin.left}" y="${height - 8}" fill="#555555">* cut short (TIMEOUT) or not exact: the rate so far, hatched.</text>`,
  );
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** Writes docs/BENCHMARKS.md (keeping its Findings, formatted as `npm run lint` checks it) and docs/benchmarks.svg. */
export async function writeDocs(results: BenchResults, resultsPath: string, root: string): Promise<{ markdown: string; svg: string }> {
  const markdown = path.join(root, 'docs', 'BENCHMARKS.md');
  const svg = path.join(root, 'docs', 'benchmarks.svg');
  const relative = path.relative(root, resultsPath);
  const text = renderMarkdown(results, relative, readFindings(markdown));
  // Loaded only here: Prettier's module starts a dynamic import when loaded, which Jest (the unit tests of this file) refuses.
  const prettier = await import('prettier');
  fs.writeFileSync(markdown, await prettier.format(text, { ...(await prettier.resolveConfig(markdown)), filepath: markdown }));
  fs.writeFileSync(svg, renderSvg(results));
  return { markdown, svg };
}
