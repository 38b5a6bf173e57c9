import { describe, expect, it } from 'vitest';
import {
  classifyAnswer,
  DEFAULT_RETRY_POLICY,
  parseRetryAfter,
  retryDelayMs,
  shouldRetry,
} from '../../functions/sync/delivery/retry-policy';

const ok = '{"success":true,"message":"Call result recorded"}';

describe('classifyAnswer', () => {
  it.each([
    [200, ok, 'delivered'],
    [201, ok, 'delivered'],
    [401, '', 'auth'],
    [403, '', 'auth'],
    [429, 'Too many requests', 'rate_limited'],
    [408, '', 'transient'],
    [500, '', 'transient'],
    [503, '', 'transient'],
    [418, '', 'transient'],
    [400, '', 'rejected'],
    [409, '', 'rejected'],
    [413, '', 'rejected'],
    [422, '', 'rejected'],
    [404, '', 'endpoint'],
    [405, '', 'endpoint'],
    [410, '', 'endpoint'],
  ])('HTTP %i is %s', (status, body, kind) => {
    expect(classifyAnswer({ status, body }).kind).toBe(kind);
  });

  it('counts a 2xx as delivered only with a JSON body whose success is true', () => {
    expect(classifyAnswer({ status: 200, body: '<html>Sign in</html>' })).toMatchObject({
      kind: 'misconfigured',
      why: expect.stringContaining('HTTP 200'),
    });
    expect(classifyAnswer({ status: 200, body: '{"success":false}' }).kind).toBe('misconfigured');
    expect(classifyAnswer({ status: 204, body: '' }).kind).toBe('misconfigured');
    expect(classifyAnswer({ status: 200, body: 'true' }).kind).toBe('misconfigured');
  });

  it('never follows a redirect: it is a misconfiguration naming where it points', () => {
    const verdict = classifyAnswer({ status: 301, body: '', location: 'https://login.example.net/' });
    expect(verdict).toMatchObject({ kind: 'misconfigured' });
    expect(verdict.kind === 'misconfigured' && verdict.why).toContain('https://login.example.net/');
  });
});

describe('retryDelayMs', () => {
  const policy = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1000 };

  it('grows exponentially under a cap, with full jitter', () => {
    expect(retryDelayMs(1, policy, () => 0.999)).toBe(99);
    expect(retryDelayMs(3, policy, () => 0.999)).toBe(399);
    expect(retryDelayMs(10, policy, () => 0.999)).toBe(999);
    expect(retryDelayMs(3, policy, () => 0)).toBe(0);
  });

  it('stops after the configured attempts', () => {
    expect(shouldRetry(4, DEFAULT_RETRY_POLICY)).toBe(true);
    expect(shouldRetry(5, DEFAULT_RETRY_POLICY)).toBe(false);
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates, without a cap below the server value', () => {
    expect(parseRetryAfter('3', 0)).toBe(3000);
    expect(parseRetryAfter('3600', 0)).toBe(3_600_000);
    expect(parseRetryAfter('Thu, 01 Jan 1970 00:00:10 GMT', 4000)).toBe(6000);
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
    expect(parseRetryAfter(null, 0)).toBeUndefined();
  });
});
