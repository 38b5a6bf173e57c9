/**
 * How the sync answers each kind of API response, and how long it waits before trying again.
 * Pure functions: the delivery loop does the waiting.
 */

export interface RetryPolicy {
  /** Attempts per call within one run, the first included (429 answers do not count). */
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 5,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
};

/**
 * What one answer of the API means for the call and for the run.
 * - `delivered`: a 2xx whose body is JSON with `success: true`: the only proof the call was stored.
 * - `rejected`: 400/409/413/422, the API will never accept this payload as it is: a dead letter.
 * - `auth`: 401/403, the key is wrong or was rotated (a 403 may also be a rule about this one call).
 * - `rate_limited`: 429, never the call's fault: wait for Retry-After, then send it again.
 * - `transient`: 408, 425, 5xx and unknown 4xx: may succeed later.
 * - `endpoint`: 404/405/410: the URL is wrong rather than the call; counts toward the outage breaker.
 * - `misconfigured`: a redirect, or a 2xx that is not the API's JSON (a login page, a moved domain):
 *   nothing was stored, and every other call would meet the same, so the run stops at once.
 */
export type ResponseVerdict =
  | { readonly kind: 'delivered' }
  | { readonly kind: 'rejected' }
  | { readonly kind: 'auth' }
  | { readonly kind: 'rate_limited' }
  | { readonly kind: 'transient' }
  | { readonly kind: 'endpoint' }
  | { readonly kind: 'misconfigured'; readonly why: string };

export interface ApiAnswer {
  readonly status: number;
  readonly body: string;
  readonly location?: string | undefined;
}

const REJECTED = new Set([400, 409, 413, 422]);
const ENDPOINT = new Set([404, 405, 410]);

export function classifyAnswer(answer: ApiAnswer): ResponseVerdict {
  const { status } = answer;
  if (status >= 200 && status < 300) {
    if (isSuccessBody(answer.body)) return { kind: 'delivered' };
    return {
      kind: 'misconfigured',
      why: `HTTP ${status} without a JSON body with "success": true (not the DID Optimizer API?)`,
    };
  }
  if (status >= 300 && status < 400) {
    return {
      kind: 'misconfigured',
      why: `HTTP ${status} redirect${answer.location ? ` to ${answer.location}` : ''} (redirects are never followed: fix the API URL)`,
    };
  }
  if (status === 401 || status === 403) return { kind: 'auth' };
  if (status === 429) return { kind: 'rate_limited' };
  if (REJECTED.has(status)) return { kind: 'rejected' };
  if (ENDPOINT.has(status)) return { kind: 'endpoint' };
  return { kind: 'transient' };
}

function isSuccessBody(body: string): boolean {
  try {
    const parsed = JSON.parse(body) as { success?: unknown } | null;
    return parsed !== null && typeof parsed === 'object' && parsed.success === true;
  } catch {
    return false;
  }
}

/**
 * Exponential backoff with full jitter (delay uniformly in [0, min(cap, base * 2^(attempt-1))]), so the
 * workers of a run, and concurrent runs of other syncs, do not retry in lockstep.
 *
 * @param attempt the attempt that just failed, starting at 1
 */
export function retryDelayMs(
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
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
