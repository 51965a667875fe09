import type { Logger } from 'pino';

export interface ShutdownStep {
  name: string;
  run: () => Promise<void>;
}

/**
 * Builds an idempotent shutdown: the first call runs the steps in the given
 * order (callers list them in reverse start order), one try/catch per step,
 * and gives up after `timeoutMs`; later calls get the same promise.
 */
export function createShutdown(steps: ShutdownStep[], logger: Logger, timeoutMs: number): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => {
    closing ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          logger.error({ timeoutMs }, 'shutdown timed out; stopping anyway');
          resolve();
        }, timeoutMs);
        timer.unref();
      });
      const run = (async () => {
        for (const step of steps) {
          try {
            await step.run();
            logger.debug({ step: step.name }, 'closed');
          } catch (error) {
            logger.warn({ step: step.name, err: error }, 'shutdown step failed');
          }
        }
      })();
      await Promise.race([run, timeout]);
      clearTimeout(timer);
    })();
    return closing;
  };
}
