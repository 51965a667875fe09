import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type Redis from 'ioredis';
import type { Logger } from 'pino';
import { Server, type Socket } from 'socket.io';
import type { ZodError } from 'zod';
import { AppError } from '../domain/errors';
import { presentedKey, type AccessControl } from '../http/access';
import type { AggregateStore, SeriesStore } from '../storage/contract';
import type { BucketView } from '../domain/series';
import type { StatsView } from '../domain/stats';
import { jobEventSchema, type JobEvent } from '../queue/events';
import type { ApiMetrics } from '../metrics';
import {
  JOBS_ROOM,
  keyRoom,
  subscriptionSchema,
  type ClientToServerEvents,
  type ErrorBody,
  type ServerToClientEvents,
} from './socket-events';

export interface SocketDeps {
  aggregates: AggregateStore;
  series: SeriesStore;
  /** A Redis connection of its own: a subscribed connection can run no other command. */
  subscriber: Redis;
  channel: string;
  logger: Logger;
  metrics: ApiMetrics;
  maxKeysPerSocket: number;
  /** Events one connection may send per second (SOCKET_EVENTS_PER_SECOND); twice as many in a burst. */
  eventsPerSecond: number;
  corsOrigins: string[];
  access: AccessControl;
}

export interface SocketServer {
  io: Server<ClientToServerEvents, ServerToClientEvents>;
  /** Resolves once the relay listens on Redis pub/sub. */
  ready: Promise<void>;
  close(): Promise<void>;
}

type AppSocket = Socket<ClientToServerEvents, ServerToClientEvents>;

// A relay read that failed (MongoDB down) is retried after this.
const RELAY_RETRY_MS = 1000;

// A connection that goes on sending this many times its burst after being refused is cut off.
const FLOOD_FACTOR = 10;

/**
 * A token bucket per connection: one socket flooding events (each parsed and answered) would otherwise hold the
 * event loop for every other client. Past the budget an event is answered RATE_LIMITED unread; a connection that
 * keeps flooding is closed.
 */
function eventBudget(socket: AppSocket, perSecond: number, logger: Logger): Parameters<AppSocket['use']>[0] {
  const burst = 2 * perSecond;
  let tokens = burst;
  let refilledAt = Date.now();
  // Refused events in the current second: a connection that goes on past FLOOD_FACTOR bursts of them is cut.
  let windowStart = refilledAt;
  let refused = 0;
  return (packet, next) => {
    const now = Date.now();
    tokens = Math.min(burst, tokens + ((now - refilledAt) / 1000) * perSecond);
    refilledAt = now;
    if (tokens >= 1) {
      tokens -= 1;
      next();
      return;
    }
    if (now - windowStart >= 1000) {
      windowStart = now;
      refused = 0;
    }
    refused += 1;
    if (refused > FLOOD_FACTOR * burst) {
      if (refused === FLOOD_FACTOR * burst + 1) {
        logger.warn({ socket: socket.id }, 'socket closed: it kept sending events past its rate limit');
        // After this turn: the answers to the events let through before are sent first.
        setImmediate(() => socket.disconnect(true));
      }
      return;
    }
    const ack: unknown = packet[packet.length - 1];
    if (typeof ack === 'function') {
      (ack as (reply: unknown) => void)({
        ok: false,
        error: { code: 'RATE_LIMITED', message: `At most ${perSecond} events per second per connection; slow down and retry.` },
      });
    }
  };
}

function invalid(message: string): { ok: false; error: ErrorBody } {
  return { ok: false, error: { code: 'INVALID_SUBSCRIPTION', message } };
}

/** The ack for a payload that is not a subscription: the expected shape and the first problem. */
function invalidPayload(error: ZodError): { ok: false; error: ErrorBody } {
  return invalid(`Expected {"keys": ["..."], "jobs": true?}: ${error.issues[0]?.message ?? 'invalid payload'}.`);
}

function keyCount(socket: AppSocket): number {
  let count = 0;
  for (const room of socket.rooms) if (room.startsWith('key:')) count += 1;
  return count;
}

/**
 * Browsers send an Origin with every WebSocket handshake and CORS does not
 * apply to WebSockets, so the allow-list is checked here: the service's own
 * pages, the CORS_ORIGINS, and clients that send no Origin (not a browser).
 */
function originAllowed(req: IncomingMessage, corsOrigins: string[]): boolean {
  const origin = req.headers.origin;
  if (origin === undefined || corsOrigins.includes(origin)) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

/** The key from the handshake's `auth: {token}`, else from its Authorization or X-API-Key header. */
function handshakeKey(socket: AppSocket): string | undefined {
  const token: unknown = (socket.handshake.auth as Record<string, unknown>).token;
  return typeof token === 'string' && token.length > 0 ? token : presentedKey(socket.handshake.headers);
}

/**
 * Socket.io on `/ws`. Clients join rooms only through `subscribe`; the relay
 * turns each worker message into `stats:update` for the keys that have
 * subscribers on this instance (read once per key however many sockets
 * watch it) and `batch:done` for the `jobs` room.
 */
export function attachSocketServer(httpServer: HttpServer, deps: SocketDeps): SocketServer {
  const io = new Server<ClientToServerEvents, ServerToClientEvents>(httpServer, {
    path: '/ws',
    cors: deps.corsOrigins.length > 0 ? { origin: deps.corsOrigins } : undefined,
    // 1 MB is socket.io's default too; a subscribe payload needs a few kB.
    maxHttpBufferSize: 1e6,
    allowRequest: (req, callback) => {
      const allowed = originAllowed(req, deps.corsOrigins);
      callback(allowed ? null : 'origin not allowed', allowed);
    },
  });

  // Subscribing is reading: with READ_API_KEYS set, the handshake must carry a read (or ingest) key.
  io.use((socket, next) => {
    const result = deps.access.authorize('read', handshakeKey(socket));
    if (!(result instanceof AppError)) {
      next();
      return;
    }
    const error = new Error(result.message) as Error & { data: { code: string; message: string } };
    error.data = { code: result.code, message: result.message };
    next(error);
  });

  io.on('connection', (socket: AppSocket) => {
    deps.metrics.socketConnections.inc();
    socket.once('disconnect', () => deps.metrics.socketConnections.dec());
    socket.use(eventBudget(socket, deps.eventsPerSecond, deps.logger));
    socket.on('subscribe', async (payload, ack) => {
      if (typeof ack !== 'function') return;
      try {
        const parsed = subscriptionSchema.safeParse(payload);
        if (!parsed.success) {
          ack(invalidPayload(parsed.error));
          return;
        }
        const { keys, jobs } = parsed.data;
        const newKeys = keys.filter((key) => !socket.rooms.has(keyRoom(key)));
        if (keyCount(socket) + new Set(newKeys).size > deps.maxKeysPerSocket) {
          ack(invalid(`A connection may watch at most ${deps.maxKeysPerSocket} keys; unsubscribe from some first.`));
          return;
        }
        // One join, no await in between: an unsubscribe sent right after must find every room of this subscription.
        await socket.join(jobs ? [...keys.map(keyRoom), JOBS_ROOM] : keys.map(keyRoom));
        const snapshot = await deps.aggregates.findByKeys([...new Set(keys)]);
        ack({ ok: true, snapshot: Object.fromEntries(snapshot) });
      } catch (error) {
        deps.logger.warn({ err: error }, 'subscribe failed');
        ack({ ok: false, error: { code: 'SERVICE_UNAVAILABLE', message: 'Could not read the current statistics; try again.' } });
      }
    });

    socket.on('unsubscribe', async (payload, ack) => {
      const reply = typeof ack === 'function' ? ack : () => undefined;
      const parsed = subscriptionSchema.safeParse(payload);
      if (!parsed.success) {
        reply(invalidPayload(parsed.error));
        return;
      }
      try {
        // Every room left before the first await: a subscribe sent right after (same tick) must see the room freed.
        const rooms = [...parsed.data.keys.map(keyRoom), ...(parsed.data.jobs ? [JOBS_ROOM] : [])];
        await Promise.all(rooms.map(async (room) => socket.leave(room)));
        reply({ ok: true });
      } catch (error) {
        deps.logger.warn({ err: error }, 'unsubscribe failed');
        reply({ ok: false, error: { code: 'INTERNAL', message: 'Could not unsubscribe; try again.' } });
      }
    });
  });

  const relay = createRelay(io, deps);
  const onMessage = (channel: string, message: string): void => {
    if (channel === deps.channel) relay.accept(message);
  };
  deps.subscriber.on('message', onMessage);
  const ready = deps.subscriber.subscribe(deps.channel).then(() => undefined);

  return {
    io,
    ready,
    async close() {
      deps.subscriber.off('message', onMessage);
      relay.stop();
      await new Promise<void>((resolve) => {
        void io.close(() => {
          resolve();
        });
      });
    },
  };
}

/**
 * Coalesces updates: keys waiting to be sent are kept in one map and sent by
 * one loop, so a hot key costs one read per loop turn however many jobs
 * touched it, and a key's updates are never sent out of order.
 */
function createRelay(
  io: Server<ClientToServerEvents, ServerToClientEvents>,
  deps: SocketDeps,
): { accept(message: string): void; stop(): void } {
  // Per key: the batch of its latest update, and the newest minute bucket its points fell in (if known).
  const pending = new Map<string, { batchId: string; minute: number | null }>();
  let draining = false;
  let retry: NodeJS.Timeout | undefined;

  async function drain(): Promise<void> {
    draining = true;
    try {
      while (pending.size > 0) {
        const batch = [...pending];
        pending.clear();
        let stats: Map<string, StatsView | null>;
        let buckets: Map<string, BucketView>;
        try {
          const minutes = new Map<string, number>();
          for (const [key, { minute }] of batch) if (minute !== null) minutes.set(key, minute);
          [stats, buckets] = await Promise.all([
            deps.aggregates.findByKeys(batch.map(([key]) => key)),
            deps.series.bucketsAt(minutes, '1m'),
          ]);
        } catch (error) {
          for (const [key, update] of batch) if (!pending.has(key)) pending.set(key, update);
          throw error;
        }
        for (const [key, { batchId }] of batch) {
          const view = stats.get(key);
          if (!view) continue;
          io.to(keyRoom(key)).emit('stats:update', { key, stats: view, batchId });
          deps.metrics.socketEvents.inc({ event: 'stats:update' });
          const bucket = buckets.get(key);
          if (!bucket) continue;
          io.to(keyRoom(key)).emit('series:update', { key, step: '1m', bucket });
          deps.metrics.socketEvents.inc({ event: 'series:update' });
        }
      }
    } catch (error) {
      deps.logger.warn({ err: error }, 'could not relay stats updates; retrying');
      // Keys taken by the failed read are still owed an update: send them with the next turn.
      retry = setTimeout(() => {
        retry = undefined;
        if (!draining && pending.size > 0) void drain();
      }, RELAY_RETRY_MS);
    } finally {
      draining = false;
    }
  }

  function accept(message: string): void {
    let event: JobEvent;
    try {
      event = jobEventSchema.parse(JSON.parse(message));
    } catch {
      deps.logger.warn('ignored a malformed job event');
      return;
    }
    if (event.stage === 'done') deps.metrics.jobLatency.observe(Math.max(0, event.processedAt - event.receivedAt) / 1000);
    event.keys.forEach((key, index) => {
      if (!io.sockets.adapter.rooms.has(keyRoom(key))) return;
      // Coalesced updates of a key send the newest bucket any of them touched.
      const minute = Math.max(event.minutes?.[index] ?? -1, pending.get(key)?.minute ?? -1);
      pending.set(key, { batchId: event.batchId, minute: minute >= 0 ? minute : null });
    });
    if (event.batchDone) {
      io.to(JOBS_ROOM).emit('batch:done', event.batchDone);
      deps.metrics.socketEvents.inc({ event: 'batch:done' });
    }
    if (!draining && pending.size > 0) void drain();
  }

  return {
    accept,
    stop() {
      clearTimeout(retry);
      pending.clear();
    },
  };
}
