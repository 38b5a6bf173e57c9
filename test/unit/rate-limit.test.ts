import { describe, expect, it } from 'vitest';
import { parseRateLimit, RateLimitWindow, rateLimitOf } from '../../functions/sync/delivery/rate-limit';

const T0 = Date.parse('2026-11-02T10:00:00.000Z');
const httpDate = (ms: number) => new Date(ms).toUTCString();

describe('reading the window from an answer', () => {
  it("reads express-rate-limit's legacy fields (reset in epoch seconds) with Date", () => {
    expect(
      rateLimitOf({
        'x-ratelimit-limit': '100',
        'x-ratelimit-remaining': '99',
        'x-ratelimit-reset': String(T0 / 1000 + 900),
        date: httpDate(T0),
      }),
    ).toEqual({ limit: 100, remaining: 99, resetEpochMs: T0 + 900_000, dateMs: T0 });
  });

  it('reads a legacy reset given in seconds from now', () => {
    expect(parseRateLimit({ limit: '10', remaining: '0', reset: '30' })).toEqual({
      limit: 10,
      remaining: 0,
      resetInMs: 30_000,
    });
  });

  it('reads the IETF fields of drafts 6, 7 and 8', () => {
    const draft6 = {
      'ratelimit-policy': '100;w=900',
      'ratelimit-limit': '100',
      'ratelimit-remaining': '7',
      'ratelimit-reset': '42',
    };
    expect(rateLimitOf(draft6)).toEqual({ limit: 100, remaining: 7, resetInMs: 42_000, windowMs: 900_000 });
    expect(
      rateLimitOf({ 'ratelimit-policy': '100;w=900', ratelimit: 'limit=100, remaining=7, reset=42' }),
    ).toEqual({ limit: 100, remaining: 7, resetInMs: 42_000, windowMs: 900_000 });
    expect(
      rateLimitOf({
        'ratelimit-policy': '"100-in-15min"; q=100; w=900; pk=:ZjE5:',
        ratelimit: '"100-in-15min"; r=7; t=42',
      }),
    ).toEqual({ limit: 100, remaining: 7, resetInMs: 42_000, windowMs: 900_000 });
  });

  it('names no window without the fields, or with unreadable ones', () => {
    expect(rateLimitOf({ 'retry-after': '1', date: httpDate(T0) })).toBeUndefined();
    expect(rateLimitOf({ 'x-ratelimit-remaining': 'many', 'x-ratelimit-limit': '5' })).toBeUndefined();
  });
});

/** Legacy fields as express-rate-limit sends them for a window of `limit` opened at `start`. */
function legacy(limit: number, hits: number, start: number, windowMs: number, now: number) {
  return parseRateLimit({
    limit: String(limit),
    remaining: String(Math.max(0, limit - hits)),
    reset: String(Math.ceil((start + windowMs) / 1000)),
    date: httpDate(now),
  });
}

describe('the window', () => {
  it('sends one request until the first answer says how the API limits', () => {
    const w = new RateLimitWindow();
    expect(w.verdict(T0).kind).toBe('send');
    w.inFlight = 1;
    expect(w.verdict(T0).kind).toBe('await_answers');
    w.inFlight = 0;
    w.observe(undefined, T0, T0 + 50);
    w.inFlight = 30;
    expect(w.verdict(T0 + 50).kind).toBe('send');
  });

  it('counts requests in flight against Remaining, and waits out a spent window to its reset', () => {
    const w = new RateLimitWindow();
    const start = T0 + 300;
    w.observe(legacy(5, 1, start, 15 * 60_000, start), start - 1, start + 50);
    w.inFlight = 4;
    expect(w.verdict(start + 50).kind).toBe('await_answers');
    w.inFlight = 3;
    expect(w.verdict(start + 50).kind).toBe('send');
    w.observe(legacy(5, 5, start, 15 * 60_000, start + 60), start + 55, start + 110);
    w.inFlight = 0;
    const spent = w.verdict(start + 110);
    expect(spent).toMatchObject({ kind: 'spent', limit: 5 });
    // Never before the window's end, and not long after it either.
    const until = (spent as { untilMs: number }).untilMs;
    expect(until).toBeGreaterThanOrEqual(start + 15 * 60_000);
    expect(until).toBeLessThanOrEqual(Math.ceil((start + 15 * 60_000) / 1000) * 1000);
    expect(w.spentToKeep(start + 110, 10_000)).toEqual({ limit: 5, untilMs: until });
    expect(w.spentToKeep(start + 120, 10_000)).toBeUndefined();
    expect(w.verdict(until).kind).toBe('send');
  });

  it("learns a short window's length from its resets, never reopening it early", () => {
    const w = new RateLimitWindow();
    const windowMs = 1000;
    let start = T0 + 437;
    const reopened: number[] = [];
    for (let n = 0; n < 6; n++) {
      // The opener arrives 1 ms after it is sent and is answered 50 ms later; the window is then spent.
      w.observe(legacy(10, 1, start, windowMs, start), start - 1, start + 50);
      w.observe(legacy(10, 10, start, windowMs, start + 60), start + 59, start + 110);
      const v = w.verdict(start + 110);
      expect(v.kind).toBe('spent');
      const until = (v as { untilMs: number }).untilMs;
      reopened.push(until - (start + windowMs));
      expect(until + 1).toBeGreaterThanOrEqual(start + windowMs);
      expect(w.verdict(until).kind).toBe('send');
      start = until + 1;
    }
    // The first resets are rounded up to a whole second; the learnt ones lose only the margin.
    expect(Math.max(...reopened.slice(-3))).toBeLessThan(60);
  });

  it('shares what is left of a window another client spends too, and asks with one request once it reopens', () => {
    const w = new RateLimitWindow();
    const start = T0 + 100;
    const answer = (hits: number) => legacy(100, hits, start, 60_000, start);
    // Our 10 requests, but the API counted 60: another sync behind this IP took 50.
    for (let i = 0; i < 10; i++) w.sent();
    w.inFlight = 0;
    w.observe(answer(60), start, start + 50);
    // Of the 40 left, our share so far (10 of 60) is 6.
    w.inFlight = 5;
    expect(w.verdict(start + 50).kind).toBe('send');
    w.inFlight = 6;
    expect(w.verdict(start + 50).kind).toBe('await_answers');
    w.inFlight = 0;
    w.observe(answer(100), start + 60, start + 110);
    const spent = w.verdict(start + 110) as { kind: string; untilMs: number };
    expect(spent.kind).toBe('spent');
    // Reopened: one request until an answer says what the others left.
    expect(w.verdict(spent.untilMs).kind).toBe('send');
    w.sent();
    expect(w.verdict(spent.untilMs).kind).toBe('await_answers');
  });

  it('keeps a restored window spent until its reset', () => {
    const w = new RateLimitWindow();
    w.restore(100, T0 + 600_000, T0);
    expect(w.verdict(T0 + 1)).toEqual({ kind: 'spent', untilMs: T0 + 600_000, limit: 100 });
    expect(w.verdict(T0 + 600_000).kind).toBe('send');
  });

  it('names no window for an API without the fields: 429s pace it', () => {
    const w = new RateLimitWindow();
    w.observe(undefined, T0, T0 + 10);
    w.refused(T0 + 5_000);
    w.inFlight = 50;
    expect(w.verdict(T0 + 20).kind).toBe('send');
    expect(w.spentToKeep(T0 + 20, 0)).toBeUndefined();
  });
});
