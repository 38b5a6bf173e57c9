import type { CallResultPayload } from '../calls/payload';
import type { SyncLog } from '../log';
import { type RunControl, sleep } from '../run-control';
import { type ApiKeyProvider, type DidOptimizerClient, excerptOf } from './api-client';
import type { FailureKind } from './outage-breaker';
import { type RateLimitWindow, rateLimitWindowOf } from './rate-limit';
import { classifyAnswer, parseRetryAfter, type RetryPolicy, retryDelayMs, shouldRetry } from './retry-policy';
import type { Throttle } from './throttle';

/**
 * Delivers one call: retries transient failures with backoff within the run's deadline, waits out 429s
 * without counting them as failures, refreshes the API key once after a 401/403, and reports a final
 * answer the engine can act on.
 */
export type DeliveryResult =
  | { readonly kind: 'delivered'; readonly status: number; readonly attempts: number }
  /** The API will never take this payload as it is: a dead letter. */
  | {
      readonly kind: 'rejected';
      readonly status: number;
      readonly excerpt: string;
      readonly attempts: number;
    }
  /** Every attempt failed: the engine parks the call, or counts it toward the outage breaker. */
  | {
      readonly kind: 'failed';
      readonly failure: FailureKind;
      readonly status: number | null;
      readonly error: string;
      readonly attempts: number;
    }
  /** A redirect or a non-API 2xx: nothing was stored and no other call would fare better. */
  | { readonly kind: 'misconfigured'; readonly status: number; readonly detail: string }
  /** Refused (401) even with a freshly fetched key. */
  | { readonly kind: 'auth_failed'; readonly status: number; readonly excerpt: string }
  /** The run is stopping (deadline, rate limit past it, another worker's stop): the call stays unresolved. */
  | { readonly kind: 'stopped' };

export interface DeliveryOptions {
  readonly policy: RetryPolicy;
  readonly apiTimeoutMs: number;
}

/** A spent window whose reset is at least this far is kept for the next runs and the other syncs. */
const KEEP_SPENT_WINDOW_MS = 10_000;

export class CallDelivery {
  private currentKey: Promise<string> | undefined;
  /** The current key once fetched: the usual call takes it without an await. */
  private keyValue: string | undefined;
  private refreshedKey: Promise<string> | undefined;
  /** Attempts after a failed one (429 waits excluded). */
  retries = 0;
  /**
   * Requests that may have been stored and got no answer (cut by a timeout, the deadline or a lost
   * connection after they were sent in full): each is a possible repeat, counted and logged once.
   */
  ambiguous = 0;
  rateLimited = 0;
  private readonly window: RateLimitWindow;
  /** The kept window read once per run, before the first request. */
  private restored: Promise<void> | undefined;
  /** Read already: the usual call skips an await (they add up at thousands of calls a minute). */
  private restoreDone = false;
  private stopLogged = false;

  constructor(
    private readonly client: DidOptimizerClient,
    private readonly keys: ApiKeyProvider,
    private readonly options: DeliveryOptions,
    private readonly control: RunControl,
    private readonly throttle: Throttle,
    private readonly log: SyncLog,
    private readonly random: () => number = Math.random,
  ) {
    this.window = rateLimitWindowOf(client.origin);
    throttle.attach(this.window);
  }

  /** A window another run or sync spent: known before this run sends anything. */
  private async restore(): Promise<void> {
    const state = this.client.rateLimitState;
    if (!state) return;
    try {
      const kept = await state.read(this.client.origin);
      if (kept) this.window.restore(kept.limit, kept.untilMs, Date.now());
    } catch (error) {
      this.log.log('warn', 'rate_limit_state_unread', { error: (error as Error).message });
    }
  }

  /** Keeps a spent window's reset for the next runs (rarely: once per window, a reset far enough). */
  private async keepSpent(now: number): Promise<void> {
    const spent = this.window.spentToKeep(now, KEEP_SPENT_WINDOW_MS);
    if (!spent) return;
    this.log.log('info', 'rate_limit_spent', {
      limit: spent.limit,
      resetAt: new Date(spent.untilMs).toISOString(),
    });
    const state = this.client.rateLimitState;
    if (!state) return;
    await state.write(this.client.origin, spent).catch((error: Error) => {
      // Another sync kept a later reset already: nothing to do. Anything else only costs the next run a 429.
      if (error.name !== 'ConditionalCheckFailedException') {
        this.log.log('warn', 'rate_limit_state_unwritten', { error: error.message });
      }
    });
  }

  private stopped(): DeliveryResult {
    if (this.control.reason === 'rate_limited' && !this.stopLogged) {
      this.stopLogged = true;
      this.log.log('warn', 'rate_limit_stop', { detail: this.control.detail ?? null });
    }
    return { kind: 'stopped' };
  }

  private key(): Promise<string> {
    this.currentKey ??= this.keys.key().then((key) => {
      // Unless a refresh replaced it meanwhile: the refreshed key is the one to use.
      if (!this.refreshedKey) this.keyValue = key;
      return key;
    });
    return this.currentKey;
  }

  /**
   * One refresh per run, shared by all workers: sixteen concurrent 401s must not become sixteen secret
   * fetches. True when the request should be sent again with the new key.
   */
  private async afterAuthFailure(usedKey: string): Promise<boolean> {
    if (!this.refreshedKey) {
      this.refreshedKey = this.keys.refresh();
      this.currentKey = this.refreshedKey;
      this.keyValue = undefined;
      const fresh = await this.refreshedKey;
      this.keyValue = fresh;
      this.log.log('warn', 'api_key_refreshed', { changed: fresh !== usedKey });
      return true;
    }
    return (await this.refreshedKey) !== usedKey;
  }

  async deliver(payload: CallResultPayload, logFields: Record<string, unknown>): Promise<DeliveryResult> {
    const { policy } = this.options;
    let attempt = 0;
    let throttled = 0;
    if (!this.restoreDone) {
      this.restored ??= this.restore().finally(() => {
        this.restoreDone = true;
      });
      await this.restored;
    }
    for (;;) {
      if (!(await this.throttle.acquire(this.control))) return this.stopped();
      if (!this.control.mayStart()) {
        this.throttle.release();
        return { kind: 'stopped' };
      }
      let key: string;
      try {
        key = this.keyValue ?? (await this.key());
      } catch (error) {
        this.throttle.release();
        throw error;
      }
      attempt++;
      const started = Date.now();
      const result = await this.client.post(
        payload,
        key,
        Math.floor(this.control.bound(this.options.apiTimeoutMs)),
      );
      const answered = Date.now();
      if (result.kind === 'answer') this.window.observe(result.rateLimit, started, answered);
      this.throttle.release();
      const durationMs = answered - started;
      if (result.kind === 'answer' && result.rateLimit?.remaining === 0) await this.keepSpent(answered);

      let failure: { kind: FailureKind; status: number | null; error: string };
      if (result.kind === 'network') {
        if (result.ambiguous) {
          // Sent in full, no answer: the API may hold it, and whatever happens next may repeat it.
          this.ambiguous++;
          this.log.log('warn', 'call_ambiguous', { ...logFields, attempt, error: result.error });
        }
        failure = { kind: 'transient', status: null, error: result.error };
      } else {
        const verdict = classifyAnswer(result);
        const excerpt = () => excerptOf(result.body, key);
        switch (verdict.kind) {
          case 'delivered':
            this.throttle.onDelivered();
            return { kind: 'delivered', status: result.status, attempts: attempt };
          case 'rejected':
            return { kind: 'rejected', status: result.status, excerpt: excerpt(), attempts: attempt };
          case 'misconfigured':
            return {
              kind: 'misconfigured',
              status: result.status,
              detail: `${verdict.why}; body: ${JSON.stringify(excerpt().slice(0, 120))}`,
            };
          case 'rate_limited': {
            attempt--;
            throttled++;
            this.rateLimited++;
            const waitMs =
              parseRetryAfter(result.retryAfter, answered) ??
              Math.max(1_000, retryDelayMs(throttled, policy, this.random));
            // An API that names its window is paced by it: the 429 only says another client spent it.
            const named = result.rateLimit !== undefined;
            if (named) this.window.refused(answered + waitMs, result.rateLimit);
            this.throttle.onRateLimited(waitMs, !named);
            this.log.log('warn', 'rate_limited', {
              ...logFields,
              httpStatus: 429,
              retryAfterMs: waitMs,
              concurrency: this.throttle.current,
            });
            continue;
          }
          case 'auth':
            if (await this.afterAuthFailure(key)) {
              attempt--;
              continue;
            }
            if (result.status === 401) return { kind: 'auth_failed', status: 401, excerpt: excerpt() };
            // A 403 with the fresh key while other calls may pass: a rule about this call, or the key for
            // every call; the outage breaker tells which.
            return {
              kind: 'failed',
              failure: 'forbidden',
              status: 403,
              error: `HTTP 403: ${excerpt()}`,
              attempts: attempt,
            };
          case 'endpoint':
            return {
              kind: 'failed',
              failure: 'endpoint',
              status: result.status,
              error: `HTTP ${result.status}: ${excerpt()}`,
              attempts: attempt,
            };
          case 'transient':
            failure = {
              kind: 'transient',
              status: result.status,
              error: `HTTP ${result.status}: ${excerpt()}`,
            };
            break;
        }
      }
      if (!shouldRetry(attempt, policy)) {
        return {
          kind: 'failed',
          failure: failure.kind,
          status: failure.status,
          error: failure.error,
          attempts: attempt,
        };
      }
      const delayMs = retryDelayMs(attempt, policy, this.random);
      this.retries++;
      this.log.log('warn', 'call_retry', {
        ...logFields,
        attempt,
        httpStatus: failure.status,
        error: failure.error,
        durationMs,
        delayMs,
      });
      await sleep(this.control.bound(delayMs), this.control.signal);
    }
  }
}
