import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { io, type Socket } from 'socket.io-client';
import {
  compareTotals,
  describe,
  sendRequest,
  totalsOf,
  waitUntilCounted,
  type GeneratedPoint,
  type Mismatch,
  type RequestBody,
  type SendCounters,
} from '../load-test';
import type { ClientToServerEvents, ServerToClientEvents } from '../src/sockets/socket-events';
import { loadOptions, log, percentile, type BenchContext } from './common';

type BenchSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface LatencyResult {
  /** Half the end-to-end rate the same processes reached in the throughput phase. */
  targetPointsPerSecond: number;
  pointsPerRequest: number;
  requestsPerSecond: number;
  probes: number;
  /** Probes whose `stats:update` arrived within PROBE_TIMEOUT_MS. */
  received: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  errors: string[];
  /** The phase's own points were all counted, exactly. */
  exact: boolean;
  mismatches: Mismatch[];
}

// Past this many requests a second, requests grow instead: the API and the sockets are not what is measured.
const MAX_REQUESTS_PER_SECOND = 20;
// A percentile of fewer samples means little: a slow service gets more, smaller requests in the same time.
const MIN_PROBES = 10;
const PROBE_TIMEOUT_MS = 30_000;
const CONNECT_TIMEOUT_MS = 10_000;
const ACK_TIMEOUT_MS = 10_000;
// The service allows 100 keys per socket (MAX_KEYS_PER_SOCKET); probes are spread so that slow answers cannot hit it.
const SOCKETS = 4;
const MAX_ERRORS_KEPT = 5;
// The phase's timestamps start a day back, probes 50,000 s later: all in the past, distinct, and apart from the main data.
const DAY_MS = 86_400_000;
const PROBE_OFFSET_MS = 50_000_000;

/** The latency phase's keys: `<prefix>-latency/<k>` and `<prefix>-latency/probe/<i>`, apart from the main data. */
export const latencyPrefix = (ctx: BenchContext): string => `${ctx.prefix}-latency`;

async function connect(url: string): Promise<BenchSocket> {
  const socket: BenchSocket = io(url, { path: '/ws', transports: ['websocket'], reconnection: false, timeout: CONNECT_TIMEOUT_MS });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  return socket;
}

interface Plan {
  requests: number;
  pointsPerRequest: number;
  requestsPerSecond: number;
}

/**
 * Requests of the throughput phase's size (`batch` points), so the jobs are
 * the same shape as the ones whose rate was measured: on FerretDB a job's
 * cost follows its number of keys more than its number of points, so
 * smaller requests at the same points/s would be an overload, not half the load.
 */
function planFor(ctx: BenchContext, pointsPerSecond: number, seconds: number): Plan {
  const requestsPerSecond = Math.max(MIN_PROBES / seconds, Math.min(MAX_REQUESTS_PER_SECOND, pointsPerSecond / ctx.batch));
  return {
    requests: Math.round(seconds * requestsPerSecond),
    pointsPerRequest: Math.max(2, Math.round(pointsPerSecond / requestsPerSecond)),
    requestsPerSecond,
  };
}

/** Request `index`: `pointsPerRequest - 1` points of the phase's keys, then one point of its own probe key. */
function requestPoints(
  ctx: BenchContext,
  prefix: string,
  plan: Plan,
  index: number,
  baseTs: number,
): { points: GeneratedPoint[]; probeKey: string } {
  const regular = plan.pointsPerRequest - 1;
  const points: GeneratedPoint[] = [];
  for (let j = index * regular; j < (index + 1) * regular; j += 1) {
    points.push({ key: `${prefix}/${j % ctx.keys}`, value: (j % 1999) - 999, timestamp: baseTs + j });
  }
  const probeKey = `${prefix}/probe/${index}`;
  points.push({ key: probeKey, value: 1, timestamp: baseTs + PROBE_OFFSET_MS + index });
  return { points, probeKey };
}

/**
 * Open-loop load at `pointsPerSecond` for `seconds`: requests go out on a
 * fixed schedule whatever the answers. Before each POST a socket subscribes
 * to the request's probe key; the latency is from just before the POST to
 * the `stats:update` of that key. Then every point of the phase must be
 * counted exactly.
 */
export async function measureLatency(ctx: BenchContext, url: string, pointsPerSecond: number, seconds: number): Promise<LatencyResult> {
  const plan = planFor(ctx, pointsPerSecond, seconds);
  const prefix = latencyPrefix(ctx);
  const baseTs = Date.now() - DAY_MS;
  const result: LatencyResult = {
    targetPointsPerSecond: pointsPerSecond,
    pointsPerRequest: plan.pointsPerRequest,
    requestsPerSecond: plan.requestsPerSecond,
    probes: plan.requests,
    received: 0,
    p50Ms: null,
    p99Ms: null,
    maxMs: null,
    errors: [],
    exact: false,
    mismatches: [],
  };
  const note = (error: unknown): void => {
    if (result.errors.length < MAX_ERRORS_KEPT) result.errors.push(describe(error));
  };
  const sockets = await Promise.all(Array.from({ length: SOCKETS }, () => connect(url)));
  const arrivals = new Map<string, (at: number) => void>();
  for (const socket of sockets) {
    socket.on('stats:update', (update) => arrivals.get(update.key)?.(performance.now()));
  }
  const ingestUrl = new URL('/api/data/ingest', url);
  const runId = randomUUID();
  const stop = new AbortController();
  const counters: SendCounters = { requests: 0, retries: 0, sentPoints: 0, acceptedPoints: 0, batchIds: [] };
  const latencies: number[] = [];
  const sent: GeneratedPoint[] = [];

  const probe = async (index: number): Promise<void> => {
    const socket = sockets[index % SOCKETS] as BenchSocket;
    const { points, probeKey } = requestPoints(ctx, prefix, plan, index, baseTs);
    sent.push(...points);
    const arrived = new Promise<number>((resolve) => arrivals.set(probeKey, resolve));
    try {
      const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck('subscribe', { keys: [probeKey] });
      if (!ack.ok) throw new Error(`subscribe refused: ${ack.error.message}`);
      const body: RequestBody = { points: points.length, body: JSON.stringify({ points }), contentType: 'application/json' };
      const postedAt = performance.now();
      // Not `+= await`: that would read the total before the await and lose the other probes' additions.
      const { accepted, batchId } = await sendRequest(ingestUrl, undefined, body, `${runId}-${index}`, counters, stop.signal);
      counters.acceptedPoints += accepted;
      counters.batchIds?.push(batchId);
      const at = await Promise.race([arrived, sleep(PROBE_TIMEOUT_MS, null)]);
      if (at === null) throw new Error(`no stats:update for ${probeKey} within ${PROBE_TIMEOUT_MS / 1000} s`);
      latencies.push(at - postedAt);
    } finally {
      arrivals.delete(probeKey);
      socket.emit('unsubscribe', { keys: [probeKey] }, () => undefined);
    }
  };

  const started = performance.now();
  const inFlight: Promise<void>[] = [];
  try {
    for (let index = 0; index < plan.requests; index += 1) {
      const due = started + (index * 1000) / plan.requestsPerSecond;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      inFlight.push(probe(index).catch(note));
    }
    await Promise.all(inFlight);
    log(`latency: ${latencies.length}/${plan.requests} probes answered; waiting until the phase's points are counted`);
    const options = { ...loadOptions(ctx, sent.length, url, PROBE_TIMEOUT_MS / 1000), prefix };
    const waited = await waitUntilCounted(options, counters.acceptedPoints, started, counters.batchIds);
    if (waited.timedOut) {
      note(`the phase's ${counters.acceptedPoints} points were not all counted within ${PROBE_TIMEOUT_MS / 1000} s`);
    } else {
      result.mismatches = compareTotals(totalsOf(sent), waited.stats);
      result.exact = result.mismatches.length === 0 && counters.acceptedPoints === sent.length;
    }
  } catch (error) {
    note(error);
  } finally {
    stop.abort();
    for (const socket of sockets) socket.disconnect();
  }
  result.received = latencies.length;
  result.p50Ms = percentile(latencies, 50);
  result.p99Ms = percentile(latencies, 99);
  result.maxMs = percentile(latencies, 100);
  return result;
}
