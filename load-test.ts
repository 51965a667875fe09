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
import { z } from 'zod';
import { escapeMeasurement } from './src/domain/line-protocol';
import { commandOptions, parseCommandLine, UsageError } from './scripts/cli';

const HELP = `Usage: npm run load-test -- [options]

Sends generated points to the ingest API, waits until every accepted batch
is processed (its status, GET /api/data/batches/:id) and checks every
aggregate is exact. Rate limits (429), back-pressure (503), server errors
and an API that does not answer (restarting) are waited out, within --timeout.
On a timeout it lists the batches still pending with the last answer each
status read got. Other refusals (401, 403, 404...) stop the run at once.
Exit code 0 when exact, 1 when not (or on a timeout or a failed request),
2 for bad options.

Options:
  --url URL            API base URL (default: $BASE_URL or http://127.0.0.1:3000)
  --points N           points to send (default 100000)
  --batch N            points per request (default 1000)
  --concurrency N      requests in flight (default 4)
  --keys N             distinct keys (default 100)
  --format F           json | ndjson | lp (InfluxDB line protocol to /api/v2/write; default json)
  --timeout S          seconds to wait (default 300): for every batch to be processed after the
                       last accepted request, and while sending, for a request to be accepted
  --prefix P           key prefix; keys are <prefix>/<k> (default load-<timestamp>, fresh each run)
  --api-key K          API key when the service has INGEST_API_KEYS (default: $API_KEY)
  --json               print the summary as one JSON line on stdout
  -h, --help           show this help
`;

export type Format = 'json' | 'ndjson' | 'lp';

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
// Network errors in a row before a send gives up: 0.5 + 1 + 2 + 4 + 8 + 8 + 8 + 8 s ≈ 40 s of an unreachable API,
// several times what a restart takes, and soon enough to report a wrong --url.
const MAX_NETWORK_ATTEMPTS = 8;
// The server's Retry-After is 1 s (409) or 5 s (503); cap whatever it says so a bad header cannot stall the run.
const MAX_RETRY_AFTER_MS = 60_000;
const DEFAULT_RETRY_AFTER_MS = 1000;
// Non-TTY output (CI logs) gets a progress line this often instead of a `\r` update every 200 ms.
const TTY_PROGRESS_MS = 200;
const LOG_PROGRESS_MS = 5000;
const MAX_MISMATCHES_SHOWN = 20;
const MAX_PENDING_SHOWN = 20;
const MIN_POLL_TIMEOUT_MS = 1000;
// The final read of every aggregate after the batches are done gets at least this long, even past the deadline.
const READ_AFTER_MS = 60_000;
// After a timeout that read only reports how far the run got: an API that is gone must not hold the exit a minute more.
const READ_AFTER_TIMEOUT_MS = 10_000;
// A batch status is one Redis read: one that has not answered in this long is retried like a network error.
const STATUS_READ_TIMEOUT_MS = 10_000;
// Back-off after reads answered 5xx or not at all (the API restarting), in a row: 0.25, 0.5, 1, 2, 4, 5, 5 ... s.
const MAX_READ_BACKOFF_MS = 5000;

function positiveInt(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) throw new UsageError(`--${name} must be a positive integer (got "${text}")`);
  return value;
}

function parseFormat(text: string | undefined): Format {
  if (text === undefined || text === 'json' || text === 'ndjson' || text === 'lp') return text ?? 'json';
  throw new UsageError(`--format must be json, ndjson or lp (got "${text}")`);
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
  return parseCommandLine(argv, {
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
  });
}

/** The options, or null when `--help` was asked for. */
export function parseOptions(argv: string[]): Options | null {
  const values = readArgs(argv);
  if (values.help) return null;
  const format = parseFormat(values.format);
  const prefix = parsePrefix(values.prefix);
  // In a line-protocol name a backslash escapes only some characters: keep the generated keys unambiguous.
  if (format === 'lp' && prefix.includes('\\')) throw new UsageError('--prefix must not contain "\\" with --format lp');
  return {
    url: parseUrl(values.url ?? process.env.BASE_URL ?? 'http://127.0.0.1:3000'),
    points: positiveInt('points', values.points, 100_000),
    batch: positiveInt('batch', values.batch, 1000),
    concurrency: positiveInt('concurrency', values.concurrency, 4),
    keys: positiveInt('keys', values.keys, 100),
    format,
    timeoutSeconds: positiveInt('timeout', values.timeout, 300),
    prefix,
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
    key: keyOf(options, i % options.keys),
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

/**
 * The service's key of generated key `k`. Line protocol sends `<prefix>/<k>` as the measurement of a field `value`,
 * which the service keys `<measurement, escaped>/value`.
 */
export function keyOf(options: Pick<Options, 'prefix' | 'format'>, k: number): string {
  return options.format === 'lp' ? `${escapeMeasurement(`${options.prefix}/${k}`)}/value` : `${options.prefix}/${k}`;
}

/** The prefix every key of the run starts with (the stats list's `prefix`). */
export function keyPrefix(options: Pick<Options, 'prefix' | 'format'>): string {
  return options.format === 'lp' ? `${escapeMeasurement(options.prefix)}/` : `${options.prefix}/`;
}

/** The body of request `index`; rebuilt identically on a resend, so the same Idempotency-Key always carries the same points. */
export function buildBody(index: number, options: Options, baseTs: number): RequestBody {
  const start = index * options.batch;
  const end = Math.min(options.points, start + options.batch);
  const points: GeneratedPoint[] = [];
  for (let i = start; i < end; i += 1) points.push(pointAt(i, options, baseTs));
  if (options.format === 'json') return { points: points.length, body: JSON.stringify({ points }), contentType: 'application/json' };
  if (options.format === 'lp') {
    // Timestamps in ms (precision=ms), integer values as floats: `<prefix>/<k> value=<v> <ts>`.
    const lines = points.map((point, offset) => {
      // Line protocol escapes "," and " " in a measurement (a prefix with "\\" is refused for lp: see parseOptions).
      const measurement = `${options.prefix}/${(start + offset) % options.keys}`.replace(/[, ]/g, '\\$&');
      return `${measurement} value=${point.value} ${point.timestamp}`;
    });
    return { points: points.length, body: `${lines.join('\n')}\n`, contentType: 'text/plain; charset=utf-8' };
  }
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

const authorization = (apiKey: string | undefined): Record<string, string> => (apiKey ? { Authorization: `Bearer ${apiKey}` } : {});

/** How long a sender keeps retrying while nothing is accepted: `seconds` after `since()` (the last acceptance, any lane's). */
export interface Patience {
  seconds: number;
  since: () => number;
}

/**
 * Sends one request until it is accepted. 503 (back-pressure), 429 and 409
 * (the same Idempotency-Key still in flight after a resend) wait for
 * Retry-After; network errors back off. Every resend carries the same
 * Idempotency-Key, so a request the server did accept before the connection
 * broke is answered from its first response and counted once. With
 * `patience`, it gives up once nothing was accepted for that long.
 */
export async function sendRequest(
  url: URL,
  apiKey: string | undefined,
  request: RequestBody,
  idempotencyKey: string,
  counters: SendCounters,
  stop: AbortSignal,
  patience?: Patience,
): Promise<{ accepted: number; batchId: string }> {
  const patientFor = (): number => (patience ? patience.since() + patience.seconds * 1000 - performance.now() : Infinity);
  const outOfPatience = (answer: string): LoadTestError =>
    new LoadTestError(`POST ${url.pathname}: nothing accepted for ${patience?.seconds ?? 0} s (--timeout); the last answer was ${answer}`);
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
      if (patientFor() <= 0) throw outOfPatience(describe(error));
      counters.retries += 1;
      await sleep(Math.min(500 * 2 ** (networkFailures - 1), 8000, patientFor()), undefined, { signal: stop });
      continue;
    }
    if (response.status === 202) return acceptedPoints(text, request.points);
    // Line protocol: every line taken; the batch id comes as a header (InfluxDB's answer has no body).
    const batchId = response.headers.get('X-Batch-Id');
    if (response.status === 204 && batchId !== null) return { accepted: request.points, batchId };
    if (response.status === 503 || response.status === 429 || response.status === 409) {
      if (patientFor() <= 0) throw outOfPatience(`${response.status} ${text.slice(0, 500)}`);
      counters.retries += 1;
      await sleep(Math.min(retryAfterMs(response.headers.get('Retry-After')), patientFor()), undefined, { signal: stop });
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

/**
 * Keeps `concurrency` requests in flight until every batch is accepted; the first failure stops the others, and so
 * does `--timeout` without an accepted request (an API that answers 503 or 429 for good).
 */
export async function sendAll(options: Options, baseTs: number, counters: SendCounters): Promise<void> {
  const url = options.format === 'lp' ? new URL('/api/v2/write?precision=ms', options.url) : new URL('/api/data/ingest', options.url);
  const runId = randomUUID();
  const total = Math.ceil(options.points / options.batch);
  const stop = new AbortController();
  let lastAcceptedAt = performance.now();
  const patience: Patience = { seconds: options.timeoutSeconds, since: () => lastAcceptedAt };
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
        const { accepted, batchId } = await sendRequest(url, options.apiKey, request, `${runId}-${index}`, counters, stop.signal, patience);
        lastAcceptedAt = performance.now();
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
  // Callers stop it in a `finally`; unref as well, so that a path that misses it still cannot keep the process alive.
  timer.unref();
  return (finalText) => {
    clearInterval(timer);
    write(finalText);
    if (tty) process.stderr.write('\n');
  };
}

export const formatNumber = (n: number): string => Math.round(n).toLocaleString('en-US');
export const secondsSince = (start: number): number => (performance.now() - start) / 1000;

/** A read the wait may repeat: the body of a 200, or an answer that waiting can change, with the wait the API asked for. */
type ReadOutcome = { body: unknown } | { transient: string; retryAfterMs: number | undefined };

/** The short form of a read that got no answer: ECONNREFUSED, ECONNRESET, a timeout... */
function noAnswer(error: unknown): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) return 'no answer in time';
  const cause = error instanceof Error ? error.cause : undefined;
  return cause instanceof Error && 'code' in cause && typeof cause.code === 'string' ? cause.code : describe(error);
}

/**
 * One GET. 408, 429 and 5xx answers and no answer at all are transient (a rate limit, back-pressure, a slow or
 * restarting API): the caller waits and reads again. Any other refusal (401, 403, 404...) no wait can fix: it throws.
 */
async function readJson(
  url: URL,
  apiKey: string | undefined,
  signal: AbortSignal,
  onAnswer?: (headers: Headers) => void,
): Promise<ReadOutcome> {
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, { headers: authorization(apiKey), signal });
    text = await response.text();
  } catch (error) {
    return { transient: noAnswer(error), retryAfterMs: undefined };
  }
  onAnswer?.(response.headers);
  if (response.status === 200) return { body: safeJson(text) };
  if (response.status === 408 || response.status === 429 || response.status >= 500) {
    const retryAfter = response.headers.get('Retry-After');
    return { transient: String(response.status), retryAfterMs: retryAfter === null ? undefined : retryAfterMs(retryAfter) };
  }
  throw new LoadTestError(`GET ${url.pathname} answered ${response.status}: ${text.slice(0, 2000)}`);
}

const readBackoffMs = (failures: number): number => Math.min(250 * 2 ** (failures - 1), MAX_READ_BACKOFF_MS);

/** Every aggregate under `<prefix>/`, or the last transient answer when `timeoutMs` ran out first. */
async function readStatsWithin(options: Options, timeoutMs: number): Promise<Map<string, StatsView> | { lastAnswer: string }> {
  const deadline = performance.now() + timeoutMs;
  // Cuts a page read still in flight at the deadline (AbortSignal.timeout takes whole milliseconds only).
  const expired = AbortSignal.timeout(Math.ceil(timeoutMs));
  const stats = new Map<string, StatsView>();
  let cursor: string | null = null;
  let failures = 0;
  for (;;) {
    const url = new URL('/api/data/stats', options.url);
    url.searchParams.set('prefix', keyPrefix(options));
    url.searchParams.set('limit', String(STATS_PAGE_LIMIT));
    if (cursor !== null) url.searchParams.set('cursor', cursor);
    const outcome = await readJson(url, options.apiKey, expired);
    if ('transient' in outcome) {
      failures += 1;
      const waitMs = Math.max(outcome.retryAfterMs ?? 0, readBackoffMs(failures));
      // A wait that ends past the deadline would only end in a read cut short.
      if (waitMs >= deadline - performance.now()) return { lastAnswer: outcome.transient };
      await sleep(waitMs);
      continue;
    }
    failures = 0;
    const parsed = statsPageSchema.safeParse(outcome.body);
    if (!parsed.success) throw new LoadTestError(`GET /api/data/stats answered an unexpected body: ${parsed.error.message}`);
    for (const item of parsed.data.items) stats.set(item.key, item);
    cursor = parsed.data.nextCursor;
    if (cursor === null) return stats;
  }
}

/**
 * Every aggregate under `<prefix>/`, following `nextCursor`. 408, 429, 5xx and no answer are read again (after
 * Retry-After, or backing off) for up to `timeoutMs` in all; then, or at any other refusal, it throws.
 */
export async function readAllStats(options: Options, timeoutMs: number): Promise<Map<string, StatsView>> {
  const read = await readStatsWithin(options, timeoutMs);
  if (read instanceof Map) return read;
  throw new LoadTestError(
    `GET /api/data/stats: no full read within ${Math.round(timeoutMs / 1000)} s; the last answer was ${read.lastAnswer}`,
  );
}

const countOf = (stats: Map<string, StatsView>): number => [...stats.values()].reduce((total, view) => total + view.count, 0);

/** A batch not processed when the wait ended. */
export interface PendingBatch {
  batchId: string;
  /**
   * Its last status read's answer: `queued`, `processing 250/1000`, `429`, `ECONNREFUSED`... or `not read` (older
   * batches were still pending and are read first).
   */
  lastAnswer: string;
}

export interface WaitResult {
  stats: Map<string, StatsView>;
  counted: number;
  /** performance.now() of the poll that saw the last point counted (or gave up). */
  endedAt: number;
  timedOut: boolean;
  /** The batches still pending when the wait timed out, oldest first. */
  pending: PendingBatch[];
  /** Batch status reads made, and how many of them got a 408, 429, 5xx or no answer and had to be made again. */
  statusReads: number;
  statusRetries: number;
}

const NOT_READ = 'not read';
const batchStatusSchema = z.object({ status: z.string(), points: z.number(), processedPoints: z.number() });
// Batch statuses read at once at most: the oldest pending first, as the workers take them.
const MAX_STATUS_READS = 16;

const statusAnswer = ({ status, points, processedPoints }: z.infer<typeof batchStatusSchema>): string =>
  status === 'processing' ? `processing ${processedPoints}/${points}` : status;

function firstOf<T>(items: Iterable<T>, count: number): T[] {
  const first: T[] = [];
  for (const item of items) {
    if (first.length >= count) break;
    first.push(item);
  }
  return first;
}

/** RateLimit-Remaining of an answer; Infinity when the API sends none (no limit). */
function rateRemaining(headers: Headers): number {
  const remaining = Number(headers.get('RateLimit-Remaining') ?? Number.NaN);
  return Number.isFinite(remaining) ? remaining : Infinity;
}

/**
 * Polls the status of the accepted batches (kept in Redis by the service: no database read) until each is completed
 * or failed, then reads every aggregate once. Reading all aggregates on every poll would load the store with reads
 * of every key several times a second, which at 10,000 keys is a load of its own beside the one being measured.
 *
 * The status reads share the caller's rate limit with its sends. A round reads the oldest pending batches; while
 * every one it read is done it reads twice as many at once, otherwise it pauses, so each batch is read done once and
 * a round that finds nothing new costs a read or a few. A round reads no more than RateLimit-Remaining allows; 429,
 * 503 and the like wait Retry-After, no answer backs off, until the deadline, which also cuts reads in flight.
 */
async function waitUntilBatchesDone(options: Options, batchIds: readonly string[], startedAt: number): Promise<WaitResult> {
  const timeoutMs = options.timeoutSeconds * 1000;
  const deadline = performance.now() + timeoutMs;
  const expired = AbortSignal.timeout(timeoutMs);
  // Oldest first, with what each one's last status read got.
  const lastAnswers = new Map(batchIds.map((batchId) => [batchId, NOT_READ]));
  let processed = 0;
  let statusReads = 0;
  let statusRetries = 0;
  let problem = '';
  let finalLine: string | undefined;
  const finish = startProgress(
    () =>
      `processed ${formatNumber(processed)} points, ${formatNumber(lastAnswers.size)} batches pending (${formatNumber(processed / secondsSince(startedAt))} points/s end-to-end)` +
      (problem ? ` last answer: ${problem}` : ''),
  );
  try {
    let width = 1;
    let remaining = Infinity;
    let troubledRounds = 0;
    while (lastAnswers.size > 0 && performance.now() < deadline) {
      const round = firstOf(lastAnswers.keys(), Math.max(1, Math.min(width, remaining)));
      let lowestRemaining = Infinity;
      const outcomes = await Promise.all(
        round.map(async (batchId) => {
          const url = new URL(`/api/data/batches/${encodeURIComponent(batchId)}`, options.url);
          const signal = AbortSignal.any([expired, AbortSignal.timeout(STATUS_READ_TIMEOUT_MS)]);
          const outcome = await readJson(url, options.apiKey, signal, (headers) => {
            lowestRemaining = Math.min(lowestRemaining, rateRemaining(headers));
          });
          return { batchId, outcome };
        }),
      );
      remaining = lowestRemaining;
      statusReads += round.length;
      let done = 0;
      let retryAfter = 0;
      problem = '';
      for (const { batchId, outcome } of outcomes) {
        if ('transient' in outcome) {
          statusRetries += 1;
          problem = outcome.transient;
          retryAfter = Math.max(retryAfter, outcome.retryAfterMs ?? 0);
          // A read cut short by the deadline says nothing new about its batch.
          if (!expired.aborted || lastAnswers.get(batchId) === NOT_READ) lastAnswers.set(batchId, outcome.transient);
          continue;
        }
        const status = batchStatusSchema.safeParse(outcome.body);
        if (!status.success) {
          throw new LoadTestError(`GET /api/data/batches/${batchId} answered an unexpected body: ${status.error.message}`);
        }
        if (status.data.status === 'completed' || status.data.status === 'failed') {
          processed += status.data.processedPoints;
          lastAnswers.delete(batchId);
          done += 1;
        } else {
          lastAnswers.set(batchId, statusAnswer(status.data));
        }
      }
      troubledRounds = problem ? troubledRounds + 1 : 0;
      if (lastAnswers.size === 0) break;
      if (done === round.length) {
        width = Math.min(width * 2, MAX_STATUS_READS);
        continue;
      }
      width = Math.max(1, done);
      const pauseMs = troubledRounds === 0 ? POLL_INTERVAL_MS : Math.max(retryAfter, readBackoffMs(troubledRounds));
      await sleep(Math.max(0, Math.min(pauseMs, deadline - performance.now())));
    }
    const endedAt = performance.now();
    const timedOut = lastAnswers.size > 0;
    const pending = [...lastAnswers].map(([batchId, lastAnswer]) => ({ batchId, lastAnswer }));
    let stats = new Map<string, StatsView>();
    let counted = processed;
    let unread = '';
    try {
      stats = await readAllStats(options, timedOut ? READ_AFTER_TIMEOUT_MS : Math.max(deadline - performance.now(), READ_AFTER_MS));
      counted = countOf(stats);
    } catch (error) {
      // After a timeout the count only says how far the run got, and the batch statuses say that too.
      if (!timedOut) throw error;
      unread = `; stats not read (${describe(error)}): counted as the batch statuses said`;
    }
    finalLine = `counted ${formatNumber(counted)} points${timedOut ? ` (timed out, ${pending.length} batches pending${unread})` : ''}`;
    return { stats, counted, endedAt, timedOut, pending, statusReads, statusRetries };
  } finally {
    finish(finalLine ?? `stopped with ${formatNumber(processed)} points processed, ${formatNumber(lastAnswers.size)} batches pending`);
  }
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
  let finalLine: string | undefined;
  const finish = startProgress(
    () =>
      `counted ${formatNumber(counted)}/${formatNumber(accepted)} points (${formatNumber(counted / secondsSince(startedAt))} points/s end-to-end)` +
      (lastError ? ` last answer: ${lastError}` : ''),
  );
  try {
    for (;;) {
      // A poll that hangs (the database stuck) must not carry the wait past its deadline.
      const read = await readStatsWithin(options, Math.max(deadline - performance.now(), MIN_POLL_TIMEOUT_MS));
      if (read instanceof Map) {
        stats = read;
        counted = countOf(stats);
        lastError = '';
      } else {
        lastError = read.lastAnswer;
      }
      const now = performance.now();
      const timedOut = now >= deadline;
      if (counted >= accepted || timedOut) {
        finalLine = `counted ${formatNumber(counted)}/${formatNumber(accepted)} points${timedOut && counted < accepted ? ' (timed out)' : ''}`;
        return { stats, counted, endedAt: now, timedOut: timedOut && counted < accepted, pending: [], statusReads: 0, statusRetries: 0 };
      }
      await sleep(POLL_INTERVAL_MS);
    }
  } finally {
    finish(finalLine ?? `counting stopped at ${formatNumber(counted)}/${formatNumber(accepted)} points`);
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
  statusReads: number;
  /** Status reads that got a 408, 429, 5xx or no answer and were made again. */
  statusRetries: number;
  acceptedPoints: number;
  countedPoints: number;
  sendSeconds: number;
  acceptedPointsPerSecond: number;
  endToEndSeconds: number | null;
  endToEndPointsPerSecond: number | null;
  timeoutSeconds: number;
  timedOut: boolean;
  /** How many batches were not processed when the wait timed out; `pending` lists the oldest of them. */
  pendingBatches: number;
  pending: PendingBatch[];
  exact: boolean;
  mismatches: Mismatch[];
}

function resultLine(summary: Summary): string {
  if (summary.exact) return 'EXACT';
  if (summary.timedOut) {
    const batches = summary.pendingBatches > 0 ? ` with ${summary.pendingBatches} batch(es) pending (last answer of each)` : '';
    return `TIMED OUT after ${summary.timeoutSeconds} s of waiting${batches}: totals not checked`;
  }
  return `NOT EXACT: ${summary.mismatches.length} key(s) differ`;
}

export function printSummary(summary: Summary, out: NodeJS.WriteStream): void {
  const rate = (points: number, seconds: number): string =>
    `${formatNumber(points)} points in ${seconds.toFixed(2)} s = ${formatNumber(points / seconds)} points/s`;
  const lines = [
    `url          ${summary.url} (${summary.format}, prefix ${summary.prefix}/)`,
    `points       ${formatNumber(summary.points)} over ${summary.keys} keys, ${summary.batch} per request, concurrency ${summary.concurrency}`,
    `requests     ${summary.requests} (retries ${summary.retries})`,
    `status reads ${summary.statusReads} (${summary.statusRetries} answered 408, 429, 5xx or not at all, and were read again)`,
    `accepted     ${rate(summary.acceptedPoints, summary.sendSeconds)}`,
    summary.endToEndSeconds === null
      ? `end-to-end   timed out with ${formatNumber(summary.countedPoints)} of ${formatNumber(summary.acceptedPoints)} points counted`
      : `end-to-end   ${rate(summary.acceptedPoints, summary.endToEndSeconds)}`,
    `result       ${resultLine(summary)}`,
    ...summary.pending.map((batch) => `  ${batch.batchId}: ${batch.lastAnswer}`),
    ...summary.mismatches.slice(0, MAX_MISMATCHES_SHOWN).map((m) => `  ${m.key}: ${m.problems.join('; ')}`),
  ];
  if (summary.pendingBatches > summary.pending.length) lines.push(`  ... and ${summary.pendingBatches - summary.pending.length} more`);
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
    statusReads: waited.statusReads,
    statusRetries: waited.statusRetries,
    acceptedPoints: counters.acceptedPoints,
    countedPoints: waited.counted,
    sendSeconds,
    acceptedPointsPerSecond: counters.acceptedPoints / sendSeconds,
    endToEndSeconds,
    endToEndPointsPerSecond: endToEndSeconds === null ? null : counters.acceptedPoints / endToEndSeconds,
    timeoutSeconds: options.timeoutSeconds,
    timedOut: waited.timedOut,
    pendingBatches: waited.pending.length,
    pending: waited.pending.slice(0, MAX_PENDING_SHOWN),
    exact: !waited.timedOut && mismatches.length === 0,
    mismatches,
  };
}

async function main(): Promise<number> {
  const options = commandOptions('load-test', HELP, parseOptions);
  if (typeof options === 'number') return options;
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
