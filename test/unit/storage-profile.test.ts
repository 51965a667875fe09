import { chooseProfile } from '../../src/storage/profile';

describe('chooseProfile', () => {
  it('when the server is MongoDB, then statistics are one document per key, with indexes, no locks and the driver splitting commands', () => {
    expect(chooseProfile('auto', 'mongodb', 50)).toEqual({
      name: 'mongodb',
      aggregates: 'per-key',
      locks: false,
      indexes: true,
      writeBatch: null,
    });
  });

  it('when the server is FerretDB, then statistics live in shards behind locks, without secondary indexes, in commands of AGGREGATE_WRITE_BATCH', () => {
    expect(chooseProfile('auto', 'ferretdb', 50)).toEqual({
      name: 'ferretdb',
      aggregates: 'shards',
      locks: true,
      indexes: false,
      writeBatch: 50,
    });
  });

  it('when the MongoDB profile is forced on FerretDB, then it keeps its layout but FerretDB still gets commands below its limit', () => {
    expect(chooseProfile('mongodb', 'ferretdb', 50)).toEqual({
      name: 'mongodb',
      aggregates: 'per-key',
      locks: false,
      indexes: true,
      writeBatch: 50,
    });
  });
});
