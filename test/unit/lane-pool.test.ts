import { formatGuard, GUARD_RETENTION, parseGuard, slotOf } from '../../src/exactly-once/guard';
import { LanePool, takeOnePerLane } from '../../src/exactly-once/lane-pool';
import { CLAIM_TTL_SECONDS, GUARD_SLOT_MS } from '../../src/exactly-once/window';

const NOW = Date.parse('2026-01-01T01:00:00.000Z');
const DAY_MS = 24 * 3600 * 1000;

describe('LanePool', () => {
  it('when a lane runs jobs one after another, then its sequence grows by one per job on the same lane', () => {
    const pool = new LanePool();
    const first = pool.acquire(NOW);
    pool.release(first, true);
    const second = pool.acquire(NOW);
    pool.release(second, true);
    const third = pool.acquire(NOW);

    expect(first).toMatchObject({ slot: slotOf(NOW), seq: 1 });
    expect(second).toEqual({ slot: first.slot, lane: first.lane, seq: 2 });
    expect(third).toEqual({ slot: first.slot, lane: first.lane, seq: 3 });
  });

  it('when a job fails, then its lane is never handed out again', () => {
    const pool = new LanePool();
    const failed = pool.acquire(NOW);
    pool.release(failed, false);

    const lanes = new Set<string>();
    for (let job = 0; job < 20; job += 1) {
      const guard = pool.acquire(NOW);
      lanes.add(guard.lane);
      pool.release(guard, job % 2 === 0);
    }

    expect(lanes.has(failed.lane)).toBe(false);
  });

  it('when a job fails, then the next job starts a fresh lane at sequence 1', () => {
    const pool = new LanePool();
    const failed = pool.acquire(NOW);
    pool.release(failed, false);
    const next = pool.acquire(NOW);
    expect(next.lane).not.toBe(failed.lane);
    expect(next.seq).toBe(1);
  });

  it('when jobs run at the same time, then each gets its own lane', () => {
    const pool = new LanePool();
    const guards = Array.from({ length: 5 }, () => pool.acquire(NOW));
    expect(new Set(guards.map((guard) => guard.lane)).size).toBe(5);
    expect(guards.every((guard) => guard.seq === 1)).toBe(true);
  });

  it('when a lane is released, then it is reused and its sequence continues where it stopped', () => {
    const pool = new LanePool();
    const a = pool.acquire(NOW);
    const b = pool.acquire(NOW);
    pool.release(b, true);
    pool.release(a, false);
    const next = pool.acquire(NOW);
    expect(next).toEqual({ slot: b.slot, lane: b.lane, seq: 2 });
  });

  it('when a new slot begins, then idle lanes of the old slot are dropped and a new lane starts at sequence 1', () => {
    const pool = new LanePool();
    const old = pool.acquire(NOW);
    pool.release(old, true);

    const later = NOW + GUARD_SLOT_MS;
    const fresh = pool.acquire(later);

    expect(fresh.slot).toBe(old.slot + 1);
    expect(fresh.lane).not.toBe(old.lane);
    expect(fresh.seq).toBe(1);
  });

  it('when the same lane is released twice, then it is still handed out to one job at a time', () => {
    const pool = new LanePool();
    const guard = pool.acquire(NOW);
    pool.release(guard, true);
    pool.release(guard, true);
    const a = pool.acquire(NOW);
    const b = pool.acquire(NOW);
    expect(a.lane).not.toBe(b.lane);
  });

  it('when a guard the pool never leased is released, then nothing changes', () => {
    const pool = new LanePool();
    pool.release({ slot: slotOf(NOW), lane: 'abcdef012345', seq: 9 }, true);
    const guard = pool.acquire(NOW);
    expect(guard.lane).not.toBe('abcdef012345');
    expect(guard.seq).toBe(1);
  });

  it('when a lane id is made, then it is one parseGuard reads back', () => {
    const guard = new LanePool().acquire(NOW);
    expect(parseGuard(formatGuard(guard))).toEqual(guard);
  });
});

describe('slotOf', () => {
  it('when two times fall in the same 6-hour window, then they share a slot, and the next window is the next slot', () => {
    const start = slotOf(NOW) * GUARD_SLOT_MS;
    expect(slotOf(start)).toBe(slotOf(start + GUARD_SLOT_MS - 1));
    expect(slotOf(start + GUARD_SLOT_MS)).toBe(slotOf(start) + 1);
  });
});

describe('the guard window', () => {
  it('when a job is re-run up to 24 h after its lane last ran, then the lane entry is still kept', () => {
    // The slot a lane ran in may be almost over, so only the slots after it count.
    expect((GUARD_RETENTION.keepSlots - 1) * GUARD_SLOT_MS).toBeGreaterThanOrEqual(DAY_MS);
  });

  it('when a claim is taken, then it outlives every slot the guard keeps', () => {
    expect(CLAIM_TTL_SECONDS * 1000).toBeGreaterThanOrEqual(GUARD_RETENTION.keepSlots * GUARD_SLOT_MS);
  });
});

describe('formatGuard and parseGuard', () => {
  it('when a guard is formatted and parsed again, then it is unchanged', () => {
    const guard = { slot: 81_920, lane: '0a1b2c3d4e5f', seq: 17 };
    expect(formatGuard(guard)).toBe('81920.0a1b2c3d4e5f.17');
    expect(parseGuard(formatGuard(guard))).toEqual(guard);
  });

  it.each([
    ['empty', ''],
    ['a word', 'garbage'],
    ['two parts', '1.abc'],
    ['four parts', '1.abc.2.3'],
    ['a negative slot', '-1.abc.2'],
    ['an upper-case lane', '1.ABC.2'],
    ['a lane with a dot-like separator', '1.a_b.2'],
    ['a fractional sequence', '1.abc.2.5'],
    ['a non-numeric sequence', '1.abc.x'],
    ['an empty lane', '1..2'],
    ['surrounding spaces', ' 1.abc.2 '],
    ['a trailing newline', '1.abc.2\n'],
  ])('when the text is %s, then parseGuard returns null', (_case, text) => {
    expect(parseGuard(text)).toBeNull();
  });
});

describe('takeOnePerLane', () => {
  const entry = (lane: string, seq: number, size: number) => ({ guard: { slot: 1, lane, seq }, size });
  const take = (pending: ReturnType<typeof entry>[], max: number) =>
    takeOnePerLane(
      pending,
      (e) => e.guard,
      (e) => e.size,
      max,
    );

  it('when two jobs of one lane wait, then a group takes the older and leaves the newer for the next', () => {
    const pending = [entry('a', 1, 1), entry('a', 2, 1), entry('b', 1, 1)];
    expect(take(pending, 100).map((e) => `${e.guard.lane}${e.guard.seq}`)).toEqual(['a1', 'b1']);
    expect(pending.map((e) => `${e.guard.lane}${e.guard.seq}`)).toEqual(['a2']);
  });

  it('when jobs exceed the size, then the first is taken whatever its size and later ones only while they fit', () => {
    const pending = [entry('a', 1, 50), entry('b', 1, 60), entry('c', 1, 40)];
    expect(take(pending, 30).map((e) => e.guard.lane)).toEqual(['a']);
    expect(take(pending, 100).map((e) => e.guard.lane)).toEqual(['b', 'c']);
  });
});
