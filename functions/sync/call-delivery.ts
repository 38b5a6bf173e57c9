import type { ApiKeyProvider, DidOptimizerClient } from './api-client';
import type { SyncLog } from './log';
import type { CallResultPayload } from './payload';
import { type RetryPolicy, retryDelayMs, shouldRetry } from './retry-policy';
import { type RunControl, sleep } from './run-control';

/**
 * Delivers one call: retries transient failures with backoff inside the run, refreshes the API key once
 * after a 401/403, and reports a final answer the engine can act on.
 */
export type DeliveryResult =
  | {
      readonly kind: 'delivered';
      readonly duplicate: boolean;
      readonly status: number;
      readonly attempts: number;
    }
  | {
      readonly kind: 'rejected';
      readonly status: number;
      readonly excerpt: string;
      readonly attempts: number;
    }
  /** Transient failures outlasted the retries: the API is down for now. */
  | {
      readonly kind: 'gave_up';
      readonly error: string;
      readonly status: number | null;
      readonly attempts: number;
    }
  /** Refused even with a freshly fetched key. */
  | { readonly kind: 'auth_failed'; readonly status: number; readonly excerpt: string }
  | { readonly kind: 'stopped' };

export class CallDelivery {
  private currentKey: Promise<string> | undefined;
  private refreshedKey: Promise<string> | undefined;
  retries = 0;

  constructor(
    private readonly client: DidOptimizerClient,
    private readonly keys: ApiKeyProvider,
    private readonly policy: RetryPolicy,
    private readonly control: RunControl,
    private readonly log: SyncLog,
    private readonly random: () => number = Math.random,
  ) {}

  private key(): Promise<string> {
    this.currentKey ??= this.keys.key();
    return this.currentKey;
  }

  /**
   * One refresh per run, shared by all workers: sixteen concurrent 401s must not become sixteen secret
   * fetches. A request refused with the old key retries with the new one; refused with the new one, the
   * run stops (no dead letters: the calls are fine, the key is not).
   */
  private async afterAuthFailure(usedKey: string): Promise<boolean> {
    if (!this.refreshedKey) {
      this.refreshedKey = this.keys.refresh();
      this.currentKey = this.refreshedKey;
      const fresh = await this.refreshedKey;
      this.log.log('warn', 'api_key_refreshed', { changed: fresh !== usedKey });
      return true;
    }
    const fresh = await this.refreshedKey;
    return fresh !== usedKey;
  }

  async deliver(payload: CallResultPayload): Promise<DeliveryResult> {
    let attempt = 0;
    for (;;) {
      if (this.control.stopped) return { kind: 'stopped' };
      attempt++;
      const key = await this.key();
      const started = Date.now();
      const outcome = await this.client.post(payload, key);
      const durationMs = Date.now() - started;
      switch (outcome.kind) {
        case 'delivered':
          return {
            kind: 'delivered',
            duplicate: outcome.duplicate,
            status: outcome.status,
            attempts: attempt,
          };
        case 'rejected':
          return { kind: 'rejected', status: outcome.status, excerpt: outcome.excerpt, attempts: attempt };
        case 'auth':
          if (await this.afterAuthFailure(key)) {
            attempt--;
            continue;
          }
          return { kind: 'auth_failed', status: outcome.status, excerpt: outcome.excerpt };
        case 'transient': {
          if (!shouldRetry(attempt, this.policy)) {
            return { kind: 'gave_up', error: outcome.error, status: outcome.status, attempts: attempt };
          }
          const delayMs = retryDelayMs(attempt, this.policy, outcome.retryAfterMs, this.random);
          this.retries++;
          this.log.log('warn', 'call_retry', {
            uniqueid: payload.uniqueid,
            campaignId: payload.campaignId,
            attempt,
            httpStatus: outcome.status,
            error: outcome.error,
            durationMs,
            delayMs,
          });
          await sleep(delayMs, this.control.signal);
        }
      }
    }
  }
}
