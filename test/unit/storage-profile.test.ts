import { chooseProfile, reconcileWithStored } from '../../src/storage/profile';

describe('chooseProfile', () => {
  it('when the server is MongoDB, then statistics are one document per key, with indexes, no locks and commands of 1,000 statements', () => {
    expect(chooseProfile('auto', 'mongodb', 50)).toEqual({
      name: 'mongodb',
      aggregates: 'per-key',
      locks: false,
      indexes: true,
      writeBatch: 1000,
      historyExpiry: 'ttl-index',
      recentHistory: 'index',
      series: 'documents',
    });
  });

  it('when the server is FerretDB, then statistics live in shards behind locks, without secondary indexes, in commands of AGGREGATE_WRITE_BATCH', () => {
    expect(chooseProfile('auto', 'ferretdb', 50)).toEqual({
      name: 'ferretdb',
      aggregates: 'shards',
      locks: true,
      indexes: false,
      writeBatch: 50,
      historyExpiry: 'sweep',
      recentHistory: 'redis-tier',
      series: 'redis',
    });
  });

  it('when the MongoDB profile is forced on FerretDB, then it keeps its layout but FerretDB still gets commands below its limit and a retention sweep', () => {
    expect(chooseProfile('mongodb', 'ferretdb', 50)).toEqual({
      name: 'mongodb',
      aggregates: 'per-key',
      locks: false,
      indexes: true,
      writeBatch: 50,
      historyExpiry: 'sweep',
      recentHistory: 'index',
      series: 'documents',
    });
  });
});

describe('reconcileWithStored', () => {
  const mongodb = chooseProfile('auto', 'mongodb', 50);
  const ferretdb = chooseProfile('auto', 'ferretdb', 50);
  const nothing = { shards: false, perKey: false };

  it('when the database is new, then the chosen profile stands', () => {
    expect(reconcileWithStored(mongodb, nothing, 'auto')).toEqual(mongodb);
    expect(reconcileWithStored(ferretdb, nothing, 'auto')).toEqual(ferretdb);
  });

  it('when a MongoDB database was written with shards (before profiles) and the profile is auto, then it keeps the shards, with their locks', () => {
    expect(reconcileWithStored(mongodb, { shards: true, perKey: false }, 'auto')).toEqual({
      ...mongodb,
      aggregates: 'shards',
      locks: true,
    });
  });

  it('when STORAGE_PROFILE=mongodb meets a database written with shards, then start-up fails saying what to do', () => {
    expect(() => reconcileWithStored(chooseProfile('mongodb', 'mongodb', 50), { shards: true, perKey: false }, 'mongodb')).toThrow(
      /holds its statistics in shards .* unset STORAGE_PROFILE/,
    );
  });

  it('when the shard layout meets a database written one document per key, then start-up fails naming STORAGE_PROFILE=mongodb', () => {
    expect(() => reconcileWithStored(ferretdb, { shards: false, perKey: true }, 'auto')).toThrow(/set STORAGE_PROFILE=mongodb/);
  });
});
