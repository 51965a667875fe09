import { createHash } from 'node:crypto';
import type { BatchStore } from './batch-store';

// Part of every keyed id: changing it would make a resend across a deploy a second batch. A batch status lives one
// window (BATCH_TTL_SECONDS), at least this long, so yesterday's id is found while it matters.
const DAY_MS = 24 * 3600 * 1000;

/** A request sent with an Idempotency-Key: who sent it, the key, and its body's fingerprint. */
export interface KeyedRequest {
  scope: string;
  key: string;
  fingerprint: string;
}

/** The batch id of a keyed request on one UTC day (see keyedBatchIdFor). */
export function keyedBatchId(request: KeyedRequest, day: number): string {
  const { scope, key, fingerprint } = request;
  return `k${createHash('sha256').update(`${scope}\n${key}\n${fingerprint}\n${day}`).digest('hex').slice(0, 31)}`;
}

/**
 * The batch id of a JSON request sent with an Idempotency-Key: the same for every attempt with the same key, body
 * and caller within the window. If Redis dies after storing a batch but before answering, the API says 503 and the
 * client sends it again; the resend then stores nothing new (same jobs, same batch) instead of a second copy of the
 * points. The id is per UTC day, and yesterday's is reused while its batch still exists (kept one window), so the
 * same key and body sent again after the window is a new batch.
 */
export async function keyedBatchIdFor(batches: BatchStore, request: KeyedRequest, receivedAt: number): Promise<string> {
  const day = Math.floor(receivedAt / DAY_MS);
  const yesterdays = keyedBatchId(request, day - 1);
  return (await batches.exists(yesterdays)) ? yesterdays : keyedBatchId(request, day);
}
