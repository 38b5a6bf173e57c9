import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for the DID Optimizer API on loopback: the real HTTP contract (keys, required fields; a
 * repeated uniqueid is stored again and answered like any other, as the real server does) plus
 * scripted faults, so tests, the demo and the benchmark exercise the real client over
 * real sockets instead of a mocked fetch.
 */
export interface ReceivedCall {
  uniqueid: string;
  body: Record<string, unknown>;
  headers: Record<string, string | string[] | undefined>;
  /** The body exactly as decoded from the wire, to prove quotes, backslashes and emoji arrive intact. */
  rawBody: string;
  at: number;
}

export interface Exchange {
  uniqueid: string | null;
  startedAt: number;
  endedAt: number;
  status: number;
}

export type Fault =
  | { status: number; body?: string; retryAfter?: string; headers?: Record<string, string> }
  | { hang: true }
  | { destroy: true }
  /** Stores the call, then answers only after `ms`: a client that gave up meanwhile cannot know. */
  | { storeThenWaitMs: number };

/** The public server answers `/api/health`; the original guide names `/api/v1/health`. */
export type HealthPath = '/api/health' | '/api/v1/health';

/** Every request as it arrived, whatever the answer (headers include x-api-key). */
export interface ReceivedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface FakeDidApiOptions {
  /** Default ['test-key']. */
  validKeys?: string[];
  /** Artificial delay before answering any request, default 0. */
  latencyMs?: number;
  /** Health paths answered (others 404), default both: to stand in for a server that has only one. */
  healthPaths?: readonly HealthPath[];
}

/**
 * A fixed-window rate limit as express-rate-limit 8 applies it on the API's `/api/` routes (per client,
 * before the key check, its MemoryStore's window opening at the first request after the last one ended):
 * every request counts, answers carry the window's fields, and one over the limit is answered 429 with
 * `Retry-After` and a plain-text message (sent by Express as text/html).
 */
export interface RateLimit {
  /** Requests allowed per window (express-rate-limit's `limit`). */
  readonly perSecond: number;
  /** Retry-After of a 429; default as express-rate-limit: seconds left in the window, rounded up. */
  readonly retryAfterSeconds?: number;
  /** The window, default 1000 ms. */
  readonly windowMs?: number;
  /**
   * Which fields name the window: `legacy` (the library's and the API's default: X-RateLimit-Limit,
   * -Remaining, -Reset in epoch seconds, with Date), `draft-6` (standardHeaders: true, legacyHeaders:
   * false: RateLimit-Policy, RateLimit-Limit, -Remaining, -Reset in seconds), `both`, or `none` (an API
   * that names no window: only a 429's Retry-After).
   */
  readonly headers?: 'legacy' | 'draft-6' | 'both' | 'none';
}

/** express-rate-limit's default message. */
export const RATE_LIMIT_MESSAGE = 'Too many requests, please try again later.';

export interface FakeDidApi {
  /** http://127.0.0.1:PORT, no trailing slash. */
  readonly url: string;
  /** Every accepted (200) POST in arrival order, duplicates included. */
  readonly calls: ReceivedCall[];
  /** uniqueid -> latest accepted body. */
  readonly stored: Map<string, Record<string, unknown>>;
  /** Every request received, whatever the answer. */
  requestCount: number;
  /** TCP connections accepted: a pooled keep-alive client opens few. */
  readonly connections: number;
  /** Every exchange: when it came, when it was answered (or dropped), and its call. */
  readonly exchanges: readonly Exchange[];
  /** Method, path and headers of every request received. */
  readonly requests: ReceivedRequest[];
  /** Highest number of requests being handled at once. */
  maxInFlight: number;
  deliveredCount(uniqueid: string): number;
  /** Accepted POSTs of a uniqueid already stored: each one the real API counts twice. */
  duplicates(): number;
  setValidKeys(keys: string[]): void;
  /** Faults consumed in order by the next authorized POSTs, one per request, before validation. */
  failNext(...faults: Fault[]): void;
  /** A fault for every POST whose parsed body matches, until replaced or cleared with null. */
  failWhen(predicate: (body: Record<string, unknown>) => boolean, fault: Fault | null): void;
  setLatency(ms: number): void;
  /** Limits requests per window from now on; null lifts the limit (reset() lifts it too). */
  setRateLimit(limit: RateLimit | null): void;
  /** Requests answered 429 by the rate limit. */
  readonly rateLimitedCount: number;
  /**
   * Answer every request with a redirect to `location` + the request's path (a moved domain or a
   * proxy), before any key check; null stops it.
   */
  redirectTo(location: string | null, status?: number): void;
  /** Clears calls, stored bodies, counters and faults, ends hung requests, lifts a rate limit, and restores the keys and latency given at start. */
  reset(): void;
  /** Ends hung requests and keep-alive sockets too, so a test never waits on this server. */
  close(): Promise<void>;
}

const CALL_RESULTS = '/api/v1/call-results';
const HEALTH_PATHS: readonly HealthPath[] = ['/api/health', '/api/v1/health'];
const REQUIRED = ['uniqueid', 'phoneNumber', 'campaignId'] as const;

export async function startFakeDidApi(options: FakeDidApiOptions = {}): Promise<FakeDidApi> {
  const initialKeys = options.validKeys ?? ['test-key'];
  const initialLatency = options.latencyMs ?? 0;
  const health = new Set<string>(options.healthPaths ?? HEALTH_PATHS);
  let requests: ReceivedRequest[] = [];
  let redirect: { location: string; status: number } | null = null;
  let validKeys = new Set(initialKeys);
  let latencyMs = initialLatency;
  let calls: ReceivedCall[] = [];
  let stored = new Map<string, Record<string, unknown>>();
  let requestCount = 0;
  let connections = 0;
  let exchanges: Exchange[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let duplicates = 0;
  let nextId = 1;
  let scripted: Fault[] = [];
  let conditional: { predicate: (body: Record<string, unknown>) => boolean; fault: Fault } | null = null;
  let rateLimit: { limit: RateLimit; resetTime: number; hits: number } | null = null;
  let rateLimitedCount = 0;
  const hung = new Set<ServerResponse>();
  const timers = new Set<NodeJS.Timeout>();

  const send = (
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void => {
    // The client may have given up (timeout) or close() may have run while we slept.
    if (res.destroyed || res.writableEnded) return;
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(Buffer.byteLength(text)),
      ...headers,
    });
    res.end(text);
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  const applyFault = (req: IncomingMessage, res: ServerResponse, fault: Fault): void => {
    if ('hang' in fault) {
      hung.add(res);
      res.on('close', () => hung.delete(res));
      return;
    }
    if ('destroy' in fault) {
      req.socket.destroy();
      return;
    }
    if ('storeThenWaitMs' in fault) return;
    send(res, fault.status, fault.body ?? { success: false, error: `scripted ${fault.status}` }, {
      ...(fault.retryAfter === undefined ? {} : { 'retry-after': fault.retryAfter }),
      ...(fault.headers ?? {}),
    });
  };

  /**
   * Counts the request in its window and sets the window's fields on the answer, as express-rate-limit's
   * middleware does on arrival; true when the request is over the limit (then Retry-After is set too).
   */
  const overLimit = (res: ServerResponse): boolean => {
    if (!rateLimit) return false;
    const { limit } = rateLimit;
    const windowMs = limit.windowMs ?? 1000;
    const now = Date.now();
    if (rateLimit.resetTime <= now) {
      rateLimit.hits = 0;
      rateLimit.resetTime = now + windowMs;
    }
    rateLimit.hits++;
    const remaining = Math.max(limit.perSecond - rateLimit.hits, 0);
    const resetSeconds = Math.max(0, Math.ceil((rateLimit.resetTime - now) / 1000));
    const mode = limit.headers ?? 'legacy';
    if (mode === 'legacy' || mode === 'both') {
      res.setHeader('X-RateLimit-Limit', String(limit.perSecond));
      res.setHeader('X-RateLimit-Remaining', String(remaining));
      res.setHeader('Date', new Date(now).toUTCString());
      res.setHeader('X-RateLimit-Reset', String(Math.ceil(rateLimit.resetTime / 1000)));
    }
    if (mode === 'draft-6' || mode === 'both') {
      res.setHeader('RateLimit-Policy', `${limit.perSecond};w=${Math.ceil(windowMs / 1000)}`);
      res.setHeader('RateLimit-Limit', String(limit.perSecond));
      res.setHeader('RateLimit-Remaining', String(remaining));
      res.setHeader('RateLimit-Reset', String(resetSeconds));
    }
    const over = rateLimit.hits > limit.perSecond;
    if (over) res.setHeader('Retry-After', String(limit.retryAfterSeconds ?? resetSeconds));
    return over;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, rawBody: string): Promise<void> => {
    // Decided on arrival (the limiter runs first, on /api/ only), answered after the same latency as any
    // other answer.
    const limited = (req.url ?? '').startsWith('/api/') && overLimit(res);
    if (latencyMs > 0) await sleep(latencyMs);
    if (limited) {
      rateLimitedCount++;
      return send(res, 429, RATE_LIMIT_MESSAGE, { 'content-type': 'text/html; charset=utf-8' });
    }
    const key = req.headers['x-api-key'];
    const authorized = typeof key === 'string' && validKeys.has(key);
    const path = (req.url ?? '').split('?')[0] ?? '';

    if (redirect) {
      return send(res, redirect.status, '', { location: `${redirect.location.replace(/\/+$/, '')}${path}` });
    }
    if (req.method === 'GET' && health.has(path)) {
      return authorized
        ? send(res, 200, { status: 'ok' })
        : send(res, 401, { success: false, error: 'Invalid API key' });
    }
    if (req.method !== 'POST' || path !== CALL_RESULTS) {
      return send(res, 404, { success: false, error: 'Not found' });
    }
    if (!authorized) return send(res, 401, { success: false, error: 'Invalid API key' });

    const next = scripted.shift();
    if (next) return applyFault(req, res, next);

    let body: Record<string, unknown>;
    // A JSON body parser ignores a request that does not declare JSON, so the service sees no fields.
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      body = {};
    } else {
      let parsed: unknown;
      try {
        parsed = JSON.parse(rawBody);
      } catch {
        return send(res, 400, { success: false, error: 'Invalid JSON' });
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        return send(res, 400, { success: false, error: 'Request body must be a JSON object' });
      }
      body = parsed as Record<string, unknown>;
    }

    const fault = conditional?.predicate(body) ? conditional.fault : undefined;
    if (fault && !('storeThenWaitMs' in fault)) return applyFault(req, res, fault);

    const missing = REQUIRED.filter((f) => typeof body[f] !== 'string' || body[f] === '');
    if (missing.length > 0) {
      return send(res, 400, { success: false, error: `Missing required fields: ${missing.join(', ')}` });
    }

    const uniqueid = body.uniqueid as string;
    const duplicate = stored.has(uniqueid);
    if (duplicate) duplicates++;
    stored.set(uniqueid, body);
    calls.push({ uniqueid, body, headers: { ...req.headers }, rawBody, at: Date.now() });
    if (fault && 'storeThenWaitMs' in fault) await sleep(fault.storeThenWaitMs);
    // The real server has no duplicate flag: it stores the repeat and counts the DID's usage again.
    send(res, 200, {
      success: true,
      message: 'Call result recorded',
      data: { recordId: nextId++, uniqueid },
    });
  };

  const server = createServer((req, res) => {
    requestCount++;
    const exchange: Exchange = { uniqueid: null, startedAt: Date.now(), endedAt: 0, status: 0 };
    exchanges.push(exchange);
    res.once('close', () => {
      exchange.endedAt = Date.now();
      exchange.status = res.statusCode;
    });
    requests.push({
      method: req.method ?? '',
      path: (req.url ?? '').split('?')[0] ?? '',
      headers: { ...req.headers },
    });
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    // 'close' fires once the answer is sent or the socket is gone, so a hung request counts as in
    // flight until the client gives up.
    res.once('close', () => {
      inFlight--;
    });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    // Decode once after the last chunk: a multi-byte character may straddle two chunks.
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      exchange.uniqueid = /"uniqueid":"([^"]*)"/.exec(raw)?.[1] ?? null;
      handle(req, res, raw).catch((error: unknown) =>
        send(res, 500, { success: false, error: String(error) }),
      );
    });
    req.on('error', () => undefined);
  });
  server.on('connection', () => {
    connections++;
  });
  // Longer than the client's idle timeout, so the client, not the server, retires an idle socket and
  // a request never lands on a socket the server is closing.
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  const endHung = () => {
    for (const res of hung) res.socket?.destroy();
    hung.clear();
  };

  return {
    url: `http://127.0.0.1:${port}`,
    get calls() {
      return calls;
    },
    get stored() {
      return stored;
    },
    get connections() {
      return connections;
    },
    get exchanges() {
      return exchanges;
    },
    get requestCount() {
      return requestCount;
    },
    get requests() {
      return requests;
    },
    set requestCount(n: number) {
      requestCount = n;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    set maxInFlight(n: number) {
      maxInFlight = n;
    },
    deliveredCount: (uniqueid) => calls.reduce((n, c) => (c.uniqueid === uniqueid ? n + 1 : n), 0),
    duplicates: () => duplicates,
    setValidKeys(keys) {
      validKeys = new Set(keys);
    },
    failNext(...faults) {
      scripted.push(...faults);
    },
    failWhen(predicate, fault) {
      conditional = fault ? { predicate, fault } : null;
    },
    setLatency(ms) {
      latencyMs = ms;
    },
    setRateLimit(limit) {
      rateLimit = limit === null ? null : { limit, resetTime: 0, hits: 0 };
    },
    get rateLimitedCount() {
      return rateLimitedCount;
    },
    redirectTo(location, status = 301) {
      redirect = location === null ? null : { location, status };
    },
    reset() {
      endHung();
      calls = [];
      stored = new Map();
      requestCount = 0;
      connections = 0;
      exchanges = [];
      requests = [];
      redirect = null;
      // Requests still being answered remain in flight; the peak restarts from them.
      maxInFlight = inFlight;
      duplicates = 0;
      nextId = 1;
      scripted = [];
      conditional = null;
      validKeys = new Set(initialKeys);
      latencyMs = initialLatency;
      rateLimit = null;
      rateLimitedCount = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        endHung();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
