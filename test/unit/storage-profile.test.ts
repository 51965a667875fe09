import { checkStoredLayout, chooseProfile } from '../../src/storage/profile';

describe('chooseProfile', () => {
  it('when the server is MongoDB, then statistics are one document per key, with indexes, no locks and commands of 1,000 statements', () => {
    expect(chooseProfile('auto', 'mongodb')).toEqual({
      name: 'mongodb',
      aggregates: 'per-key',
      locks: false,
      indexes: true,
      writeBatch: 1000,
      historyExpiry: 'ttl-index',
      recentHistory: 'index',
      historyColumns: 'arrays',
      series: 'documents',
    });
  });

  it('when the server is FerretDB, then statistics live in shards behind locks, without secondary indexes, in commands of 50 statements', () => {
    expect(chooseProfile('auto', 'ferretdb')).toEqual({
      name: 'ferretdb',
      aggregates: 'shards',
      locks: true,
      indexes: false,
      writeBatch: 50,
      historyExpiry: 'sweep',
      recentHistory: 'redis-tier',
      historyColumns: 'packed',
      series: 'redis',
    });
  });

  it('when the MongoDB profile is forced on FerretDB, then it keeps its layout but FerretDB still gets commands below its limit and a retention sweep', () => {
    expect(chooseProfile('mongodb', 'ferretdb')).toEqual({
      name: 'mongodb',
      aggregates: 'per-key',
      locks: false,
      indexes: true,
      writeBatch: 50,
      historyExpiry: 'sweep',
      recentHistory: 'index',
      historyColumns: 'arrays',
      series: 'documents',
    });
  });
});

describe('checkStoredLayout', () => {
  const mongodb = chooseProfile('auto', 'mongodb');
  const ferretdb = chooseProfile('auto', 'ferretdb');

  it('when the database is new, then either profile may start', () => {
    expect(() => checkStoredLayout(mongodb, { shards: false, perKey: false }, 'auto')).not.toThrow();
    expect(() => checkStoredLayout(ferretdb, { shards: false, perKey: false }, 'auto')).not.toThrow();
  });

  it('when the per-key layout meets a database written with shards, then start-up fails naming STORAGE_PROFILE=ferretdb', () => {
    expect(() => checkStoredLayout(chooseProfile('mongodb', 'mongodb'), { shards: true, perKey: false }, 'mongodb')).toThrow(
      /holds them in shards .* set STORAGE_PROFILE=ferretdb/,
    );
  });

  it('when the shard layout meets a database written one document per key, then start-up fails naming STORAGE_PROFILE=mongodb', () => {
    expect(() => checkStoredLayout(ferretdb, { shards: false, perKey: true }, 'auto')).toThrow(/set STORAGE_PROFILE=mongodb/);
  });
});
