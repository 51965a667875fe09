import { z } from 'zod';

/** One message per job on `<QUEUE_NAME>:events`, published after the job's writes are durable. */
export const jobEventSchema = z.object({
  batchId: z.string(),
  jobId: z.string(),
  keys: z.array(z.string()),
  receivedAt: z.number(),
  processedAt: z.number(),
  batchDone: z
    .object({
      batchId: z.string(),
      status: z.enum(['completed', 'failed']),
      points: z.number(),
      keys: z.number(),
      durationMs: z.number(),
    })
    .nullable(),
});

export type JobEvent = z.infer<typeof jobEventSchema>;

export function eventsChannel(queueName: string): string {
  return `${queueName}:events`;
}
