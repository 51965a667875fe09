import { GUARD_KEEP_SLOTS, GUARD_SLOT_MS } from './window';

/*
 * The guard's rule (window.ts, "applied iff guarded"): job (slot, lane, seq) is applied to a document iff the
 * document's guard holds seq or more for that lane, and it is checked and raised in the same atomic write as the
 * counts. Here in both dialects the stores use: update clauses (guardClauses) and a guard read into memory
 * (applyOnce); a group that meets a job applied before falls back to one job at a time (applyGroupOnce).
 */

/** Identifies one job's writes: lane `lane` of time slot `slot` applying its job number `seq` (see lane-pool.ts). */
export interface JobGuard {
  slot: number;
  lane: string;
  seq: number;
}

/** Guard slots older than these are dropped on each update. */
export interface GuardRetention {
  /** Slots kept: the current one and `keepSlots - 1` before it. */
  keepSlots: number;
  /** How many slots before the kept ones each update also removes. */
  pruneSlots: number;
}

/**
 * Entries live in `g.<slot>.<lane>`, so each update drops whole old slots with `$unset`: a document's guard holds
 * only the lanes of the last GUARD_KEEP_SLOTS slots, each kept at least a window after its lane's last job.
 */
export const GUARD_RETENTION: GuardRetention = { keepSlots: GUARD_KEEP_SLOTS, pruneSlots: 8 };

export function slotOf(nowMs: number): number {
  return Math.floor(nowMs / GUARD_SLOT_MS);
}

/** A guard as a claim stores it: `<slot>.<lane>.<seq>`. */
export function formatGuard(guard: JobGuard): string {
  return `${guard.slot}.${guard.lane}.${guard.seq}`;
}

export function parseGuard(text: string): JobGuard | null {
  const match = /^(\d+)\.([a-z0-9]+)\.(\d+)$/.exec(text);
  if (!match) return null;
  return { slot: Number(match[1]), lane: match[2] as string, seq: Number(match[3]) };
}

/**
 * The exactly-once part of a guarded update: the filter terms that match only while none of `guards` was applied,
 * the `$max`es that raise them, and the `$unset`s of guard slots past the retention.
 */
export function guardClauses(
  guards: readonly JobGuard[],
  retention: GuardRetention,
): { filter: Record<string, unknown>; max: Record<string, number>; unset: Record<string, ''> } {
  const filter: Record<string, unknown> = {};
  const max: Record<string, number> = {};
  const unset: Record<string, ''> = {};
  const written = new Set(guards.map((guard) => guard.slot));
  for (const guard of guards) {
    const guardPath = `g.${guard.slot}.${guard.lane}`;
    filter[guardPath] = { $not: { $gte: guard.seq } };
    max[guardPath] = guard.seq;
    for (let age = retention.keepSlots; age < retention.keepSlots + retention.pruneSlots; age += 1) {
      // Jobs of neighbouring slots in one update: never drop a slot that one of them writes.
      if (!written.has(guard.slot - age)) unset[`g.${guard.slot - age}`] = '';
    }
  }
  return { filter, max, unset };
}

/** A document's guard read into memory: per slot, each lane's highest seq applied there (`g` of the documents). */
export type GuardMap = Record<string, Record<string, number>>;

/** A lane's identity across slots: one update can raise a lane only once. */
export function laneOf(guard: JobGuard): string {
  return `${guard.slot}.${guard.lane}`;
}

/** Whether the job of `guard` was applied to the document holding `guards`. */
function isApplied(guards: GuardMap, guard: JobGuard): boolean {
  return (guards[guard.slot]?.[guard.lane] ?? -1) >= guard.seq;
}

/** Raises the document's guard to `guard` (in place), as the `$max` of guardClauses does. */
function raiseGuard(guards: GuardMap, guard: JobGuard): void {
  guards[guard.slot] = { ...guards[guard.slot], [guard.lane]: Math.max(guards[guard.slot]?.[guard.lane] ?? -1, guard.seq) };
}

/** The guard without slots past the retention, as the `$unset`s of guardClauses drop them: never a slot `written` is in. */
function withoutOldSlots(guards: GuardMap, written: readonly JobGuard[], retention: GuardRetention): GuardMap {
  const slots = new Set(written.map((guard) => guard.slot));
  const newest = Math.max(...slots);
  return Object.fromEntries(
    Object.entries(guards).filter(([slot]) => Number(slot) > newest - retention.keepSlots || slots.has(Number(slot))),
  );
}

/**
 * The rule on a guard read into memory, for a store that rewrites a document whole: runs `apply` for each job not
 * yet applied there, raising its guard (in place), and returns those jobs with the guard to write back, without slots
 * past the retention. The store writes both in one write that fails if the document changed since it was read.
 */
export function applyOnce<T extends { guard: JobGuard }>(
  guards: GuardMap,
  jobs: readonly T[],
  retention: GuardRetention,
  apply: (job: T) => void,
): { applied: T[]; guards: GuardMap } {
  const applied = jobs.filter(({ guard }) => !isApplied(guards, guard));
  if (applied.length === 0) return { applied, guards };
  for (const job of applied) {
    apply(job);
    raiseGuard(guards, job.guard);
  }
  return {
    applied,
    guards: withoutOldSlots(
      guards,
      applied.map(({ guard }) => guard),
      retention,
    ),
  };
}

/**
 * Writes a group with one guarded write per document (`write` resolves whether every one matched). Where one matched
 * nothing, a job of the group was applied there before (a re-run): each job is then written on its own, guarded, so
 * those applied before change nothing and the others are added.
 */
export async function applyGroupOnce<T>(jobs: readonly T[], write: (jobs: readonly T[]) => Promise<boolean>): Promise<void> {
  if ((await write(jobs)) || jobs.length === 1) return;
  for (const job of jobs) await write([job]);
}
