import { z } from 'zod';
import { keySchema, listNames } from '../domain/point-schema';
import type { BucketView, Step } from '../domain/series';
import type { StatsView } from '../domain/stats';
import type { BatchDone } from '../exactly-once/batch-store';

export const subscriptionSchema = z.strictObject(
  {
    keys: z.array(keySchema, { error: 'keys must be a list of strings' }).max(1000, 'keys must hold at most 1000 keys').default([]),
    jobs: z.boolean({ error: 'jobs must be true or false' }).optional(),
  },
  {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown field(s): ${listNames(issue.keys)}`
        : 'the payload must be an object {"keys": [...], "jobs"?: boolean}',
  },
);

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

/** The bucket of `step` that a key's newest points fell in, sent with each `stats:update`. */
export interface SeriesUpdate {
  key: string;
  step: Step;
  bucket: BucketView;
}

/** The events of `/ws`, shared by the server, the tests and any TypeScript client. */
export interface ServerToClientEvents {
  'stats:update': (update: StatsUpdate) => void;
  'series:update': (update: SeriesUpdate) => void;
  'batch:done': (done: BatchDone) => void;
}

export interface ClientToServerEvents {
  subscribe: (payload: Subscription, ack: (reply: SubscribeAck) => void) => void;
  unsubscribe: (payload: Subscription, ack: (reply: UnsubscribeAck) => void) => void;
}

export const keyRoom = (key: string): string => `key:${key}`;
export const JOBS_ROOM = 'jobs';
