import http from 'node:http';
import https from 'node:https';
import type { CallResultPayload } from './payload';
import { type RateLimitInfo, rateLimitOf } from './rate-limit';
import type { RateLimitState } from './rate-limit-state';

/**
 * The DID Optimizer API: one POST per call over a pool of keep-alive connections (node:http, no
 * bundle cost). Knows HTTP and nothing of retries: it returns what came back, or how the exchange
 * broke, and whether the request had been sent in full (then the server may have stored the call).
 * Redirects are never followed: the key must reach no other origin.
 */

export interface ApiKeyProvider {
  key(): Promise<string>;
  /** A fresh key after the API refused the current one (rotated secret). */
  refresh(): Promise<string>;
}

export function staticApiKey(key: string): ApiKeyProvider {
  return { key: async () => key, refresh: async () => key };
}

export type PostResult =
  | {
      readonly kind: 'answer';
      readonly status: number;
      readonly body: string;
      readonly location: string | undefined;
      readonly retryAfter: string | undefined;
      /** The window the API named (X-RateLimit-* or RateLimit-*), if any. */
      readonly rateLimit: RateLimitInfo | undefined;
    }
  | {
      readonly kind: 'network';
      readonly error: string;
      /** The request was written in full before it broke: the server may have stored the call. */
      readonly ambiguous: boolean;
    };

export interface ApiClientOptions {
  readonly baseUrl: string;
  readonly userAgent: string;
  /** Connections kept open to the API: the run's CONCURRENCY. */
  readonly maxSockets: number;
}

/** Bodies beyond this are not needed to judge an answer (the API's own are tiny). */
const MAX_BODY_BYTES = 64 * 1024;
const EXCERPT_CHARS = 300;

export class DidOptimizerClient {
  /** The API's scheme, host and port: what its rate limit is kept under. */
  readonly origin: string;
  /** Where a spent window's reset is kept across runs and shared with other syncs (none: in memory only). */
  rateLimitState: RateLimitState | undefined;
  private readonly url: URL;
  private readonly agent: http.Agent;
  private readonly request: typeof http.request;

  constructor(private readonly options: ApiClientOptions) {
    this.url = new URL(`${options.baseUrl.replace(/\/+$/, '')}/api/v1/call-results`);
    this.origin = this.url.origin;
    const secure = this.url.protocol === 'https:';
    const agentOptions = { keepAlive: true, maxSockets: options.maxSockets, scheduling: 'lifo' as const };
    this.agent = secure ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    this.request = secure ? https.request : http.request;
  }

  /** Posts one call; `key` lets the caller retry with a refreshed key; `timeoutMs` bounds the whole exchange. */
  post(payload: CallResultPayload, key: string, timeoutMs: number): Promise<PostResult> {
    const body = JSON.stringify(payload);
    return new Promise((resolve) => {
      let sent = false;
      let settled = false;
      const finish = (result: PostResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(result);
      };
      const req = this.request(this.url, {
        method: 'POST',
        agent: this.agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'x-api-key': key,
          'idempotency-key': payload.uniqueid,
          'user-agent': this.options.userAgent,
        },
      });
      const timer = setTimeout(() => {
        req.destroy();
        finish({ kind: 'network', error: `timed out after ${timeoutMs} ms`, ambiguous: sent });
      }, timeoutMs);
      req.once('finish', () => {
        sent = true;
      });
      req.once('error', (error: Error & { code?: string }) => {
        finish({ kind: 'network', error: networkError(error), ambiguous: sent });
      });
      req.once('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          if (size < MAX_BODY_BYTES) chunks.push(chunk);
          size += chunk.length;
        });
        res.once('end', () =>
          finish({
            kind: 'answer',
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            location: header(res.headers.location),
            retryAfter: header(res.headers['retry-after']),
            rateLimit: rateLimitOf(res.headers),
          }),
        );
        res.once('error', (error: Error & { code?: string }) =>
          finish({ kind: 'network', error: networkError(error), ambiguous: true }),
        );
      });
      req.end(body);
    });
  }

  /** Closes the pooled connections (the CLI's end; a warm Lambda keeps them). */
  close(): void {
    this.agent.destroy();
  }
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function networkError(error: Error & { code?: string }): string {
  return error.code ? `${error.message} (${error.code})` : error.message;
}

/** A short piece of an answer for logs and dead letters; an API that echoes the request must not leak the key. */
export function excerptOf(body: string, key: string): string {
  const text = body.slice(0, EXCERPT_CHARS);
  return key.length >= 4 ? text.split(key).join('[redacted]') : text;
}
