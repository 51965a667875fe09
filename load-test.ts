/**
 * Load test: sends generated points to `POST /api/data/ingest`, waits until
 * every accepted batch is processed, then checks that each aggregate is
 * exactly what was sent.
 *
 *   npm run load-test -- --points 100000 --batch 1000 --concurrency 4
 *
 * Progress goes to stderr, the summary to stdout (with `--json`, stdout holds
 * only the one-line JSON summary and the readable one goes to stderr).
 * `npm run bench` (bench/) imports the generator, the sender and the checker.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { z } from 'zod';

const HELP = `Usage: npm run load-test -- [options]

Sends generated points to the ingest API, waits until every accepted batch
is processed (its status, GET /api/data/batches/:id) and checks every
aggregate is exact. Exit code 0 when exact, 1 when not (or on a
timeout or a failed request), 2 for bad options.

Options:
  --url URL            API base URL (default: $BASE_URL or http://127.0.0.1:3000)
  --points N           points to send (default 100000)
  --batch N            points per request (default 1000)
  --concurrency N      requests in flight (default 4)
  --keys N             distinct keys (default 100)
  --format F           json | ndjson (default json)
  --timeout S          seconds to wait for processing after the last request (default 300)
  --prefix P           key prefix; keys are <prefix>/<k> (default load-<timestamp>, fresh each run)
  --api-key K          API key when the service has INGEST_API_KEYS (default: $API_KEY)
  --json               print the summary as one JSON line on stdout
  -h, --help           show this help
`;

export type Format = 'json' | 'ndjson';

export interface Options {
  url: string;
  points: number;
  batch: number;
  concurrency: number;
  keys: number;
  format: Format;
  timeoutSeconds: number;
  prefix: string;
  json: boolean;
  /** Sent as `Authorization: Bearer` when the service has API keys (an ingest key reads too). */
  apiKey: string | undefined;
}

/** A problem with the command line: exit code 2, with the help hint. */
class UsageError extends Error {
  override name = 'UsageError';
}

/** The run cannot go on (a request was refused, the API is unreachable). */
export class LoadTestError extends Error {
  override name = 'LoadTestError';
}

// Keys are 1-200 characters; leave room for "/<k>".
const MAX_PREFIX_LENGTH = 180;
// The stats list returns at most 1000 aggregates a page.
const STATS_PAGE_LIMIT = 1000;
// Fast enough that end-to-end time is measured to about a quarter of a second; one page of 1000 keys costs a few ms.
const POLL_INTERVAL_MS = 250;
// A request that takes longer than this is treated like a network error: resent under the same Idempotency-Key.
const REQUEST_TIMEOUT_MS = 120_000;
// Network errors in a row before the run gives up: 0.5 + 1 + 2 + 4 + 8 + 8 + 8 + 8 s ≈ 40 s of an unreachable API.
const MAX_NETWORK_ATTEMPTS = 8;
// The server's Retry-After is 1 s (409) or 5 s (503); cap whatever it says so a bad header cannot stall the run.
const MAX_RETRY_AFTER_MS = 60_000;
const DEFAULT_RETRY_AFTER_MS = 1000;
// Non-TTY output (CI logs) gets a progress line this often instead of a `\r` update every 200 ms.
const TTY_PROGRESS_MS = 200;
const LOG_PROGRESS_MS = 5000;
const MAX_MISMATCHES_SHOWN = 20;
const MIN_POLL_TIMEOUT_MS = 1000;
// The final read of every aggregate after the batches are done gets at least this long, even past the deadline.
const READ_AFTER_MS = 60_000;

function positiveInt(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) throw new UsageError(`--${name} must be a positive integer (got "${text}")`);
  return value;
}

function parseFormat(text: string | undefined): Format {
  if (text === undefined || text === 'json' || text === 'ndjson') return text ?? 'json';
  throw new UsageError(`--format must be json or ndjson (got "${text}")`);
}

function parseUrl(text: string): string {
  try {
    const url = new URL(text);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http');
    return url.origin;
  } catch {
    throw new UsageError(`--url must be an http(s) URL (got "${text}")`);
  }
}

function parsePrefix(text: string | undefined): string {
  const prefix = text ?? `load-${Date.now()}`;
  // The same rules as a key (no control characters), so every generated key is valid.
  // eslint-disable-next-line no-control-regex
  if (prefix.length === 0 || prefix.length > MAX_PREFIX_LENGTH || /[\u0000-\u001f\u007f-\u009f]/.test(prefix)) {
    throw new UsageError(`--prefix must be 1-${MAX_PREFIX_LENGTH} characters without control characters`);
  }
  return prefix;
}

function readArgs(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: 'string' },
        points: { type: 'string' },
        batch: { type: 'string' },
        concurrency: { type: 'string' },
        keys: { type: 'string' },
        format: { type: 'string' },
        timeout: { type: 'string' },
        prefix: { type: 'string' },
        'api-key': { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (error) {
    // parseArgs throws a TypeError for an unknown option or a missing value.
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/** The options, or null when `--help` was asked for. */
export function parseOptions(argv: string[]): Options | null {
  const values = readArgs(argv);
  if (values.help) return null;
  return {
    url: parseUrl(values.url ?? process.env.BASE_URL ?? 'http://127.0.0.1:3000'),
    points: positiveInt('points', values.points, 100_000),
    batch: positiveInt('batch', values.batch, 1000),
    concurrency: positiveInt('concurrency', values.concurrency, 4),
    keys: positiveInt('keys', values.keys, 100),
    format: parseFormat(values.format),
    timeoutSeconds: positiveInt('timeout', values.timeout, 300),
    prefix: parsePrefix(values.prefix),
    json: values.json,
    apiKey: values['api-key'] ?? (process.env.API_KEY || undefined),
  };
}

export interface GeneratedPoint {
  key: string;
  value: number;
  timestamp: number;
}

/** What one key's aggregate must be once every point is counted. */
export interface KeyTotals {
  count: number;
  sum: number;
  min: number;
  max: number;
  firstTs: number;
  lastTs: number;
  lastValue: number;
}

/**
 * Point `i` of the run. Integer values in -999..999 keep every sum exact in a
 * double (10^7 points sum to at most ~10^10, far below 2^53), and 1999 is
 * prime, so every key sees negative and positive values whatever `--keys` is.
 * Timestamps are distinct and in the past (the last one is `baseTs`), so
 * firstTimestamp, lastTimestamp and lastValue are known exactly too.
 */
export function pointAt(i: number, options: Options, baseTs: number): GeneratedPoint {
  return {
    key: `${options.prefix}/${i % options.keys}`,
    value: (i % 1999) - 999,
    timestamp: baseTs - options.points + 1 + i,
  };
}

function* generatedPoints(options: Options, baseTs: number): Generator<GeneratedPoint> {
  for (let i = 0; i < options.points; i += 1) yield pointAt(i, options, baseTs);
}

/** The exact totals of a run's points (see `totalsOf`). */
export function expectedTotals(options: Options, baseTs: number): Map<string, KeyTotals> {
  return totalsOf(generatedPoints(options, baseTs));
}

/** What each key's aggregate must be after these points; they must come in timestamp order (as `pointAt` makes them). */
export function totalsOf(points: Iterable<GeneratedPoint>): Map<string, KeyTotals> {
  const totals = new Map<string, KeyTotals>();
  for (const { key, value, timestamp } of points) {
    const current = totals.get(key);
    if (!current) {
      totals.set(key, { count: 1, sum: value, min: value, max: value, firstTs: timestamp, lastTs: timestamp, lastValue: value });
      continue;
    }
    // Points are generated in timestamp order, so the latest one seen is the last.
    current.count += 1;
    current.sum += value;
    current.min = Math.min(current.min, value);
    current.max = Math.max(current.max, value);
    current.lastTs = timestamp;
    current.lastValue = value;
  }
  return totals;
}

export interface RequestBody {
  points: number;
  body: string;
  contentType: string;
}

/** The body of request `index`; rebuilt identically on a resend, so the same Idempotency-Key always carries the same points. */
export function buildBody(index: number, options: Options, baseTs: number): RequestBody {
  const start = index * options.batch;
  const end = Math.min(options.points, start + options.batch);
  const points: GeneratedPoint[] = [];
  for (let i = start; i < end; i += 1) points.push(pointAt(i, options, baseTs));
  if (options.format === 'json') return { points: points.length, body: JSON.stringify({ points }), contentType: 'application/json' };
  const lines = points.map((point) => JSON.stringify(point)).join('\n');
  return { points: points.length, body: `${lines}\n`, contentType: 'application/x-ndjson' };
}

const ingestResponseSchema = z.object({
  batchId: z.string(),
  accepted: z.number().int().nonnegative(),
  rejected: z.array(z.object({ index: z.number(), message: z.string() })),
});

const statsViewSchema = z.object({
  key: z.string(),
  count: z.number(),
  sum: z.number(),
  min: z.number(),
  max: z.number(),
  firstTimestamp: z.string(),
  lastTimestamp: z.string(),
  lastValue: z.number(),
});

export type StatsView = z.infer<typeof statsViewSchema>;

const statsPageSchema = z.object({ items: z.array(statsViewSchema), nextCursor: z.string().nullable() });

export interface SendCounters {
  requests: number;
  retries: number;
  sentPoints: number;
  acceptedPoints: number;
  /** When present, the batch id of every accepted request is added: waitUntilCounted then polls batch status. */
  batchIds?: string[];
}

/** Retry-After in seconds (the server's form) or an HTTP date, capped. */
function retryAfterMs(header: string | null): number {
  if (header === null) return DEFAULT_RETRY_AFTER_MS;
  const seconds = Number(header);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - Date.now();
  if (!Number.isFinite(ms)) return DEFAULT_RETRY_AFTER_MS;
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}

export function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // fetch reports "fetch failed" and keeps the useful part (ECONNREFUSED, ...) in `cause`.
  return error.cause instanceof Error ? `${error.message}: ${error.cause.message}` : error.message;
}

/**
 * Sends one request until it is accepted. 503 (back-pressure), 429 and 409
 * (the same Idempotency-Key still in flight after a resend) wait for
 * Retry-After; network errors back off. Every resend carries the same
 * Idempotency-Key, so a request the server did accept before the connection
 * broke is answered from its first response and counted once.
 */
const authorization = (apiKey: string | undefined): Record<string, string> => (apiKey ? { Authorization: `Bearer ${apiKey}` } : {});

export async function sendRequest(
  url: URL,
  apiKey: string | undefined,
  request: RequestBody,
  idempotencyKey: string,
  counters: SendCounters,
  stop: AbortSignal,
): Promise<{ accepted: number; batchId: string }> {
  let networkFailures = 0;
  for (;;) {
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': request.contentType, 'Idempotency-Key': idempotencyKey, ...authorization(apiKey) },
        body: request.body,
        signal: AbortSignal.any([stop, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
      });
      // Inside the try: a connection that breaks while the answer is read is a network error too.
      text = await response.text();
    } catch (error) {
      if (stop.aborted) throw error;
      networkFailures += 1;
      if (networkFailures >= MAX_NETWORK_ATTEMPTS) {
        throw new LoadTestError(`POST ${url.pathname} failed ${networkFailures} times in a row: ${describe(error)}`);
      }
      counters.retries += 1;
      await sleep(Math.min(500 * 2 ** (networkFailures - 1), 8000), undefined, { signal: stop });
      continue;
    }
    if (response.status === 202) return acceptedPoints(text, request.points);
    if (response.status === 503 || response.status === 429 || response.status === 409) {
      counters.retries += 1;
      await sleep(retryAfterMs(response.headers.get('Retry-After')), undefined, { signal: stop });
      continue;
    }
    throw new LoadTestError(`POST ${url.pathname} answered ${response.status}: ${text.slice(0, 2000)}`);
  }
}

/** Every generated point is valid, so anything short of "all accepted" is a bug worth stopping for. */
function acceptedPoints(text: string, sent: number): { accepted: number; batchId: string } {
  const parsed = ingestResponseSchema.safeParse(safeJson(text));
  if (!parsed.success) throw new LoadTestError(`202 with an unexpected body: ${text.slice(0, 2000)}`);
  const { accepted, rejected } = parsed.data;
  if (accepted !== sent || rejected.length > 0) {
    throw new LoadTestError(`sent ${sent} valid points, ${accepted} accepted; rejected: ${JSON.stringify(rejected.slice(0, 5))}`);
  }
  return { accepted, batchId: parsed.data.batchId };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Keeps `concurrency` requests in flight until every batch is accepted; the first failure stops the others. */
export async function sendAll(options: Options, baseTs: number, counters: SendCounters): Promise<void> {
  const url = new URL('/api/data/ingest', options.url);
  const runId = randomUUID();
  const total = Math.ceil(options.points / options.batch);
  const stop = new AbortController();
  let next = 0;
  let failure: Error | undefined;
  const lane = async (): Promise<void> => {
    while (!stop.signal.aborted && next < total) {
      const index = next;
      next += 1;
      const request = buildBody(index, options, baseTs);
      counters.requests += 1;
      counters.sentPoints += request.points;
      try {
        // Not `counters.acceptedPoints += await ...`: that reads the total before the await and loses the other lanes' additions.
        const { accepted, batchId } = await sendRequest(url, options.apiKey, request, `${runId}-${index}`, counters, stop.signal);
        counters.acceptedPoints += accepted;
        counters.batchIds?.push(batchId);
      } catch (error) {
        // Only the first failure is the cause; the others are the aborts it triggered.
        failure ??= error instanceof Error ? error : new LoadTestError(describe(error));
        stop.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, total) }, lane));
  if (failure) throw failure;
}

/** One status line: `\r`-updated on a terminal, a plain line every few seconds otherwise (CI logs). */
function startProgress(render: () => string): (finalText: string) => void {
  const tty = process.stderr.isTTY;
  const write = (text: string): void => {
    process.stderr.write(tty ? `\r${text}\x1b[K` : `${text}\n`);
  };
  const timer = setInterval(() => write(render()), tty ? TTY_PROGRESS_MS : LOG_PROGRESS_MS);
  return (finalText) => {
    clearInterval(timer);
    write(finalText);
    if (tty) process.stderr.write('\n');
  };
}

export const formatNumber = (n: number): string => Math.round(n).toLocaleString('en-US');
export const secondsSince = (start: number): number => (performance.now() - start) / 1000;

async function fetchJson(url: URL, apiKey: string | undefined, timeoutMs: number): Promise<unknown> {
  const response = await fetch(url, { headers: authorization(apiKey), signal: AbortSignal.timeout(timeoutMs) });
  const text = await response.text();
  if (response.status >= 400 && response.status < 500) throw new LoadTestError(`GET ${url.pathname} answered ${response.status}: ${text}`);
  if (response.status !== 200) throw new Error(`GET ${url.pathname} answered ${response.status}`);
  return safeJson(text);
}

/** Every aggregate under `<prefix>/`, following `nextCursor`. */
export async function readAllStats(options: Options, timeoutMs: number): Promise<Map<string, StatsView>> {
  const stats = new Map<string, StatsView>();
  let cursor: string | null = null;
  do {
    const url = new URL('/api/data/stats', options.url);
    url.searchParams.set('prefix', `${options.prefix}/`);
    url.searchParams.set('limit', String(STATS_PAGE_LIMIT));
    if (cursor !== null) url.searchParams.set('cursor', cursor);
    const parsed = statsPageSchema.safeParse(await fetchJson(url, options.apiKey, timeoutMs));
    if (!parsed.success) throw new LoadTestError(`GET /api/data/stats answered an unexpected body: ${parsed.error.message}`);
    for (const item of parsed.data.items) stats.set(item.key, item);
    cursor = parsed.data.nextCursor;
  } while (cursor !== null);
  return stats;
}

const countOf = (stats: Map<string, StatsView>): number => [...stats.values()].reduce((total, view) => total + view.count, 0);

export interface WaitResult {
  stats: Map<string, StatsView>;
  counted: number;
  /** performance.now() of the poll that saw the last point counted (or gave up). */
  endedAt: number;
  timedOut: boolean;
}

const batchStatusSchema = z.object({ status: z.string(), processedPoints: z.number() });
// Batch statuses read at once per poll: the oldest pending first, as the workers take them.
const STATUS_READS_PER_POLL = 32;

/**
 * Polls the status of the accepted batches (kept in Redis by the service: no database read) until each is completed
 * or failed, then reads every aggregate once. Reading all aggregates on every poll would load the store with reads
 * of every key several times a second, which at 10,000 keys is a load of its own beside the one being measured.
 */
async function waitUntilBatchesDone(options: Options, batchIds: readonly string[], startedAt: number): Promise<WaitResult> {
  const deadline = performance.now() + options.timeoutSeconds * 1000;
  const pending = [...batchIds];
  let processed = 0;
  let lastError = '';
  const finish = startProgress(
    () =>
      `processed ${formatNumber(processed)} points, ${formatNumber(pending.length)} batches pending (${formatNumber(processed / secondsSince(startedAt))} points/s end-to-end)` +
      (lastError ? ` last error: ${lastError}` : ''),
  );
  while (pending.length > 0 && performance.now() < deadline) {
    const checked = pending.slice(0, STATUS_READS_PER_POLL);
    const statuses = await Promise.all(
      checked.map(async (batchId) => {
        try {
          const url = new URL(`/api/data/batches/${encodeURIComponent(batchId)}`, options.url);
          const parsed = batchStatusSchema.safeParse(await fetchJson(url, options.apiKey, MIN_POLL_TIMEOUT_MS * 10));
          lastError = '';
          return parsed.success ? parsed.data : undefined;
        } catch (error) {
          if (error instanceof LoadTestError) throw error;
          lastError = describe(error);
          return undefined;
        }
      }),
    );
    checked.forEach((batchId, index) => {
      const status = statuses[index];
      if (status?.status !== 'completed' && status?.status !== 'failed') return;
      processed += status.processedPoints;
      pending.splice(pending.indexOf(batchId), 1);
    });
    if (pending.length > 0 && checked.length === statuses.filter((status) => status?.status === 'completed').length) continue;
    if (pending.length > 0) await sleep(POLL_INTERVAL_MS);
  }
  const endedAt = performance.now();
  const timedOut = pending.length > 0;
  const stats = await readAllStats(options, Math.ceil(Math.max(deadline - performance.now(), READ_AFTER_MS)));
  const counted = countOf(stats);
  finish(`counted ${formatNumber(counted)} points${timedOut ? ` (timed out, ${pending.length} batches pending)` : ''}`);
  return { stats, counted, endedAt, timedOut };
}

/**
 * Polls the stats until they count every accepted point. Stops as well when
 * they count more (double counting: waiting longer cannot fix it). Server
 * errors are retried until the deadline: a worker or database may be
 * restarting, and the contract says nothing accepted is lost.
 */
export async function waitUntilCounted(
  options: Options,
  accepted: number,
  startedAt: number,
  batchIds?: readonly string[],
): Promise<WaitResult> {
  if (batchIds) return waitUntilBatchesDone(options, batchIds, startedAt);
  const deadline = performance.now() + options.timeoutSeconds * 1000;
  let stats = new Map<string, StatsView>();
  let counted = 0;
  let lastError = '';
  const finish = startProgress(
    () =>
      `counted ${formatNumber(counted)}/${formatNumber(accepted)} points (${formatNumber(counted / secondsSince(startedAt))} points/s end-to-end)` +
      (lastError ? ` last error: ${lastError}` : ''),
  );
  for (;;) {
    try {
      // A poll that hangs (the database stuck) must not carry the wait past its deadline.
      stats = await readAllStats(options, Math.ceil(Math.max(deadline - performance.now(), MIN_POLL_TIMEOUT_MS)));
      counted = countOf(stats);
      lastError = '';
    } catch (error) {
      if (error instanceof LoadTestError) {
        finish(`counting failed: ${error.message}`);
        throw error;
      }
      lastError = describe(error);
    }
    const now = performance.now();
    const timedOut = now >= deadline;
    if (counted >= accepted || timedOut) {
      finish(`counted ${formatNumber(counted)}/${formatNumber(accepted)} points${timedOut && counted < accepted ? ' (timed out)' : ''}`);
      return { stats, counted, endedAt: now, timedOut: timedOut && counted < accepted };
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

export interface Mismatch {
  key: string;
  problems: string[];
}

function compareKey(expected: KeyTotals, actual: StatsView): string[] {
  const checks: [string, number, number][] = [
    ['count', expected.count, actual.count],
    ['sum', expected.sum, actual.sum],
    ['min', expected.min, actual.min],
    ['max', expected.max, actual.max],
    ['firstTimestamp', expected.firstTs, Date.parse(actual.firstTimestamp)],
    ['lastTimestamp', expected.lastTs, Date.parse(actual.lastTimestamp)],
    ['lastValue', expected.lastValue, actual.lastValue],
  ];
  return checks.filter(([, want, got]) => want !== got).map(([field, want, got]) => `${field} expected ${want}, got ${got}`);
}

/** Every generated key must be there with exact totals, and no other key may appear under the prefix. */
export function compareTotals(expected: Map<string, KeyTotals>, actual: Map<string, StatsView>): Mismatch[] {
  const mismatches: Mismatch[] = [];
  for (const [key, totals] of expected) {
    const view = actual.get(key);
    const problems = view ? compareKey(totals, view) : ['missing'];
    if (problems.length > 0) mismatches.push({ key, problems });
  }
  for (const key of actual.keys()) {
    if (!expected.has(key)) mismatches.push({ key, problems: ['not generated by this run'] });
  }
  return mismatches;
}

export interface Summary {
  url: string;
  format: Format;
  prefix: string;
  points: number;
  keys: number;
  batch: number;
  concurrency: number;
  requests: number;
  retries: number;
  acceptedPoints: number;
  countedPoints: number;
  sendSeconds: number;
  acceptedPointsPerSecond: number;
  endToEndSeconds: number | null;
  endToEndPointsPerSecond: number | null;
  timeoutSeconds: number;
  timedOut: boolean;
  exact: boolean;
  mismatches: Mismatch[];
}

function resultLine(summary: Summary): string {
  if (summary.exact) return 'EXACT';
  if (summary.timedOut) return `TIMED OUT after ${summary.timeoutSeconds} s of waiting: totals not checked`;
  return `NOT EXACT: ${summary.mismatches.length} key(s) differ`;
}

export function printSummary(summary: Summary, out: NodeJS.WriteStream): void {
  const rate = (points: number, seconds: number): string =>
    `${formatNumber(points)} points in ${seconds.toFixed(2)} s = ${formatNumber(points / seconds)} points/s`;
  const lines = [
    `url          ${summary.url} (${summary.format}, prefix ${summary.prefix}/)`,
    `points       ${formatNumber(summary.points)} over ${summary.keys} keys, ${summary.batch} per request, concurrency ${summary.concurrency}`,
    `requests     ${summary.requests} (retries ${summary.retries})`,
    `accepted     ${rate(summary.acceptedPoints, summary.sendSeconds)}`,
    summary.endToEndSeconds === null
      ? `end-to-end   timed out with ${formatNumber(summary.countedPoints)} of ${formatNumber(summary.acceptedPoints)} points counted`
      : `end-to-end   ${rate(summary.acceptedPoints, summary.endToEndSeconds)}`,
    `result       ${resultLine(summary)}`,
    ...summary.mismatches.slice(0, MAX_MISMATCHES_SHOWN).map((m) => `  ${m.key}: ${m.problems.join('; ')}`),
  ];
  if (summary.mismatches.length > MAX_MISMATCHES_SHOWN) lines.push(`  ... and ${summary.mismatches.length - MAX_MISMATCHES_SHOWN} more`);
  out.write(`${lines.join('\n')}\n`);
}

/** Sends, waits and checks; `baseTs` (the last point's timestamp) is fixed by callers that send the same data twice. */
export async function run(options: Options, baseTs = Date.now()): Promise<Summary> {
  const expected = expectedTotals(options, baseTs);
  const counters: SendCounters = { requests: 0, retries: 0, sentPoints: 0, acceptedPoints: 0, batchIds: [] };
  const startedAt = performance.now();
  const finishSending = startProgress(
    () =>
      `sent ${formatNumber(counters.sentPoints)}/${formatNumber(options.points)} points, accepted ${formatNumber(counters.acceptedPoints)} ` +
      `(${formatNumber(counters.acceptedPoints / secondsSince(startedAt))} points/s), retries ${counters.retries}`,
  );
  try {
    await sendAll(options, baseTs, counters);
  } finally {
    finishSending(
      `sent ${formatNumber(counters.sentPoints)} points, accepted ${formatNumber(counters.acceptedPoints)}, retries ${counters.retries}`,
    );
  }
  const sendSeconds = secondsSince(startedAt);
  const waited = await waitUntilCounted(options, counters.acceptedPoints, startedAt, counters.batchIds);
  const mismatches = waited.timedOut ? [] : compareTotals(expected, waited.stats);
  const endToEndSeconds = waited.timedOut ? null : (waited.endedAt - startedAt) / 1000;
  return {
    url: options.url,
    format: options.format,
    prefix: options.prefix,
    points: options.points,
    keys: options.keys,
    batch: options.batch,
    concurrency: options.concurrency,
    requests: counters.requests,
    retries: counters.retries,
    acceptedPoints: counters.acceptedPoints,
    countedPoints: waited.counted,
    sendSeconds,
    acceptedPointsPerSecond: counters.acceptedPoints / sendSeconds,
    endToEndSeconds,
    endToEndPointsPerSecond: endToEndSeconds === null ? null : counters.acceptedPoints / endToEndSeconds,
    timeoutSeconds: options.timeoutSeconds,
    timedOut: waited.timedOut,
    exact: !waited.timedOut && mismatches.length === 0,
    mismatches,
  };
}

async function main(): Promise<number> {
  let options: Options | null;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`load-test: ${error.message}\nRun with --help for the options.\n`);
    return 2;
  }
  if (!options) {
    process.stdout.write(HELP);
    return 0;
  }
  try {
    const summary = await run(options);
    printSummary(summary, options.json ? process.stderr : process.stdout);
    if (options.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
    return summary.exact ? 0 : 1;
  } catch (error) {
    process.stderr.write(`load-test failed: ${describe(error)}\n`);
    return 1;
  }
}

// Run as a command only: `npm run bench` imports the generator, sender and checker from here.
if (require.main === module) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`load-test crashed: ${describe(error)}\n`);
      process.exitCode = 1;
    },
  );
}
