/**
 * `npm run bench`: the storage ceiling, the naive baseline and this service on
 * the same data, with exact totals required (issue 4). See `--help` and
 * docs/BENCHMARKS.md.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { DEFAULT_MONGODB_URI, DEFAULT_REDIS_URL } from '../scripts/stack/endpoints';
import { ensureStack } from '../scripts/stack/services';
import { loadConfig, type Config } from '../src/config/config';
import { runCeiling } from './ceiling';
import { describe, secondsSince } from '../load-test';
import { log, newRunId, withoutDatabase, type BenchContext } from './common';
import { writeDocs } from './docs';
import { runNaive } from './naive-run';
import { commandOptions } from '../scripts/cli';
import { HELP, parseBenchOptions, type BenchOptions } from './options';
import { ROOT } from './processes';
import { redisVersion } from './redis-usage';
import { formatPhases, formatTable, formatTargets } from './report';
import {
  firstMismatches,
  naiveStatusOf,
  overallStatus,
  statusOf,
  type BenchResults,
  type BenchRun,
  type PhaseTiming,
} from './results-file';
import { runService } from './service-run';

// The least time a throughput phase gets, however little budget is left: below this a rate means nothing.
const MIN_PHASE_SECONDS = 20;
// What a service run needs besides its throughput and latency phases (start, teardown; measured 2-4 s).
const SERVICE_OVERHEAD_SECONDS = 5;
// The read phase's own caps (10 s of stats, 30 s of history) and a margin.
const READS_SECONDS = 45;
// The latency phase waits for its own points to be counted after its requests (under a second when healthy).
const LATENCY_TAIL_SECONDS = 5;
const DOCS_SECONDS = 5;
// A step's expected time is its size at the rate the same contender reached at the previous size, with this margin.
const ESTIMATE_MARGIN = 1.15;
// Service settings recorded with the results, when the service has them.
const SERVICE_SETTINGS = ['JOB_CHUNK_SIZE', 'WORKER_CONCURRENCY', 'AGGREGATE_SHARDS', 'MAX_QUEUE_BACKLOG'];

/** `keys` is set on the keys dimension's steps. */
type Step =
  | { kind: 'ceiling'; size: number; jobsPerWrite: number; keys?: number }
  | { kind: 'naive'; size: number }
  | { kind: 'service'; size: number; workers: number; reads: boolean; keys?: number };

/**
 * Every size's ceiling and service runs, smallest size first; the naive baseline once; reads after the largest run.
 * Then the keys dimension: per key count, a ceiling of one worker's group and a 1-worker service run with reads.
 */
function planSteps(options: BenchOptions, ceilingJobs: readonly number[], workerConcurrency: number): Step[] {
  const steps: Step[] = [];
  const largest = options.sizes[options.sizes.length - 1];
  options.sizes.forEach((size, index) => {
    for (const jobsPerWrite of ceilingJobs) steps.push({ kind: 'ceiling', size, jobsPerWrite });
    if (index === 0) steps.push({ kind: 'naive', size });
    options.workers.forEach((workers, workerIndex) => {
      const last = size === largest && workerIndex === options.workers.length - 1;
      steps.push({ kind: 'service', size, workers, reads: last && options.reads > 0 });
    });
  });
  for (const keys of options.keyCounts) {
    steps.push({ kind: 'ceiling', size: options.keyPoints, jobsPerWrite: workerConcurrency, keys });
    steps.push({ kind: 'service', size: options.keyPoints, workers: 1, reads: options.reads > 0, keys });
  }
  return steps;
}

/** What a step needs after its throughput phase. */
function tailSeconds(step: Step, options: BenchOptions): number {
  if (step.kind !== 'service') return 0;
  const latency = options.latencySeconds > 0 && step.keys === undefined ? options.latencySeconds + LATENCY_TAIL_SECONDS : 0;
  return SERVICE_OVERHEAD_SECONDS + latency + (step.reads ? READS_SECONDS : 0);
}

/** Which contender a step or a run is, for estimating one from the other. */
function contenderOf(item: Step | BenchRun): string {
  const kind = 'kind' in item ? item.kind : item.contender;
  const keys = 'keys' in item && item.keys !== undefined ? `-k${item.keys}` : '';
  if ('jobsPerWrite' in item) return `${kind}-${item.jobsPerWrite}${keys}`;
  return 'workers' in item ? `${kind}-${item.workers}${keys}` : kind;
}

/** Seconds the step's throughput phase should take, from the same contender's rate at a smaller size; null when unknown. */
function estimateSeconds(step: Step, runs: readonly BenchRun[]): number | null {
  const earlier = runs.filter((run) => contenderOf(run) === contenderOf(step) && run.pointsPerSecond > 0).pop();
  return earlier ? (step.size / earlier.pointsPerSecond) * ESTIMATE_MARGIN : null;
}

/**
 * When the step's throughput phase must stop. The budget left (after every
 * step's latency and read phases) is shared by expected time: a step whose
 * expected time is unknown (the first size) may take up to the phase limit,
 * and when the later steps are expected to fit, the current one gets all the
 * slack. When they do not, every step is cut in proportion, so each contender
 * is measured on the same share of its points.
 */
function deadlineFor(steps: readonly Step[], index: number, options: BenchOptions, budgetEnd: number, runs: readonly BenchRun[]): number {
  const step = steps[index] as Step;
  const later = steps.slice(index + 1);
  const tails = [step, ...later].reduce((total, each) => total + tailSeconds(each, options), DOCS_SECONDS);
  const left = (budgetEnd - performance.now()) / 1000 - tails;
  const own = estimateSeconds(step, runs) ?? options.phaseTimeoutSeconds;
  const others = later.reduce((total, each) => total + (estimateSeconds(each, runs) ?? MIN_PHASE_SECONDS), 0);
  const share = Math.max((left * own) / (own + others), left - others);
  return performance.now() + Math.max(MIN_PHASE_SECONDS, Math.min(options.phaseTimeoutSeconds, share)) * 1000;
}

/** By default one job per write (the plain ceiling) and as many as one worker runs at once (its group commit under load). */
function ceilingJobsOf(options: BenchOptions, config: Config): number[] {
  return options.ceilingJobs ?? [...new Set([1, config.WORKER_CONCURRENCY])];
}

function build(): void {
  const result = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.status !== 0) throw new Error(`npm run build failed:\n${result.stdout}${result.stderr}`);
}

/** FerretDB's backend from its command line (`--handler=sqlite`), when it runs on this machine. */
function ferretdbBackend(port: string): string {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let args: string[];
    try {
      args = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!args[0]?.endsWith('ferretdb') || !args.some((arg) => arg.startsWith('--listen-addr=') && arg.endsWith(`:${port}`))) continue;
    const handler = args.find((arg) => arg.startsWith('--handler='))?.slice('--handler='.length);
    if (handler === 'sqlite') return 'SQLite';
    if (handler === 'postgresql') return 'PostgreSQL';
    return handler ?? 'PostgreSQL';
  }
  return 'unknown';
}

async function describeStore(mongoBase: string): Promise<BenchResults['store']> {
  const client = await MongoClient.connect(mongoBase, { serverSelectionTimeoutMS: 5000 });
  try {
    const info = await client.db('admin').command({ buildInfo: 1 });
    const ferretdb: unknown = info.ferretdbVersion;
    if (typeof ferretdb === 'string') {
      const port = /:(\d+)$/.exec(mongoBase.replace(/\?.*$/, ''))?.[1] ?? '27017';
      const backend = ferretdbBackend(port);
      return { name: 'FerretDB', version: ferretdb, backend, label: `FerretDB ${ferretdb} (${backend} backend)` };
    }
    const version = typeof info.version === 'string' ? info.version : 'unknown';
    return { name: 'MongoDB', version, backend: 'WiredTiger', label: `MongoDB ${version}` };
  } finally {
    await client.close();
  }
}

function serviceSettings(config: Config): Record<string, number> {
  return Object.fromEntries(
    Object.entries(config).filter(([name, value]) => SERVICE_SETTINGS.includes(name) && typeof value === 'number'),
  ) as Record<string, number>;
}

function resultsPath(options: BenchOptions, runId: string, startedAt: Date): string {
  if (options.out) return path.resolve(options.out);
  if (options.mode === 'smoke') return path.join(os.tmpdir(), `realtime-bench-smoke-${runId}.json`);
  return path.join(ROOT, 'bench', 'results', `${startedAt.toISOString().slice(0, 10)}.json`);
}

async function runSteps(ctx: BenchContext, options: BenchOptions, budgetEnd: number, phases: PhaseTiming[]): Promise<BenchRun[]> {
  const steps = planSteps(options, ceilingJobsOf(options, ctx.config), ctx.config.WORKER_CONCURRENCY);
  const runs: BenchRun[] = [];
  for (const [index, step] of steps.entries()) {
    const deadline = deadlineFor(steps, index, options, budgetEnd, runs);
    const limit = Math.round((deadline - performance.now()) / 1000);
    const started = performance.now();
    let name: string;
    const keys = step.kind === 'naive' ? undefined : step.keys;
    // The keys dimension's runs write the same kind of data over their own number of keys.
    const stepCtx = keys === undefined ? ctx : { ...ctx, keys };
    const over = keys === undefined ? '' : ` over ${keys} keys`;
    if (step.kind === 'ceiling') {
      name = `storage ceiling, ${step.size} points${over}, ${step.jobsPerWrite} job(s) per write`;
      log(`${name} (limit ${limit} s)`);
      const result = await runCeiling(stepCtx, step.size, step.jobsPerWrite, deadline);
      runs.push({ contender: 'ceiling', size: step.size, ...(keys === undefined ? {} : { keys }), ...result, status: statusOf(result) });
    } else if (step.kind === 'naive') {
      const sample = Math.min(options.naiveSample, step.size);
      name = `naive baseline, first ${sample} points`;
      log(`${name} (limit ${limit} s)`);
      const result = await runNaive(ctx, sample, deadline);
      runs.push({ contender: 'naive', size: step.size, ...result, status: naiveStatusOf(result) });
    } else {
      name = `this service, ${step.size} points${over}, ${step.workers} worker(s)`;
      log(`${name} (throughput limit ${limit} s)`);
      const result = await runService(stepCtx, step.size, {
        workers: step.workers,
        deadline,
        // The latency target is the sizes' runs'; the keys dimension measures rates and reads.
        latencySeconds: keys === undefined ? options.latencySeconds : 0,
        reads: step.reads ? options.reads : 0,
      });
      runs.push({ contender: 'service', size: step.size, ...(keys === undefined ? {} : { keys }), ...result, status: statusOf(result) });
      for (const [phase, seconds] of Object.entries(result.phases)) phases.push({ name: `${name}: ${phase}`, seconds });
    }
    const run = runs[runs.length - 1] as BenchRun;
    phases.push({ name, seconds: secondsSince(started) });
    const detail = run.error ? `: ${run.error}` : run.mismatches.length > 0 ? `: ${firstMismatches(run.mismatches)}` : '';
    log(`${name}: ${run.status}, ${Math.round(run.pointsPerSecond)} points/s end to end, ${secondsSince(started).toFixed(1)} s${detail}`);
  }
  return runs;
}

async function bench(options: BenchOptions): Promise<BenchResults> {
  const startedAt = new Date();
  const started = performance.now();
  const budgetEnd = started + options.budgetSeconds * 1000;
  const phases: PhaseTiming[] = [];
  const timed = async <T>(name: string, work: () => T | Promise<T>): Promise<T> => {
    const phaseStart = performance.now();
    const value = await work();
    phases.push({ name, seconds: secondsSince(phaseStart) });
    return value;
  };
  const stack = await timed('Redis and the MongoDB-compatible server (started or reused)', () =>
    ensureStack({
      redisUrl: process.env.REDIS_URL ?? DEFAULT_REDIS_URL,
      mongoUri: process.env.MONGODB_URI ?? DEFAULT_MONGODB_URI,
      log: (message) => log(`stack: ${message}`),
    }),
  );
  if (options.build) await timed('npm run build', build);
  const mongoBase = withoutDatabase(stack.mongoUri);
  // The service's own reading of this environment: the ceiling chunks and writes with the same settings.
  const config = loadConfig({ ...process.env, MONGODB_URI: stack.mongoUri, REDIS_URL: stack.redisUrl });
  const ctx: BenchContext = {
    runId: newRunId(),
    mongoBase,
    redisUrl: stack.redisUrl,
    prefix: 'bench',
    keys: options.keys,
    batch: options.batch,
    concurrency: options.concurrency,
    baseTs: Date.now(),
    config,
  };
  const [store, redis] = await Promise.all([describeStore(mongoBase), redisVersion(stack.redisUrl)]);
  log(
    `run ${ctx.runId}: ${store.label}, Redis ${redis}, sizes ${options.sizes.join(', ')}, key counts ${options.keyCounts.join(', ') || 'none'}, budget ${options.budgetSeconds} s`,
  );
  const runs = await runSteps(ctx, options, budgetEnd, phases);
  const cpus = os.cpus();
  return {
    schema: 1,
    mode: options.mode,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command: `npm run bench${options.argv.length > 0 ? ` -- ${options.argv.join(' ')}` : ''}`,
    machine: {
      cpu: cpus[0]?.model.trim() ?? 'unknown',
      cores: cpus.length,
      memoryBytes: os.totalmem(),
      os: `${os.type()} ${os.release()}`,
      node: process.version,
    },
    store,
    redis: { version: redis },
    settings: {
      sizes: options.sizes,
      keys: options.keys,
      keyCounts: options.keyCounts,
      keyPoints: options.keyPoints,
      workers: options.workers,
      naiveSample: options.naiveSample,
      ceilingJobs: ceilingJobsOf(options, config),
      batch: options.batch,
      concurrency: options.concurrency,
      latencySeconds: options.latencySeconds,
      reads: options.reads,
      phaseTimeoutSeconds: options.phaseTimeoutSeconds,
      budgetSeconds: options.budgetSeconds,
      service: serviceSettings(config),
    },
    runs,
    phases,
    totalSeconds: secondsSince(started),
    status: overallStatus(runs),
  };
}

function printReport(results: BenchResults): void {
  process.stdout.write(`\n${formatTable(results)}\nTargets, on ${results.store.label}:\n${formatTargets(results)}\n`);
  process.stdout.write(`\nPhase timings:\n${formatPhases(results)}\n${results.totalSeconds.toFixed(1).padStart(7)} s  in all\n`);
}

const EXIT_CODES = { EXACT: 0, INVALID: 1, TIMEOUT: 3, INEXACT: 0 } as const;

async function main(): Promise<number> {
  const options = commandOptions('bench', HELP, parseBenchOptions);
  if (typeof options === 'number') return options;
  if (options.report) {
    const file = path.resolve(options.report);
    const results = JSON.parse(fs.readFileSync(file, 'utf8')) as BenchResults;
    const written = await writeDocs(results, file, ROOT);
    printReport(results);
    process.stdout.write(`\nwrote ${path.relative(ROOT, written.markdown)} and ${path.relative(ROOT, written.svg)}\n`);
    return 0;
  }
  const results = await bench(options);
  const file = resultsPath(options, newRunId(), new Date(results.startedAt));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  printReport(results);
  process.stdout.write(`\nresults: ${file}\n`);
  if (options.docs) {
    const written = await writeDocs(results, file, ROOT);
    process.stdout.write(`wrote ${path.relative(ROOT, written.markdown)} and ${path.relative(ROOT, written.svg)}\n`);
  }
  process.stdout.write(`status: ${results.status}\n`);
  return EXIT_CODES[results.status];
}

main().then(
  (code) => {
    process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(`bench failed: ${describe(error)}\n`);
    process.exit(1);
  },
);
