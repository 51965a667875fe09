import type { AnyBulkWriteOperation, BulkWriteResult, Collection, Document, Filter } from 'mongodb';
import { chunk } from '../../domain/stats';
import { bulkWriteErrors, DUPLICATE_KEY } from '../shared/mongo-errors';

/**
 * Runs guarded upserts (exactly-once/guard.ts's guardClauses in the filter) in commands of at most `batchSize`;
 * returns how many applied. An upsert whose guard does not match an existing document tries to insert a second document with
 * its `_id`: a duplicate-key error. It is sent once more without the upsert: if it then matches, it applies now
 * (another writer had just created the document); if not, it was applied before.
 */
export async function runGuardedUpserts<T extends Document>(
  collection: Collection<T>,
  operations: readonly AnyBulkWriteOperation<T>[],
  batchSize: number,
): Promise<number> {
  let applied = 0;
  for (const batch of chunk(operations, batchSize)) applied += await writeCommand(collection, batch);
  return applied;
}

async function writeCommand<T extends Document>(
  collection: Collection<T>,
  operations: readonly AnyBulkWriteOperation<T>[],
): Promise<number> {
  if (operations.length === 0) return 0;
  let result: BulkWriteResult;
  let collided: number[] = [];
  try {
    result = await collection.bulkWrite(operations, { ordered: false });
  } catch (error) {
    const failures = bulkWriteErrors(error);
    if (!failures || failures.some((failure) => failure.code !== DUPLICATE_KEY)) throw error;
    result = (error as { result: BulkWriteResult }).result;
    collided = failures.map((failure) => failure.index);
  }
  let applied = result.matchedCount + result.upsertedCount;
  if (collided.length > 0) {
    const retries = collided.map((index) => {
      const operation = operations[index] as { updateOne: { filter: Filter<T>; update: Document } };
      return { updateOne: { filter: operation.updateOne.filter, update: operation.updateOne.update } };
    });
    applied += (await collection.bulkWrite(retries, { ordered: false })).matchedCount;
  }
  return applied;
}
