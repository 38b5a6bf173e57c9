/**
 * The API's rate-limit window as its answers describe it, so the sync spends the window's budget without
 * meeting a 429 and knows, before sending, that a request would be refused. Pure logic: the clock is
 * passed in, the waiting is done by the Throttle.
 *
 * Read from every answer:
 * - express-rate-limit's legacy fields (its default, what the DID Optimizer API sends): `X-RateLimit-Limit`,
 *   `X-RateLimit-Remaining`, `X-RateLimit-Reset` (epoch seconds, rounded up) with `Date` (the server's
 *   clock, rounded down);
 * - the IETF fields, should the API switch to `standardHeaders`: draft-6 `RateLimit-Limit/Remaining/Reset`
 *   (reset in seconds from now) with `RateLimit-Policy: 100;w=900`, draft-7 `RateLimit: limit=100,
 *   remaining=99, reset=900`, draft-8 `RateLimit: "p"; r=99; t=900` with `RateLimit-Policy: "p"; q=100; w=900`.
 *
 * Both round the reset to whole seconds, which would lose up to a second per window: the window's length
 * is learnt instead (express-rate-limit's window starts at the first request after the previous one
 * ended), so the next window is known to open one length after the request that opened this one.
 */

/** The raw header values of one answer (undefined when absent). */
export interface RateLimitHeaders {
  readonly limit?: string | undefined;
  readonly remaining?: string | undefined;
  readonly reset?: string | undefined;
  readonly date?: string | undefined;
  readonly ietfLimit?: string | undefined;
  readonly ietfRemaining?: string | undefined;
  readonly ietfReset?: string | undefined;
  /** The combined `RateLimit` field of drafts 7 and 8. */
  readonly ietf?: string | undefined;
  readonly policy?: string | undefined;
}

/** What one answer says about the window, in the server's terms. */
export interface RateLimitInfo {
  readonly limit: number;
  readonly remaining: number;
  /** Legacy: the server's epoch ms the window resets by (rounded up to a second). */
  readonly resetEpochMs?: number;
  /** IETF: ms from the answer to the reset (rounded up to a second). */
  readonly resetInMs?: number;
  /** The server's clock (Date, rounded down to a second). */
  readonly dateMs?: number;
  /** The window's length from RateLimit-Policy's `w` (rounded up to a second). */
  readonly windowMs?: number;
}

const count = (value: string | undefined): number | undefined => {
  if (value === undefined) return undefined;
  const n = Number(value.trim());
  return Number.isFinite(n) && n >= 0 ? n : undefined;
};

/** `name=value` (draft 7) or `name=value` among `;`-separated parameters (draft 8). */
function param(field: string, name: string): number | undefined {
  const match = new RegExp(`(?:^|[;,\\s])${name}=(\\d+)`).exec(field);
  return match ? Number(match[1]) : undefined;
}

/** Seconds this large are an epoch, not a delay (some APIs send the reset as seconds from now). */
const EPOCH_SECONDS = 1_000_000_000;

export function parseRateLimit(h: RateLimitHeaders): RateLimitInfo | undefined {
  const policy = h.policy;
  let windowMs: number | undefined;
  let policyLimit: number | undefined;
  if (policy) {
    const w = param(policy, 'w');
    if (w !== undefined && w > 0) windowMs = w * 1000;
    // Draft 6 starts with the quota itself (`100;w=900`), draft 8 names it `q`.
    policyLimit = param(policy, 'q') ?? count(/^\s*(\d+)/.exec(policy)?.[1]);
  }
  const date = h.date ? Date.parse(h.date) : Number.NaN;
  const dateMs = Number.isNaN(date) ? undefined : date;
  const extra = {
    ...(dateMs === undefined ? {} : { dateMs }),
    ...(windowMs === undefined ? {} : { windowMs }),
  };

  const limit = count(h.limit);
  const remaining = count(h.remaining);
  if (limit !== undefined && remaining !== undefined) {
    const reset = count(h.reset);
    if (reset === undefined) return { limit, remaining, ...extra };
    return reset >= EPOCH_SECONDS
      ? { limit, remaining, resetEpochMs: reset * 1000, ...extra }
      : { limit, remaining, resetInMs: reset * 1000, ...extra };
  }

  const ietfLimit = count(h.ietfLimit) ?? (h.ietf ? param(h.ietf, 'limit') : undefined) ?? policyLimit;
  const ietfRemaining =
    count(h.ietfRemaining) ?? (h.ietf ? (param(h.ietf, 'remaining') ?? param(h.ietf, 'r')) : undefined);
  if (ietfLimit === undefined || ietfRemaining === undefined) return undefined;
  const reset = count(h.ietfReset) ?? (h.ietf ? (param(h.ietf, 'reset') ?? param(h.ietf, 't')) : undefined);
  return {
    limit: ietfLimit,
    remaining: ietfRemaining,
    ...(reset === undefined ? {} : { resetInMs: reset * 1000 }),
    ...extra,
  };
}

type HeaderBag = Readonly<Record<string, string | string[] | undefined>>;

const one = (value: string | string[] | undefined): string | undefined =>
  Array.isArray(value) ? value[0] : value;

/** The fields of a Node answer's (lower-cased) headers; undefined when it names no window. */
export function rateLimitOf(headers: HeaderBag): RateLimitInfo | undefined {
  const legacy = headers['x-ratelimit-remaining'];
  if (legacy === undefined && headers['ratelimit-remaining'] === undefined && !headers.ratelimit) {
    return undefined;
  }
  return parseRateLimit({
    limit: one(headers['x-ratelimit-limit']),
    remaining: one(legacy),
    reset: one(headers['x-ratelimit-reset']),
    date: one(headers.date),
    ietfLimit: one(headers['ratelimit-limit']),
    ietfRemaining: one(headers['ratelimit-remaining']),
    ietfReset: one(headers['ratelimit-reset']),
    ietf: one(headers.ratelimit),
    policy: one(headers['ratelimit-policy']),
  });
}

/** Why a request may not be sent now. */
export type WindowVerdict =
  | { readonly kind: 'send' }
  /** Answers in flight will tell more: wait for one (or until `untilMs`). */
  | { readonly kind: 'await_answers'; readonly untilMs: number }
  /** The window is spent: nothing may be sent before `untilMs` (local epoch ms). */
  | { readonly kind: 'spent'; readonly untilMs: number; readonly limit: number };

/** Shared by every run to one API origin in this process (the limit is per client IP). */
export class RateLimitWindow {
  /** Requests sent and not answered yet, by every run of this process. */
  inFlight = 0;
  /** Whether the API sends rate-limit fields at all (undefined: no answer seen yet). */
  private headers: boolean | undefined;
  private limit: number | undefined;
  /** The lowest Remaining seen in the current window (answers come back out of order). */
  private remaining: number | undefined;
  /** Legacy X-RateLimit-Reset of the current window: which window an answer belongs to. */
  private resetKey: number | undefined;
  /** Local epoch ms by which the current window has surely reset (undefined: unknown). */
  private resetAt: number | undefined;
  /** Local ms the current window was believed to open at: answers to requests sent before belong to the last. */
  private openedAt = Number.NEGATIVE_INFINITY;
  /** The request that opened the current window (Remaining = limit - 1). */
  private opener: { sentAt: number; receivedAt: number } | undefined;
  /** Server clock minus local clock lies in [offsetLow, offsetHigh], narrowed by every Date field. */
  private offsetLow = Number.NEGATIVE_INFINITY;
  private offsetHigh = Number.POSITIVE_INFINITY;
  /** Bounds on the window's length: min over windows of (reset − opener sent), and the policy's `w`. */
  private lengthHighRaw = Number.POSITIVE_INFINITY;
  private policyLength = Number.POSITIVE_INFINITY;
  private learn = true;
  /** Reset times already handed out to be kept (one write per window). */
  private lastSpentReported = 0;
  /** The shortest round trip seen: half of it is the least a request spends reaching the API. */
  private minRtt = Number.POSITIVE_INFINITY;
  /** The key of the window before this one: a 429 naming it means the window was reopened too early. */
  private previousKey: number | undefined;
  /** Requests this process sent since the current window opened. */
  private sentInWindow = 0;
  /** Another client behind this IP spends the same window (the API counted more than we sent). */
  private shared = false;
  /** The current window's reset is the learnt one (we saw its opener), not only the rounded-up cap. */
  private learntReset = false;
  /** A new window we did not see open, or one shared with others: one request asks what is left. */
  private probe = false;

  get known(): boolean {
    return this.headers !== undefined;
  }

  get resetTime(): number | undefined {
    return this.resetAt;
  }

  get quota(): number | undefined {
    return this.limit;
  }

  /** What may happen now, counting requests in flight against Remaining. */
  verdict(now: number): WindowVerdict {
    // Until the first answer, one request learns whether (and how) the API limits us.
    if (this.headers === undefined) {
      return this.inFlight === 0 ? { kind: 'send' } : { kind: 'await_answers', untilMs: now + 1_000 };
    }
    if (!this.headers || this.limit === undefined) return { kind: 'send' };
    if (this.resetAt !== undefined && now >= this.resetAt) this.openNext(this.resetAt);
    // Until the new window's first answer: its whole budget, or a single request when others may have
    // spent it already.
    let left = this.remaining ?? (this.probe ? 1 : this.limit);
    if (this.shared && this.remaining !== undefined) {
      // The others will take their share of what is left: ours is what we have taken of the window so far.
      const counted = Math.max(1, this.limit - this.remaining);
      left = Math.floor(left * Math.min(1, this.sentInWindow / counted));
    }
    const budget = left - this.inFlight;
    if (budget > 0) return { kind: 'send' };
    if (this.inFlight > 0) return { kind: 'await_answers', untilMs: this.resetAt ?? now + 1_000 };
    // Spent, but no reset was named: one request asks again (a 429 then pauses by its Retry-After).
    if (this.resetAt === undefined) return { kind: 'send' };
    return { kind: 'spent', untilMs: this.resetAt, limit: this.limit };
  }

  /** A request is sent now (counted against the window until answered). */
  sent(): void {
    this.inFlight++;
    this.sentInWindow++;
  }

  /** The window after `resetAt`: the full limit, until an answer says otherwise. */
  private openNext(at: number): void {
    if (this.resetKey !== undefined) this.previousKey = this.resetKey;
    this.probe = this.shared || !this.learntReset;
    this.learntReset = false;
    this.sentInWindow = 0;
    this.shared = false;
    this.remaining = undefined;
    this.resetAt = undefined;
    this.resetKey = undefined;
    this.opener = undefined;
    this.openedAt = at;
  }

  /** One answer (with or without the fields) to a request sent at `sentAt` and answered at `receivedAt`. */
  observe(info: RateLimitInfo | undefined, sentAt: number, receivedAt: number): void {
    if (!info) {
      // An API without the fields is paced by its 429s alone; one whose fields vanish is too.
      if (this.headers === undefined || this.remaining === undefined || receivedAt >= (this.resetAt ?? 0)) {
        this.headers = false;
        this.limit = undefined;
      }
      return;
    }
    this.headers = true;
    this.minRtt = Math.min(this.minRtt, receivedAt - sentAt);
    if (info.dateMs !== undefined) {
      this.offsetLow = Math.max(this.offsetLow, info.dateMs - receivedAt);
      this.offsetHigh = Math.min(this.offsetHigh, info.dateMs + 1000 - sentAt);
    }
    if (info.windowMs !== undefined) this.policyLength = Math.min(this.policyLength, info.windowMs);
    const offsetLow = Number.isFinite(this.offsetLow) ? this.offsetLow : 0;

    // Which window: legacy answers name it by their reset; otherwise by when the request was sent.
    if (sentAt < this.openedAt) return;
    let fresh: boolean;
    if (info.resetEpochMs !== undefined) {
      if (this.resetKey !== undefined && info.resetEpochMs < this.resetKey) return;
      fresh = this.resetKey === undefined || info.resetEpochMs > this.resetKey;
      if (fresh && this.resetKey !== undefined) this.openNext(sentAt);
      if (fresh) this.sentInWindow = Math.max(this.sentInWindow, this.inFlight);
      this.resetKey = info.resetEpochMs;
    } else {
      fresh = this.remaining === undefined;
    }
    this.limit = info.limit;
    this.remaining = fresh ? info.remaining : Math.min(this.remaining ?? info.remaining, info.remaining);
    if (info.limit - this.remaining > this.sentInWindow) this.shared = true;

    // The latest the window can reset by, from this answer alone.
    let cap: number | undefined;
    if (info.resetEpochMs !== undefined) cap = info.resetEpochMs - offsetLow;
    else if (info.resetInMs !== undefined) cap = receivedAt + info.resetInMs;
    if (info.remaining === info.limit - 1) {
      this.opener = { sentAt, receivedAt };
      this.sentInWindow = Math.max(this.sentInWindow, 1);
      if (info.resetEpochMs !== undefined) {
        this.lengthHighRaw = Math.min(this.lengthHighRaw, info.resetEpochMs - sentAt);
      }
    }
    if (cap !== undefined) this.resetAt = this.resetAt === undefined ? cap : Math.min(this.resetAt, cap);
    const length = this.length();
    if (this.opener && length !== undefined) {
      // The window opened when the opener arrived: at the latest half the shortest round trip before its
      // answer came back (it may have left late, behind a busy event loop, so its sending time says less);
      // a request sent one length after that arrives after the window's end.
      const learnt = Math.ceil(this.opener.receivedAt - this.minRtt / 2 + length);
      if (this.resetAt === undefined || learnt < this.resetAt) {
        this.resetAt = learnt;
        this.learntReset = true;
      }
    }
  }

  /**
   * The window's length: the policy's `w`, or learnt from the legacy resets. A reset is rounded up to a
   * second and the opener arrived after it was sent, so reset − sent is never shorter than the window;
   * windows are configured in whole seconds, so the whole seconds of the shortest such span are the
   * window (longer only when the rounding and the trip add up to a second, which is safe). That takes the
   * server's clock as ours (NTP on both sides; the Date fields bracket zero then): should it not be, or
   * the window not whole seconds, a 429 shows it and the learnt length is dropped.
   */
  private length(): number | undefined {
    let length = this.policyLength;
    const synced = this.offsetLow <= 0 && this.offsetHigh >= 0;
    if (this.learn && synced && Number.isFinite(this.lengthHighRaw)) {
      length = Math.min(length, Math.floor(this.lengthHighRaw / 1000) * 1000);
    }
    return Number.isFinite(length) && length > 0 ? length : undefined;
  }

  /**
   * A 429 that named no window of its own: nothing more may be sent before `untilMs` (from Retry-After).
   * With the fields, the answer's own Remaining (0) and reset already say so.
   */
  refused(untilMs: number, info?: RateLimitInfo): void {
    if (!this.headers || this.limit === undefined) return;
    // Refused by the window we believed over: its learnt length is not to be trusted. (A 429 in a
    // window of its own only says another client spent it.)
    if (info?.resetEpochMs === undefined || info.resetEpochMs === this.previousKey) this.learn = false;
    this.remaining = 0;
    this.resetAt = Math.max(this.resetAt ?? 0, untilMs);
  }

  /** A window spent until `untilMs` (kept across runs): nothing may be sent before then. */
  restore(limit: number, untilMs: number, now: number): void {
    if (untilMs <= now || (this.resetAt !== undefined && this.resetAt >= untilMs)) return;
    this.headers = true;
    this.limit = limit;
    this.remaining = 0;
    this.resetAt = untilMs;
    this.resetKey = undefined;
    this.openedAt = now;
  }

  /**
   * The reset of a spent window worth keeping for the next runs and the other syncs (one that lasts at
   * least `minMs`), once per window; undefined otherwise.
   */
  spentToKeep(now: number, minMs: number): { limit: number; untilMs: number } | undefined {
    if (!this.headers || this.limit === undefined || this.remaining !== 0) return undefined;
    const until = this.resetAt;
    if (until === undefined || until - now < minMs || until === this.lastSpentReported) return undefined;
    this.lastSpentReported = until;
    return { limit: this.limit, untilMs: until };
  }
}

const windows = new Map<string, RateLimitWindow>();

/** The window of one API origin, shared by every run of this process (the API limits per client IP). */
export function rateLimitWindowOf(origin: string): RateLimitWindow {
  let window = windows.get(origin);
  if (!window) {
    window = new RateLimitWindow();
    windows.set(origin, window);
  }
  return window;
}
