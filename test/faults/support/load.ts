import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { keyNames } from './kit';

export interface Point {
  key: string;
  value: number;
}

interface KeyTotal {
  count: number;
  sum: number;
}

/**
 * What the clients sent and what the API accepted with a 202, per key and per value. Values are distinct integers,
 * so a point counted twice shows in a sum and a record stored twice shows as a repeated value.
 */
export class Ledger {
  private readonly totals = new Map<string, KeyTotal>();
  /** value -> key of every accepted point. */
  readonly acceptedValues = new Map<number, string>();
  /** The batch id of every 202 (a resend answered from its first response repeats it). */
  readonly batchIds = new Set<string>();
  sent = 0;

  get accepted(): number {
    return this.acceptedValues.size;
  }

  get keys(): string[] {
    return [...this.totals.keys()];
  }

  expected(key: string): KeyTotal {
    return this.totals.get(key) ?? { count: 0, sum: 0 };
  }

  /** Records points the API answered 202 for; a value accepted twice is a bug in the scenario, not in the service. */
  accept(points: readonly Point[], batchId?: string): void {
    if (batchId !== undefined) this.batchIds.add(batchId);
    for (const point of points) {
      if (this.acceptedValues.has(point.value)) throw new Error(`value ${point.value} was accepted twice by the load generator`);
      this.acceptedValues.set(point.value, point.key);
      const total = this.totals.get(point.key) ?? { count: 0, sum: 0 };
      total.count += 1;
      total.sum += point.value;
      this.totals.set(point.key, total);
    }
  }
}

export interface RequestRecord {
  startedAt: number;
  ms: number;
  /** HTTP status, or 0 when the connection failed. */
  status: number;
  retryAfter: string | null;
  error?: string;
}

export interface LoadOptions {
  baseUrl: string;
  keys: readonly string[];
  points: number;
  /** Value of the first point; point i has value firstValue + i. */
  firstValue: number;
  perRequest: number;
  concurrency: number;
  /** Pacing: requests start no faster than this, so the load spans the faults instead of being queued in a second. */
  pointsPerSecond: number;
  /** Prefix of each request's Idempotency-Key (resends of a request carry the same key and the same bytes). */
  requestPrefix: string;
  /**
   * Pacing by the queue as well: no request starts while `waiting()` jobs or more wait. Keeps a backlog of about
   * `jobs` whatever the workers absorb on this machine, so a fault always lands mid-batch and the drain stays short.
   */
  backlog?: { jobs: number; waiting: () => Promise<number> };
}

// The API says 5 s (503) or 1 s (409); a longer value would only slow the suite down.
const MAX_RETRY_AFTER_MS = 10_000;
const ATTEMPT_TIMEOUT_MS = 30_000;
// A request that is still not accepted after this long fails the scenario.
const REQUEST_DEADLINE_MS = 90_000;
const BACKLOG_POLL_MS = 50;

/** A running load: every attempt is recorded, with its status and duration. */
export class LoadRun {
  readonly requests: RequestRecord[] = [];
  /** Answers a well-behaved client should never get (500, 4xx other than 409/429). */
  readonly unexpected: string[] = [];
  readonly done: Promise<void>;
  private stopped = false;
  private settled = false;

  constructor(
    private readonly options: LoadOptions,
    private readonly ledger: Ledger,
  ) {
    this.done = this.run().finally(() => {
      this.settled = true;
    });
    // Handled here so a failure between now and the scenario's `await done` is not reported as unhandled.
    this.done.catch(() => undefined);
  }

  /** True once every request was accepted (or the load failed). */
  get finished(): boolean {
    return this.settled;
  }

  /** Requests whose attempt started in [from, to] (ms since epoch). */
  startedBetween(from: number, to: number): RequestRecord[] {
    return this.requests.filter((request) => request.startedAt >= from && request.startedAt <= to);
  }

  /** Stops sending new requests (those in flight finish); used when a scenario fails half-way. */
  stop(): void {
    this.stopped = true;
  }

  private async run(): Promise<void> {
    const { points, perRequest, concurrency, pointsPerSecond } = this.options;
    const requestCount = Math.ceil(points / perRequest);
    const started = Date.now();
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < requestCount && !this.stopped) {
        const index = next;
        next += 1;
        const due = started + (index * perRequest * 1000) / pointsPerSecond;
        if (due > Date.now()) await sleep(due - Date.now());
        await this.whileBacklogFull();
        await this.send(index, this.pointsOf(index, requestCount));
      }
    };
    await Promise.all(Array.from({ length: concurrency }, lane));
  }

  /** Waits while the queue holds the backlog's number of jobs or more (and the load is not stopped). */
  private async whileBacklogFull(): Promise<void> {
    const { backlog } = this.options;
    if (!backlog) return;
    // A queue that cannot be read (Redis restarting) does not hold the load: the API answers for itself.
    while (!this.stopped && (await backlog.waiting().catch(() => 0)) >= backlog.jobs) await sleep(BACKLOG_POLL_MS);
  }

  private pointsOf(index: number, requestCount: number): Point[] {
    const { points, perRequest, keys, firstValue } = this.options;
    const from = index * perRequest;
    const to = index === requestCount - 1 ? points : from + perRequest;
    return Array.from({ length: to - from }, (_, offset) => {
      const i = from + offset;
      return { key: keys[i % keys.length] ?? '', value: firstValue + i };
    });
  }

  /** Sends one request until it is accepted, as a careful client does: same key and bytes, Retry-After honoured. */
  private async send(index: number, points: Point[]): Promise<void> {
    this.ledger.sent += points.length;
    const body = JSON.stringify({ points });
    const idempotencyKey = `${this.options.requestPrefix}-${index}`;
    const deadline = Date.now() + REQUEST_DEADLINE_MS;
    for (let attempt = 1; ; attempt += 1) {
      if (Date.now() > deadline) throw new Error(`request ${idempotencyKey} was not accepted within ${REQUEST_DEADLINE_MS} ms`);
      const startedAt = Date.now();
      let status = 0;
      let retryAfter: string | null = null;
      let error: string | undefined;
      let answer: unknown;
      try {
        const response = await fetch(`${this.options.baseUrl}/api/data/ingest`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
          body,
          signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
        });
        status = response.status;
        retryAfter = response.headers.get('retry-after');
        answer = await response.json();
      } catch (caught) {
        error = describe(caught);
      }
      this.requests.push({ startedAt, ms: Date.now() - startedAt, status, retryAfter, error });
      if (status === 202) {
        this.acceptAnswer(idempotencyKey, points, answer);
        return;
      }
      if (status === 503 || status === 409 || status === 429) {
        await sleep(retryAfterMs(retryAfter));
      } else if (status === 0) {
        // The API is restarting or the connection was cut: resend under the same key after a short pause.
        await sleep(Math.min(2000, 200 * attempt));
      } else {
        this.unexpected.push(`${idempotencyKey}: ${status} ${JSON.stringify(answer)}`);
        await sleep(1000);
      }
    }
  }

  private acceptAnswer(idempotencyKey: string, points: Point[], answer: unknown): void {
    const accepted = (answer as { accepted?: unknown } | undefined)?.accepted;
    const rejected = (answer as { rejected?: unknown } | undefined)?.rejected;
    const batchId = (answer as { batchId?: unknown } | undefined)?.batchId;
    if (accepted !== points.length || !Array.isArray(rejected) || rejected.length > 0 || typeof batchId !== 'string') {
      this.unexpected.push(`${idempotencyKey}: 202 with ${JSON.stringify(answer)}`);
      return;
    }
    this.ledger.accept(points, batchId);
  }
}

export function startLoad(options: LoadOptions, ledger: Ledger): LoadRun {
  return new LoadRun(options, ledger);
}

function retryAfterMs(header: string | null): number {
  const seconds = Number(header);
  return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds * 1000, MAX_RETRY_AFTER_MS) : 1000;
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as Error & { cause?: unknown }).cause;
  return cause instanceof Error ? `${error.message}: ${cause.message}` : error.message;
}

export interface SlowUpload {
  /** Resolves with the answer once the whole body was sent and the API answered. */
  answer: Promise<{ status: number; body: unknown; ms: number }>;
  /** Resolves once the first lines are on the wire (the request is in flight). */
  started: Promise<void>;
}

/**
 * Streams `points` as NDJSON over one connection, in `pieces` parts spread over `durationMs`: a slow client whose
 * request is in flight for the whole duration.
 */
export function slowNdjsonUpload(
  port: number,
  points: readonly Point[],
  durationMs: number,
  headers: Record<string, string> = {},
  pieces = 20,
): SlowUpload {
  let markStarted: () => void = () => undefined;
  const started = new Promise<void>((resolve) => {
    markStarted = resolve;
  });
  const answer = new Promise<{ status: number; body: unknown; ms: number }>((resolve, reject) => {
    const begun = Date.now();
    const request = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/api/data/ingest',
        headers: { 'content-type': 'application/x-ndjson', ...headers },
      },
      (response) => {
        const parts: Buffer[] = [];
        response.on('data', (part: Buffer) => parts.push(part));
        response.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          resolve({ status: response.statusCode ?? 0, body: text ? (JSON.parse(text) as unknown) : null, ms: Date.now() - begun });
        });
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    const lines = points.map((point) => `${JSON.stringify(point)}\n`);
    const perPiece = Math.ceil(lines.length / pieces);
    void (async () => {
      for (let piece = 0; piece < pieces && !request.destroyed; piece += 1) {
        request.write(lines.slice(piece * perPiece, (piece + 1) * perPiece).join(''));
        if (piece === 0) markStarted();
        await sleep(durationMs / pieces);
      }
      request.end();
    })();
  });
  return { answer, started };
}

/** The NDJSON body of `points`: the same bytes on every resend, so the Idempotency-Key fingerprint matches. */
export function ndjsonOf(points: readonly Point[]): string {
  return points.map((point) => `${JSON.stringify(point)}\n`).join('');
}

export interface UploadOutcome {
  attempts: RequestRecord[];
  accepted: boolean;
}

/**
 * A careful client's streamed upload: first sent slowly (in flight for `durationMs`), then, if it was not
 * accepted, resent at once under the same Idempotency-Key and bytes, honouring Retry-After, until it is or
 * `deadlineMs` passes.
 */
export async function uploadUntilAccepted(
  port: number,
  points: readonly Point[],
  idempotencyKey: string,
  options: { durationMs: number; deadlineMs: number; onStarted?: () => void },
): Promise<UploadOutcome> {
  const attempts: RequestRecord[] = [];
  const deadline = Date.now() + options.deadlineMs;
  const first = slowNdjsonUpload(port, points, options.durationMs, { 'idempotency-key': idempotencyKey });
  void first.started.then(options.onStarted);
  const startedAt = Date.now();
  try {
    const answer = await first.answer;
    attempts.push({ startedAt, ms: answer.ms, status: answer.status, retryAfter: null });
    if (answer.status === 202) return { attempts, accepted: true };
  } catch (error) {
    attempts.push({ startedAt, ms: Date.now() - startedAt, status: 0, retryAfter: null, error: describe(error) });
  }
  const body = ndjsonOf(points);
  while (Date.now() < deadline) {
    const attemptAt = Date.now();
    try {
      const response = await fetch(`http://127.0.0.1:${port}/api/data/ingest`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson', 'idempotency-key': idempotencyKey },
        body,
        signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
      });
      const retryAfter = response.headers.get('retry-after');
      await response.arrayBuffer();
      attempts.push({ startedAt: attemptAt, ms: Date.now() - attemptAt, status: response.status, retryAfter });
      if (response.status === 202) return { attempts, accepted: true };
      await sleep(retryAfterMs(retryAfter));
    } catch (error) {
      attempts.push({ startedAt: attemptAt, ms: Date.now() - attemptAt, status: 0, retryAfter: null, error: describe(error) });
      await sleep(1000);
    }
  }
  return { attempts, accepted: false };
}

/**
 * A careful client's upload of 1,008 points (84 on each of the 12 keys of `prefix`), streamed and resent under
 * `idempotencyKey` until accepted (see uploadUntilAccepted), counted as sent in `ledger`. Resolves once the upload
 * has been on the wire for `inFlightMs`: a scenario injects its fault then, and awaits `upload` afterwards.
 */
export async function keyedUploadInFlight(
  port: number,
  prefix: string,
  idempotencyKey: string,
  ledger: Ledger,
  options: { durationMs: number; deadlineMs: number; inFlightMs: number },
): Promise<{ points: Point[]; upload: Promise<UploadOutcome> }> {
  const points = keyNames(prefix, 12).flatMap((key, k) => Array.from({ length: 84 }, (_, i) => ({ key, value: 1_000_000 + k * 1000 + i })));
  ledger.sent += points.length;
  let started: () => void = () => undefined;
  const streaming = new Promise<void>((resolve) => {
    started = resolve;
  });
  const upload = uploadUntilAccepted(port, points, idempotencyKey, { ...options, onStarted: started });
  await streaming;
  await sleep(options.inFlightMs);
  return { points, upload };
}
