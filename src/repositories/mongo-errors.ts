import { MongoBulkWriteError, MongoServerError, type WriteError } from 'mongodb';

export const DUPLICATE_KEY = 11000;

/** The write errors of a bulk operation, or undefined when the error is of another kind. */
export function bulkWriteErrors(error: unknown): { index: number; code: number | undefined }[] | undefined {
  if (!(error instanceof MongoBulkWriteError)) return undefined;
  const raw: unknown = error.writeErrors;
  const writeErrors = (Array.isArray(raw) ? raw : [raw]) as WriteError[];
  return writeErrors.map((writeError) => ({ index: writeError.index, code: writeError.code }));
}

export function isDuplicateKeyError(error: unknown): boolean {
  return error instanceof MongoServerError && error.code === DUPLICATE_KEY;
}
