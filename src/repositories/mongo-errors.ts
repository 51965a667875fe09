import {
  MongoBulkWriteError,
  MongoServerError,
  type AnyBulkWriteOperation,
  type Collection,
  type Document,
  type OptionalId,
  type WriteError,
} from 'mongodb';

export const DUPLICATE_KEY = 11000;

/**
 * Codes with which a server refuses a document or an update for what it holds (BadValue, FailedToParse,
 * TypeMismatch, field names, size): sending the same data again gets the same answer. FerretDB answers BadValue for
 * values it cannot store (an infinite sum, nested arrays).
 */
const REFUSAL_CODES = new Set([2, 9, 14, 52, 56, 57, 10334, 17280]);

/** Whether a server answered the command with an error (as opposed to no answer: network, server selection, timeout). */
export function isServerAnswer(error: unknown): boolean {
  return error instanceof MongoServerError;
}

/** Whether the server refused the data itself: retrying the same write cannot succeed. */
export function isRefusedData(error: unknown): boolean {
  if (!(error instanceof MongoServerError)) return false;
  const failures = bulkWriteErrors(error);
  if (failures) return failures.some((failure) => failure.code !== undefined && REFUSAL_CODES.has(failure.code));
  return typeof error.code === 'number' && REFUSAL_CODES.has(error.code);
}

/** The write errors of a bulk operation, or undefined when the error is of another kind. */
export function bulkWriteErrors(error: unknown): { index: number; code: number | undefined }[] | undefined {
  if (!(error instanceof MongoBulkWriteError)) return undefined;
  const raw: unknown = error.writeErrors;
  const writeErrors = (Array.isArray(raw) ? raw : [raw]) as WriteError[];
  return writeErrors.map((writeError) => ({ index: writeError.index, code: writeError.code }));
}

/**
 * Inserts documents in one unordered command and returns how many are new.
 * Documents already there (a job run again) are duplicate-key errors, which
 * an unordered insert reports per document and which mean "done"; any other
 * error is thrown.
 */
export async function insertNew<T extends Document>(collection: Collection<T>, documents: readonly OptionalId<T>[]): Promise<number> {
  if (documents.length === 0) return 0;
  try {
    const result = await collection.bulkWrite(
      documents.map((document): AnyBulkWriteOperation<T> => ({ insertOne: { document } })),
      { ordered: false },
    );
    return result.insertedCount;
  } catch (error) {
    const failures = bulkWriteErrors(error);
    if (!failures || failures.some((failure) => failure.code !== DUPLICATE_KEY)) throw error;
    return documents.length - failures.length;
  }
}
