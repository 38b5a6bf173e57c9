import http from 'node:http';
import https from 'node:https';
import { urlToHttpOptions } from 'node:url';
import type { CallResultPayload } from '../calls/payload';
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
  /** The request's options but its headers, worked out once rather than from a URL on every request. */
  private readonly target: http.RequestOptions;
  private readonly agent: http.Agent;
  private readonly request: typeof http.request;

  constructor(private readonly options: ApiClientOptions) {
    const url = new URL(`${options.baseUrl.replace(/\/+$/, '')}/api/v1/call-results`);
    this.origin = url.origin;
    const secure = url.protocol === 'https:';
    const agentOptions = { keepAlive: true, maxSockets: options.maxSockets, scheduling: 'lifo' as const };
    this.agent = secure ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    this.request = secure ? https.request : http.request;
    // Only what a request needs: with `href` present node would test the options as a URL on every call.
    const { protocol, hostname, port, path, auth } = urlToHttpOptions(url);
    this.target = {
      protocol,
      hostname,
      ...(port === undefined || port === '' ? {} : { port }),
      path,
      ...(auth ? { auth } : {}),
      method: 'POST',
      agent: this.agent,
    };
  }

  /** Posts one call; `key` lets the caller retry with a refreshed key; `timeoutMs` bounds the whole exchange. */
  post(payload: CallResultPayload, key: string, timeoutMs: number): Promise<PostResult> {
    const body = JSON.stringify(payload);
    return new Promise((resolve) => {
      let settled = false;
      const finish = (result: PostResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(result);
      };
      const req = this.request({
        ...this.target,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'x-api-key': key,
          'idempotency-key': payload.uniqueid,
          'user-agent': this.options.userAgent,
        },
      });
      // Sent in full (its 'finish' has fired): an exchange cut after this may have been stored.
      const timer = setTimeout(() => {
        const sent = req.writableFinished;
        req.destroy();
        finish({ kind: 'network', error: `timed out after ${timeoutMs} ms`, ambiguous: sent });
      }, timeoutMs);
      req.once('error', (error: Error & { code?: string }) => {
        finish({ kind: 'network', error: networkError(error), ambiguous: req.writableFinished });
      });
      req.once('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          if (size < MAX_BODY_BYTES) chunks.push(chunk);
          size += chunk.length;
        });
        res.once('end', () => {
          const status = res.statusCode ?? 0;
          // An answer's headers as an object are built on first use: a delivered call needs only the
          // rate-limit fields, found in the raw list.
          const raw = res.rawHeaders;
          const usual = status < 300;
          finish({
            kind: 'answer',
            status,
            body:
              chunks.length === 1
                ? (chunks[0] as Buffer).toString('utf8')
                : Buffer.concat(chunks).toString('utf8'),
            location: usual ? undefined : header(res.headers.location),
            retryAfter: usual ? undefined : header(res.headers['retry-after']),
            rateLimit: namesWindow(raw) ? rateLimitOf(res.headers) : undefined,
          });
        });
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

/** Whether the raw header list (name, value, name, value...) has a rate-limit field. */
function namesWindow(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const c = name.charCodeAt(0) | 0x20;
    // x-ratelimit-*, ratelimit, ratelimit-*
    if ((c === 0x78 || c === 0x72) && /^(?:x-)?ratelimit/i.test(name)) return true;
  }
  return false;
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
