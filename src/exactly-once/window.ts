/*
 * Exactly-once: every point accepted is counted once, however often a request is resent or a job re-run, within
 * one window (the contract's 24 h). This folder owns it; the words the code uses for it:
 *
 *   lane      a worker's sequence of jobs, one at a time (lane-pool.ts); retired for good on any failure
 *   seq       a job's number on its lane: lane L's job s is applied to a document iff the document's guard for L >= s
 *   slot      6-hour period a lane belongs to; guards keep the last few slots and drop older ones whole (guard.ts)
 *   guard     per statistics document (a key's on MongoDB, a shard's on FerretDB) or rollup set, the highest seq of
 *             each lane applied there, checked and raised in the same write as the counts (guard.ts)
 *   claim     the (slot, lane, seq) a job wrote under, in Redis (batch-store.ts): a re-run adopts it, so every run of
 *             a job writes under the same identity
 *   marker    an Idempotency-Key's in-flight value while its request runs (idempotency-store.ts), with a lease
 *             its API process renews; a repeat gets 409 until the stored answer replaces it
 *   keyed id  the batch id of a JSON request with an Idempotency-Key, derived from key and body, so a resend after
 *             a lost answer lands on the same batch and jobs (keyed-batch.ts)
 *   receiving a streamed batch whose body is still arriving: its chunks are held (delayed jobs) until it commits
 *   swap      the stored answer replacing the marker, in the same Redis transaction that commits a streamed batch
 *             (streamed-batch.ts, the only place a streamed batch is committed)
 *
 * The rules, each stated here once, and who relies on them:
 *
 *   applied iff guarded   job (slot, lane, seq) is applied to a document iff the document's guard holds seq or more
 *             for that lane; the guard is checked and raised in the same atomic write as the counts (guard.ts).
 *             Each store applies it in its own dialect: storage/mongodb/key-aggregate-repository.ts and
 *             bucket-series-repository.ts (guardClauses in an upsert's filter; guarded-upserts.ts tells "applied
 *             before" from "created meanwhile"), storage/ferretdb/packed-aggregate-repository.ts (applyOnce on the
 *             shard it read, one conditional write under the shard's lock), lua/series-apply-0.lua (the FerretDB
 *             profile's rollups: a guard hash per slot in Redis)
 *   group, then alone   a group's write that misses a document (a job of the group was applied there) is written
 *             again one job at a time (guard.ts applyGroupOnce): the stores of storage/mongodb/
 *   one lane per group   one write raises a lane once, so a group holds at most one job per lane (lane-pool.ts
 *             takeOnePerLane): services/write-combiner.ts
 *   claim then record   a run claims its job before it reads the job's processed record, never both at once, and a
 *             run that finishes writes its record before it drops its claim: services/job-processor.ts
 *   retired on failure   a lane whose job failed is never used again (lane-pool.ts): services/job-processor.ts
 *
 * Markers, keyed ids and streamed batches are services/ingest-service.ts's.
 *
 * The window's constants are all here, derived from one.
 */

/** How long a resent request or a re-run job is recognised: the contract's 24 h. */
export const EXACTLY_ONCE_WINDOW_MS = 24 * 3600 * 1000;

/** Lanes are renewed every slot; a guard keeps whole slots. */
export const GUARD_SLOT_MS = EXACTLY_ONCE_WINDOW_MS / 4;

/** Guard slots kept: the current one and enough before it that a lane's entry lives a whole window after its last job. */
export const GUARD_KEEP_SLOTS = EXACTLY_ONCE_WINDOW_MS / GUARD_SLOT_MS + 1;

/** Claims outlive the guards by a slot, so a re-run inside the window always finds its claim. */
export const CLAIM_TTL_SECONDS = (EXACTLY_ONCE_WINDOW_MS + GUARD_SLOT_MS) / 1000;

/** Guards kept in Redis (the FerretDB profile's rollups) expire two slots after the window. */
export const REDIS_GUARD_TTL_SECONDS = (EXACTLY_ONCE_WINDOW_MS + 2 * GUARD_SLOT_MS) / 1000;

/** Streamed chunks are held (delayed jobs) this long at most; their batch's commit releases them at once. */
export const STREAM_HOLD_MS = EXACTLY_ONCE_WINDOW_MS;

/** A streamed batch that never commits is dropped after this; its held jobs fire before and find it uncommitted. */
export const RECEIVING_TTL_SECONDS = (2 * EXACTLY_ONCE_WINDOW_MS) / 1000;

/** An Idempotency-Key's stored answer, and a batch's status after its last change, live one window. */
export const IDEMPOTENCY_TTL_SECONDS = EXACTLY_ONCE_WINDOW_MS / 1000;
export const BATCH_TTL_SECONDS = EXACTLY_ONCE_WINDOW_MS / 1000;
