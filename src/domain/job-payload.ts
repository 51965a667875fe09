import { z } from 'zod';
import { pointSchema } from './point-schema';

/** What one Bull job carries: a chunk of a batch. The worker validates it again: a queue is an input too. */
export const jobPayloadSchema = z.strictObject({
  batchId: z.string().min(1).max(64),
  chunk: z.number().int().nonnegative(),
  receivedAt: z.number().int().nonnegative(),
  points: z.array(pointSchema).min(1),
});

export type JobPayload = z.infer<typeof jobPayloadSchema>;

export function jobIdOf(batchId: string, chunk: number): string {
  return `${batchId}:${chunk}`;
}
