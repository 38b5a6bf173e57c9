import { type RunControl, sleep } from '../run-control';
import type { RateLimitWindow } from './rate-limit';

/**
 * Politeness towards the API, shared by every worker of a run:
 * - a 429 pauses **all** workers until its Retry-After (the limit is per client IP, so one worker's
 *   answer is everyone's);
 * - the number of requests in flight adapts: it halves on a 429 (at most once per pause) and grows by
 *   one for every `current` deliveries (additive increase, multiplicative decrease) back up to the
 *   configured CONCURRENCY;
 * - and, since an API's limit is a rate (express-rate-limit counts requests per window), sends are
 *   paced after a 429 at 90% of the rate that met it, which then rises 5% for every second without a
 *   429: a run settles just under the limit instead of meeting it again every few round trips;
 * - but first, when the API names its window (X-RateLimit-* or RateLimit-*), no request is sent that the
 *   window is known to refuse: requests in flight count against its Remaining, and a spent window is
 *   waited out to its reset, or ends the run as `rate_limited` when the reset is past the deadline. The
 *   429 rules above are then the fallback of an API that names no window.
 */
export class Throttle {
  private limit: number;
  /** Fractional progress towards the next +1. */
  private credit = 0;
  private inFlight = 0;
  private pausedUntil = 0;
  private lastDecrease = 0;
  private readonly waiters: (() => void)[] = [];
  /** Requests per second allowed after a 429 (undefined: not paced). */
  private rate: number | undefined;
  private nextSendAt = 0;
  private rateRaisedAt = 0;
  /** Send times of the last second, to know the rate a 429 met (a queue: `recentHead` is its start). */
  private recent: number[] = [];
  private recentHead = 0;
  private window: RateLimitWindow | undefined;
  /** Workers wait for the first answer to say whether and how the API limits: it wakes them all. */
  private awaitingAnswers = false;

  constructor(
    readonly max: number,
    private readonly now: () => number = Date.now,
  ) {
    this.limit = max;
  }

  /** Requests allowed in flight right now. */
  get current(): number {
    return this.limit;
  }

  get pausedUntilMs(): number {
    return this.pausedUntil;
  }

  /** Paces by the API's window too (shared with the other runs to the same API in this process). */
  attach(window: RateLimitWindow): void {
    this.window = window;
  }

  /**
   * Waits for a free slot outside any pause. False when the run stopped meanwhile. A pause that would
   * outlast the run's deadline stops the run as `rate_limited` (planned: the next run goes on).
   */
  async acquire(control: RunControl): Promise<boolean> {
    for (;;) {
      if (control.stopped) return false;
      const now = this.now();
      if (this.pausedUntil > now) {
        if (control.deadline !== undefined && this.pausedUntil > control.deadline) {
          control.stop(
            'rate_limited',
            `the API asked to wait until ${new Date(this.pausedUntil).toISOString()}, after this run's deadline`,
          );
          return false;
        }
        await sleep(this.pausedUntil - now, control.signal);
        continue;
      }
      if (this.inFlight < this.limit) {
        const window = this.window;
        if (window) {
          const verdict = window.verdict(now);
          if (verdict.kind === 'spent') {
            if (control.deadline !== undefined && verdict.untilMs > control.deadline) {
              control.stop(
                'rate_limited',
                `the API's rate limit (${verdict.limit} requests per window) is spent until ${new Date(verdict.untilMs).toISOString()}, after this run's deadline`,
              );
              return false;
            }
            await sleep(verdict.untilMs - now, control.signal);
            continue;
          }
          if (verdict.kind === 'await_answers') {
            if (!window.known) this.awaitingAnswers = true;
            await this.wait(control, verdict.untilMs - now);
            continue;
          }
          window.sent();
        }
        this.inFlight++;
        // Unpaced (no 429 met): the send is only recorded, without an await per call.
        if (this.rate === undefined) this.recordSend();
        else if (!(await this.pace(control, now))) {
          this.release();
          return false;
        }
        return true;
      }
      await this.wait(control);
    }
  }

  /** Waits for this send's turn at the paced rate; records the send. */
  private async pace(control: RunControl, now: number): Promise<boolean> {
    if (this.rate !== undefined) {
      if (now - this.rateRaisedAt >= 1000) {
        this.rate *= 1.05;
        this.rateRaisedAt = now;
      }
      const at = Math.max(now, this.nextSendAt);
      this.nextSendAt = at + 1000 / this.rate;
      if (at > now) {
        if (control.deadline !== undefined && at > control.deadline) return false;
        await sleep(at - now, control.signal);
        if (control.stopped) return false;
      }
    }
    this.recordSend();
    return true;
  }

  /** Keeps the send times of the last second (what a 429 says the rate was). */
  private recordSend(): void {
    const sent = this.now();
    this.recent.push(sent);
    while ((this.recent[this.recentHead] as number) <= sent - 1000) this.recentHead++;
    if (this.recentHead > 4096) {
      this.recent = this.recent.slice(this.recentHead);
      this.recentHead = 0;
    }
  }

  /** Requests per second sends are paced at (undefined: not paced). */
  get pacedRate(): number | undefined {
    return this.rate === undefined ? undefined : Math.round(this.rate * 10) / 10;
  }

  release(): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    if (this.window) this.window.inFlight = Math.max(0, this.window.inFlight - 1);
    if (this.awaitingAnswers && this.window?.known) {
      // The first answer names the window (or says there is none): every worker held back until then
      // looks again. Later answers wake one worker at a time, as a slot does.
      this.awaitingAnswers = false;
      for (const waiter of [...this.waiters]) waiter();
      return;
    }
    this.wakeOne();
  }

  onDelivered(): void {
    if (this.limit >= this.max) return;
    this.credit += 1 / this.limit;
    if (this.credit >= 1) {
      this.credit = 0;
      this.limit++;
      this.wakeOne();
    }
  }

  /**
   * A 429: pause everyone until `retryAfterMs` from now and, when the API named no window (`adapt`),
   * halve the concurrency once per pause and pace sends.
   */
  onRateLimited(retryAfterMs: number, adapt = true): void {
    const now = this.now();
    const until = now + Math.max(0, retryAfterMs);
    if (adapt && now >= this.lastDecrease) {
      this.limit = Math.max(1, Math.floor(this.limit / 2));
      this.credit = 0;
      let met = 0;
      for (let i = this.recentHead; i < this.recent.length; i++)
        if ((this.recent[i] as number) > now - 1000) met++;
      this.rate = Math.max(1, Math.min(this.rate ?? Number.POSITIVE_INFINITY, met) * 0.9);
      this.rateRaisedAt = until;
      this.nextSendAt = until;
      // Answers to requests sent before this pause say nothing new about the rate: no second halving.
      this.lastDecrease = Math.max(until, now + 1);
    }
    this.pausedUntil = Math.max(this.pausedUntil, until);
  }

  /** Waits for a slot to open (or the run to stop, or `timeoutMs` to pass). */
  private wait(control: RunControl, timeoutMs?: number): Promise<void> {
    return new Promise((resolve) => {
      if (control.stopped) return resolve();
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => done(), Math.max(1, timeoutMs));
      const done = () => {
        if (timer) clearTimeout(timer);
        unhook();
        const i = this.waiters.indexOf(done);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve();
      };
      const unhook = control.onStop(done);
      this.waiters.push(done);
    });
  }

  /** One slot opened: the longest waiter looks again. */
  private wakeOne(): void {
    this.waiters[0]?.();
  }
}
