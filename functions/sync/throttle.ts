import { type RunControl, sleep } from './run-control';

/**
 * Politeness towards the API, shared by every worker of a run:
 * - a 429 pauses **all** workers until its Retry-After (the limit is per client IP, so one worker's
 *   answer is everyone's), and
 * - the number of requests in flight adapts: it halves on a 429 (at most once per pause) and grows by
 *   one for every `current` deliveries (additive increase, multiplicative decrease) back up to the
 *   configured CONCURRENCY.
 */
export class Throttle {
  private limit: number;
  /** Fractional progress towards the next +1. */
  private credit = 0;
  private inFlight = 0;
  private pausedUntil = 0;
  private lastDecrease = 0;
  private readonly waiters: (() => void)[] = [];

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
        this.inFlight++;
        return true;
      }
      await this.wait(control);
    }
  }

  release(): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
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

  /** A 429: pause everyone until `retryAfterMs` from now and halve the concurrency once per pause. */
  onRateLimited(retryAfterMs: number): void {
    const now = this.now();
    const until = now + Math.max(0, retryAfterMs);
    if (now >= this.lastDecrease) {
      this.limit = Math.max(1, Math.floor(this.limit / 2));
      this.credit = 0;
      // Answers to requests sent before this pause say nothing new about the rate: no second halving.
      this.lastDecrease = Math.max(until, now + 1);
    }
    this.pausedUntil = Math.max(this.pausedUntil, until);
  }

  /** Waits for a slot to open (or the run to stop). */
  private wait(control: RunControl): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        control.signal.removeEventListener('abort', done);
        const i = this.waiters.indexOf(done);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve();
      };
      control.signal.addEventListener('abort', done, { once: true });
      this.waiters.push(done);
    });
  }

  /** One slot opened: the longest waiter looks again. */
  private wakeOne(): void {
    this.waiters[0]?.();
  }
}
