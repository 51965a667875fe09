import type { ProcessedRecord } from '../../src/storage/contract';
import { ownRepositories } from '../support/own-repositories';
import { STORAGE_PROFILES } from '../support/profiles';

/** The processed records contract (ProcessedRecordStore), the same for every profile. */
const own = ownRepositories('processed');

function record(batchId: string, chunk: number): ProcessedRecord {
  return {
    _id: `${batchId}:${chunk}`,
    batchId,
    chunk,
    points: 3,
    keys: 1,
    guard: '10.lanea.1',
    attempt: 1,
    durationMs: 5,
    processedAt: new Date(),
  };
}

describe.each(STORAGE_PROFILES)('processed records of the %s profile', (profile) => {
  it('when jobs are recorded, then they exist, and recording them again changes nothing', async () => {
    const { repos } = await own.open({ STORAGE_PROFILE: profile });
    expect(await repos.processed.exists('proc-a:0')).toBe(false);
    await repos.processed.recordAll([record('proc-a', 0), record('proc-a', 1)]);
    await repos.processed.recordAll([record('proc-a', 1), record('proc-a', 2)]);
    expect(await repos.processed.exists('proc-a:0')).toBe(true);
    expect(await repos.processed.exists('proc-a:2')).toBe(true);
    expect(await repos.processed.exists('proc-b:0')).toBe(false);
    expect(await repos.models.processedRecord.countDocuments({ batchId: 'proc-a' })).toBe(3);
  });
});
