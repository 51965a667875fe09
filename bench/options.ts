import { parseCommandLine, UsageError } from '../scripts/cli';

export const HELP = `Usage: npm run bench -- [options]

Runs three contenders on the same generated data (N points over K keys,
values chosen so every total is known exactly), each with a fresh database:
the storage ceiling (the service's own repositories, one job after the other,
no HTTP or queue), the naive baseline (bench/naive/: one Bull job per point,
on a sample), and this service (the built API and workers over HTTP). Prints
a table, writes bench/results/<date>.json and regenerates docs/BENCHMARKS.md
and docs/benchmarks.svg.

Exit code 0 when every run counted every point exactly; 1 when a run was
INVALID (totals not exact, or it failed); 3 when runs were only cut short by
their time limit (TIMEOUT); 2 for bad options.

Options:
  --sizes LIST           points per run, e.g. 1e5,1e6 (default 1e5,1e6)
  --keys N               distinct keys of the sizes' runs (default 100)
  --key-counts LIST      the keys dimension: for each, a ceiling and a 1-worker service run of
                         --key-points points over that many keys, with reads (default 100,10000,100000;
                         none with --smoke; 0 skips)
  --key-points N         points of each keys-dimension run (default 1e5)
  --workers LIST         worker processes per service run (default 1,2)
  --naive-sample N       points for the naive baseline, the first N of the data (default 5000)
  --ceiling-jobs LIST    jobs per write of the storage ceiling runs (default 1 and WORKER_CONCURRENCY:
                         one job after the other, and what one worker writes together under load)
  --batch N              points per HTTP request (default 1000)
  --concurrency N        requests in flight (default 4)
  --latency-seconds S    latency phase after each service run, 0 skips it (default 20)
  --reads N              stats and history requests after the largest service run, 0 skips (default 200)
  --phase-timeout S      a throughput phase stops after S seconds: TIMEOUT, rate so far (default 180)
  --budget S             the whole command's time; later phases get shorter limits to fit (default 900)
  --smoke                CI: 1e4 points, 1 worker, naive sample 500, short phases, no docs
  --no-build             use dist/ as it is (default: npm run build first)
  --no-docs              do not regenerate docs/BENCHMARKS.md and docs/benchmarks.svg
  --out FILE             where to write the results JSON
  --report FILE          only regenerate the docs from a results JSON
  -h, --help             show this help

Environment: REDIS_URL and MONGODB_URI (started or reused as npm run stack
does); the service's own variables (JOB_CHUNK_SIZE, WORKER_CONCURRENCY,
AGGREGATE_SHARDS, ...) pass through to its processes and the ceiling.
`;

export interface BenchOptions {
  mode: 'full' | 'smoke';
  sizes: number[];
  keys: number;
  /** The keys dimension: key counts, each run on `keyPoints` points. */
  keyCounts: number[];
  keyPoints: number;
  workers: number[];
  naiveSample: number;
  /** Jobs per write of the ceiling runs; undefined: 1 and WORKER_CONCURRENCY. */
  ceilingJobs: number[] | undefined;
  batch: number;
  concurrency: number;
  latencySeconds: number;
  reads: number;
  phaseTimeoutSeconds: number;
  budgetSeconds: number;
  build: boolean;
  docs: boolean;
  out: string | undefined;
  /** Only regenerate the docs from this results file. */
  report: string | undefined;
  /** The arguments as given, for the report's "command" line. */
  argv: string[];
}

/** Whole numbers, in plain or exponent form (1e5); at least `min`. */
function count(name: string, text: string, min: number): number {
  const value = Number(text);
  if (!/^\d+(?:e\d+)?$/i.test(text.trim()) || !Number.isSafeInteger(value) || value < min) {
    throw new UsageError(`--${name} must be a whole number of at least ${min} (got "${text}")`);
  }
  return value;
}

function countList(name: string, text: string, min: number): number[] {
  const values = text.split(',').map((part) => count(name, part.trim(), min));
  return [...new Set(values)].sort((a, b) => a - b);
}

const SMOKE = {
  sizes: [10_000],
  keyCounts: [] as number[],
  workers: [1],
  naiveSample: 500,
  latencySeconds: 5,
  reads: 20,
  phaseTimeoutSeconds: 60,
  budgetSeconds: 110,
};
const FULL = {
  sizes: [100_000, 1_000_000],
  keyCounts: [100, 10_000, 100_000],
  workers: [1, 2],
  naiveSample: 5000,
  latencySeconds: 20,
  reads: 200,
  phaseTimeoutSeconds: 180,
  budgetSeconds: 900,
};

/** The options, or null when `--help` was asked for. */
export function parseBenchOptions(argv: string[]): BenchOptions | null {
  const values = parseCommandLine(argv, {
    sizes: { type: 'string' },
    keys: { type: 'string' },
    'key-counts': { type: 'string' },
    'key-points': { type: 'string' },
    workers: { type: 'string' },
    'naive-sample': { type: 'string' },
    'ceiling-jobs': { type: 'string' },
    batch: { type: 'string' },
    concurrency: { type: 'string' },
    'latency-seconds': { type: 'string' },
    reads: { type: 'string' },
    'phase-timeout': { type: 'string' },
    budget: { type: 'string' },
    smoke: { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    'no-docs': { type: 'boolean', default: false },
    out: { type: 'string' },
    report: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) return null;
  const defaults = values.smoke ? SMOKE : FULL;
  const option = <T>(text: string | undefined, parse: (text: string) => T, fallback: T): T => (text === undefined ? fallback : parse(text));
  return {
    mode: values.smoke ? 'smoke' : 'full',
    sizes: option(values.sizes, (text) => countList('sizes', text, 1), defaults.sizes),
    keys: option(values.keys, (text) => count('keys', text, 1), 100),
    keyCounts: option(values['key-counts'], (text) => (text.trim() === '0' ? [] : countList('key-counts', text, 1)), defaults.keyCounts),
    keyPoints: option(values['key-points'], (text) => count('key-points', text, 1), 100_000),
    workers: option(values.workers, (text) => countList('workers', text, 1), defaults.workers),
    naiveSample: option(values['naive-sample'], (text) => count('naive-sample', text, 1), defaults.naiveSample),
    ceilingJobs: option<number[] | undefined>(values['ceiling-jobs'], (text) => countList('ceiling-jobs', text, 1), undefined),
    batch: option(values.batch, (text) => count('batch', text, 1), 1000),
    concurrency: option(values.concurrency, (text) => count('concurrency', text, 1), 4),
    latencySeconds: option(values['latency-seconds'], (text) => count('latency-seconds', text, 0), defaults.latencySeconds),
    reads: option(values.reads, (text) => count('reads', text, 0), defaults.reads),
    phaseTimeoutSeconds: option(values['phase-timeout'], (text) => count('phase-timeout', text, 1), defaults.phaseTimeoutSeconds),
    budgetSeconds: option(values.budget, (text) => count('budget', text, 1), defaults.budgetSeconds),
    build: !values['no-build'],
    // Smoke runs never touch the committed docs.
    docs: !values['no-docs'] && !values.smoke,
    out: values.out,
    report: values.report,
    argv,
  };
}
