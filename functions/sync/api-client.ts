import type { CallResultPayload } from './payload';
import { classifyStatus, parseRetryAfter } from './retry-policy';

/**
 * The DID Optimizer API: one POST per call. Knows HTTP and nothing of retries; it tells the caller which
 * kind of answer it got so the delivery policy can decide.
 */

export interface ApiKeyProvider {
  key(): Promise<string>;
  /** A fresh key after the API refused the current one (rotated secret). */
  refresh(): Promise<string>;
}

export function staticApiKey(key: string): ApiKeyProvider {
  return { key: async () => key, refresh: async () => key };
}

export type PostOutcome =
  | { readonly kind: 'delivered'; readonly status: number; readonly duplicate: boolean }
  | { readonly kind: 'rejected'; readonly status: number; readonly excerpt: string }
  | { readonly kind: 'auth'; readonly status: number; readonly excerpt: string }
  | {
      readonly kind: 'transient';
      readonly status: number | null;
      readonly error: string;
      readonly retryAfterMs?: number;
    };

export interface ApiClientOptions {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly userAgent: string;
}

const EXCERPT_CHARS = 300;

export class DidOptimizerClient {
  private readonly endpoint: string;

  constructor(private readonly options: ApiClientOptions) {
    this.endpoint = `${options.baseUrl.replace(/\/+$/, '')}/api/v1/call-results`;
  }

  /** Posts one call; `key` lets the caller retry with a refreshed key. */
  async post(payload: CallResultPayload, key: string): Promise<PostOutcome> {
    let response: Response;
    try {
      // fetch (undici) keeps connections alive and pools them per origin: concurrent posts reuse sockets.
      response = await fetch(this.endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-api-key': key,
          'idempotency-key': payload.uniqueid,
          'user-agent': this.options.userAgent,
        },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (error) {
      return { kind: 'transient', status: null, error: networkError(error, this.options.timeoutMs) };
    }
    let body: string;
    try {
      body = await response.text();
    } catch (error) {
      return {
        kind: 'transient',
        status: response.status,
        error: networkError(error, this.options.timeoutMs),
      };
    }
    const excerpt = redact(body.slice(0, EXCERPT_CHARS), key);
    switch (classifyStatus(response.status)) {
      case 'delivered':
        return { kind: 'delivered', status: response.status, duplicate: isDuplicate(body) };
      case 'auth':
        return { kind: 'auth', status: response.status, excerpt };
      case 'rejected':
        return { kind: 'rejected', status: response.status, excerpt };
      case 'transient': {
        const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), Date.now());
        return {
          kind: 'transient',
          status: response.status,
          error: `HTTP ${response.status}: ${excerpt}`,
          ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
        };
      }
    }
  }
}

function isDuplicate(body: string): boolean {
  try {
    return (JSON.parse(body) as { duplicate?: unknown }).duplicate === true;
  } catch {
    return false;
  }
}

function networkError(error: unknown, timeoutMs: number): string {
  const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `timed out after ${timeoutMs} ms`;
  const cause = e?.cause?.code ?? e?.cause?.message;
  return cause ? `${e?.message ?? 'network error'} (${cause})` : (e?.message ?? String(error));
}

/** An API that echoes the request must not put the key into a dead letter or a log line. */
function redact(text: string, key: string): string {
  return key.length >= 4 ? text.split(key).join('[redacted]') : text;
}
