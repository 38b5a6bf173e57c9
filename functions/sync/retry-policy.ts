/**
 * How the sync answers each kind of API response, and how long it waits before trying again.
 * Pure functions: the delivery loop does the waiting.
 */

export interface RetryPolicy {
  /** Attempts per call within one run, the first included. */
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** Upper bound on a server's Retry-After, so one answer cannot park the run past its time budget. */
  readonly maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 5,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
  maxRetryAfterMs: 30_000,
};

/**
 * - `delivered`: stored (or already stored: a duplicate).
 * - `transient`: may succeed later (timeouts, 408, 425, 429, 5xx).
 * - `auth`: the key is wrong or was rotated; retrying with the same key cannot help.
 * - `rejected`: the API will never accept this payload as it is: dead-letter it with the reason.
 */
export type ResponseClass = 'delivered' | 'transient' | 'auth' | 'rejected';

export function classifyStatus(status: number): ResponseClass {
  if (status >= 200 && status < 300) return 'delivered';
  if (status === 401 || status === 403) return 'auth';
  if (status === 408 || status === 425 || status === 429 || status >= 500) return 'transient';
  // Redirects and the remaining 4xx (400, 404, 409, 413, 422, ...) are answers about the request itself.
  return 'rejected';
}

/**
 * Exponential backoff with full jitter (delay uniformly in [0, min(cap, base * 2^(attempt-1))]), so the
 * sixteen workers of a run, and concurrent runs of other syncs, do not retry in lockstep.
 *
 * @param attempt the attempt that just failed, starting at 1
 * @param retryAfterMs the server's own Retry-After, honoured as a lower bound
 */
export function retryDelayMs(
  attempt: number,
  policy: RetryPolicy,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  const jittered = Math.floor(random() * ceiling);
  if (retryAfterMs === undefined) return jittered;
  return Math.max(jittered, Math.min(retryAfterMs, policy.maxRetryAfterMs));
}

export function shouldRetry(attempt: number, policy: RetryPolicy): boolean {
  return attempt < policy.maxAttempts;
}

/** Parses Retry-After as delay-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}
