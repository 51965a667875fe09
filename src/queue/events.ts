import { z } from 'zod';

/**
 * Messages on `<QUEUE_NAME>:events`, two per job: `stats` once its statistics are stored (`keys` changed; the API
 * sends `stats:update`), `done` once all its writes are (history too; `batchDone` when it was the batch's last job).
 */
export const jobEventSchema = z.object({
  stage: z.enum(['stats', 'done']),
  batchId: z.string(),
  jobId: z.string(),
  keys: z.array(z.string()),
  /** On `stats`, per key (same order): the start of the newest minute bucket its points fell in, for `series:update`. */
  minutes: z.array(z.number().nullable()).optional(),
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
