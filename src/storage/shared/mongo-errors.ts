import {
  MongoBulkWriteError,
  MongoNetworkError,
  MongoNotConnectedError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
  MongoServerError,
  type AnyBulkWriteOperation,
  type Collection,
  type Document,
  type OptionalId,
  type WriteError,
} from 'mongodb';

export const DUPLICATE_KEY = 11000;

/**
 * Codes with which a server refuses a statement for what it holds (BadValue, FailedToParse, TypeMismatch, field
 * names): sending the same data again gets the same answer. FerretDB answers BadValue for values it cannot store
 * (an infinite sum, nested arrays). Capacity errors (a document over 16 MB) are not among them: they are retried.
 */
const REFUSAL_CODES = new Set([2, 9, 14, 52, 56, 57]);

/**
 * The per-statement errors of a bulk write, or undefined when the error is of another kind. The driver wraps any
 * failure of a bulk write in MongoBulkWriteError, a lost connection or a timeout too, with no write errors: only
 * write errors without a write-concern error are the server's answer about the statements.
 */
export function bulkWriteErrors(error: unknown): { index: number; code: number | undefined }[] | undefined {
  if (!(error instanceof MongoBulkWriteError)) return undefined;
  const raw: unknown = error.writeErrors;
  const writeErrors = (Array.isArray(raw) ? raw : [raw]) as WriteError[];
  if (writeErrors.length === 0 || error.result.getWriteConcernError() !== undefined) return undefined;
  return writeErrors.map((writeError) => ({ index: writeError.index, code: writeError.code }));
}

/** Whether the server answered that it refused some statements (as opposed to not answering: network, timeout). */
export function isRefusal(error: unknown): boolean {
  return bulkWriteErrors(error) !== undefined || isRefusedData(error);
}

/**
 * Whether MongoDB gave no answer at all: the connection failed or broke, no server could be selected, the client
 * was closed. A bulk write wraps such a failure in MongoBulkWriteError, without write errors and without a code.
 */
export function isUnanswered(error: unknown): boolean {
  if (
    error instanceof MongoNetworkError ||
    error instanceof MongoServerSelectionError ||
    error instanceof MongoNotConnectedError ||
    error instanceof MongoTopologyClosedError
  ) {
    return true;
  }
  // A server's answer has a numeric code (copied onto the wrapper); a driver's "no answer" has none.
  return (
    error instanceof MongoBulkWriteError &&
    typeof error.code !== 'number' &&
    bulkWriteErrors(error) === undefined &&
    error.result.getWriteConcernError() === undefined
  );
}

/** A repository's own refusal of data the server could not store either (an infinite sum): never retried. */
export class RefusedDataError extends Error {
  override name = 'RefusedDataError';
}

/** Whether the server refused the data itself: retrying the same write cannot succeed. */
export function isRefusedData(error: unknown): boolean {
  if (error instanceof RefusedDataError) return true;
  const failures = bulkWriteErrors(error);
  if (failures) return failures.some((failure) => failure.code !== undefined && REFUSAL_CODES.has(failure.code));
  if (!(error instanceof MongoServerError) || error instanceof MongoBulkWriteError) return false;
  return typeof error.code === 'number' && REFUSAL_CODES.has(error.code);
}

/**
 * Inserts documents in one unordered command and returns how many are new (or the sum of their `weight`).
 * Documents already there (a job run again) are duplicate-key errors, which
 * an unordered insert reports per document and which mean "done"; any other
 * error is thrown.
 */
export async function insertNew<T extends Document>(
  collection: Collection<T>,
  documents: readonly OptionalId<T>[],
  weight: (document: OptionalId<T>) => number = () => 1,
): Promise<number> {
  if (documents.length === 0) return 0;
  let failed = new Set<number>();
  try {
    await collection.bulkWrite(
      documents.map((document): AnyBulkWriteOperation<T> => ({ insertOne: { document } })),
      { ordered: false },
    );
  } catch (error) {
    const failures = bulkWriteErrors(error);
    if (!failures || failures.some((failure) => failure.code !== DUPLICATE_KEY)) throw error;
    failed = new Set(failures.map((failure) => failure.index));
  }
  return documents.reduce((total, document, index) => (failed.has(index) ? total : total + weight(document)), 0);
}
