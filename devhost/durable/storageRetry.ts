/**
 * Retrying table storage calls that failed for a passing reason (a 5xx, 408, 429 or a broken
 * connection), with capped exponential backoff. Errors of PermanentStorageError are never retried.
 */
import { describeError, type Logger } from '../log';

/** A request storage will refuse however often it is sent (too large for a row or a transaction). */
export class PermanentStorageError extends Error {}

export const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function isTransientStorageError(err: unknown): boolean {
  if (err instanceof PermanentStorageError) return false;
  const status = typeof err === 'object' && err !== null && 'statusCode' in err ? err.statusCode : undefined;
  return typeof status !== 'number' || status === 408 || status === 429 || status >= 500;
}

/** Pause before retry `attempt` (1-based): 400 ms doubling up to 5 s. */
export const backoffMs = (attempt: number): number => Math.min(200 * 2 ** Math.min(attempt, 5), 5_000);

export async function retryStorage<T>(what: string, action: () => Promise<T>, options: { logger: Logger; stopping: () => boolean }): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await action();
    } catch (err) {
      if (options.stopping() || !isTransientStorageError(err)) throw err;
      const pause = backoffMs(attempt);
      options.logger.warn(`Storage failed while ${what} (${describeError(err)}); retrying in ${pause} ms.`);
      await delay(pause);
    }
  }
}
