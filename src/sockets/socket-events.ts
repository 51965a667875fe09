import { z } from 'zod';
import { keySchema } from '../domain/point-schema';
import type { StatsView } from '../domain/stats';
import type { BatchDone } from '../queue/batch-store';

export const subscriptionSchema = z.strictObject({
  keys: z.array(keySchema).max(1000).default([]),
  jobs: z.boolean().optional(),
});

export type Subscription = z.input<typeof subscriptionSchema>;

export interface ErrorBody {
  code: string;
  message: string;
}

export type SubscribeAck = { ok: true; snapshot: Record<string, StatsView | null> } | { ok: false; error: ErrorBody };
export type UnsubscribeAck = { ok: true } | { ok: false; error: ErrorBody };

export interface StatsUpdate {
  key: string;
  stats: StatsView;
  batchId: string;
}

/** The events of `/ws`, shared by the server, the tests and any TypeScript client. */
export interface ServerToClientEvents {
  'stats:update': (update: StatsUpdate) => void;
  'batch:done': (done: BatchDone) => void;
}

export interface ClientToServerEvents {
  subscribe: (payload: Subscription, ack: (reply: SubscribeAck) => void) => void;
  unsubscribe: (payload: Subscription, ack: (reply: UnsubscribeAck) => void) => void;
}

export const keyRoom = (key: string): string => `key:${key}`;
export const JOBS_ROOM = 'jobs';
