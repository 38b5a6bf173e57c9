import { describe, expect, it } from 'vitest';
import {
  classifyStatus,
  DEFAULT_RETRY_POLICY,
  parseRetryAfter,
  retryDelayMs,
  shouldRetry,
} from '../../functions/sync/retry-policy';

describe('classifyStatus', () => {
  it.each([
    [200, 'delivered'],
    [201, 'delivered'],
    [401, 'auth'],
    [403, 'auth'],
    [408, 'transient'],
    [429, 'transient'],
    [500, 'transient'],
    [503, 'transient'],
    [400, 'rejected'],
    [404, 'rejected'],
    [409, 'rejected'],
    [422, 'rejected'],
  ])('HTTP %i is %s', (status, kind) => {
    expect(classifyStatus(status)).toBe(kind);
  });
});

describe('retryDelayMs', () => {
  const policy = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 5000 };

  it('grows exponentially under a cap, with full jitter', () => {
    expect(retryDelayMs(1, policy, undefined, () => 0.999)).toBe(99);
    expect(retryDelayMs(3, policy, undefined, () => 0.999)).toBe(399);
    expect(retryDelayMs(10, policy, undefined, () => 0.999)).toBe(999);
    expect(retryDelayMs(3, policy, undefined, () => 0)).toBe(0);
  });

  it('waits at least what Retry-After asks, within a bound', () => {
    expect(retryDelayMs(1, policy, 2000, () => 0)).toBe(2000);
    expect(retryDelayMs(1, policy, 60_000, () => 0)).toBe(5000);
  });

  it('stops after the configured attempts', () => {
    expect(shouldRetry(4, DEFAULT_RETRY_POLICY)).toBe(true);
    expect(shouldRetry(5, DEFAULT_RETRY_POLICY)).toBe(false);
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('3', 0)).toBe(3000);
    expect(parseRetryAfter('Thu, 01 Jan 1970 00:00:10 GMT', 4000)).toBe(6000);
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
    expect(parseRetryAfter(null, 0)).toBeUndefined();
  });
});
