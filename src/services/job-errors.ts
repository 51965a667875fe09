/** A job that can never succeed (bad payload, data the store refuses): fail it at once, do not retry. */
export class PermanentJobError extends Error {
  override name = 'PermanentJobError';
}

/**
 * What a failed batch's status says. A permanent failure's message is written for users; any other error may be a
 * driver's or Redis' message, which never reaches a response, so it is named only by what failed.
 */
export function batchFailureMessage(error: unknown, attempts: number): string {
  if (error instanceof PermanentJobError) return error.message;
  return `the batch could not be stored after ${attempts} attempt${attempts === 1 ? '' : 's'} (the database or Redis kept failing); the worker's log has the cause`;
}
