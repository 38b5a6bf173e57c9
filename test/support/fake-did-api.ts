import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A stand-in for the DID Optimizer API on loopback: the real HTTP contract (keys, required fields,
 * duplicates) plus scripted faults, so tests and the demo exercise the real client over real sockets.
 */
export interface ReceivedCall {
  uniqueid: string;
  body: Record<string, unknown>;
  headers: Record<string, string | string[] | undefined>;
  rawBody: string;
  at: number;
}

export type Fault =
  | { status: number; body?: string; retryAfter?: string }
  | { hang: true }
  | { destroy: true };

export interface FakeDidApiOptions {
  validKeys?: string[];
  latencyMs?: number;
}

export interface FakeDidApi {
  readonly url: string;
  readonly calls: ReceivedCall[];
  readonly stored: Map<string, Record<string, unknown>>;
  readonly requestCount: number;
  readonly maxInFlight: number;
  deliveredCount(uniqueid: string): number;
  duplicates(): number;
  setValidKeys(keys: string[]): void;
  failNext(...faults: Fault[]): void;
  failWhen(predicate: (body: Record<string, unknown>) => boolean, fault: Fault | null): void;
  setLatency(ms: number): void;
  reset(): void;
  close(): Promise<void>;
}

const REQUIRED = ['uniqueid', 'phoneNumber', 'campaignId'];

export async function startFakeDidApi(options: FakeDidApiOptions = {}): Promise<FakeDidApi> {
  let validKeys = new Set(options.validKeys ?? ['test-key']);
  let latencyMs = options.latencyMs ?? 0;
  let calls: ReceivedCall[] = [];
  let stored = new Map<string, Record<string, unknown>>();
  let requestCount = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let duplicates = 0;
  let scripted: Fault[] = [];
  let conditional: { predicate: (body: Record<string, unknown>) => boolean; fault: Fault } | null = null;
  const sockets = new Set<Socket>();

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(text);
  };

  const applyFault = (res: ServerResponse, req: IncomingMessage, fault: Fault): void => {
    if ('hang' in fault) return;
    if ('destroy' in fault) {
      req.socket.destroy();
      return;
    }
    send(
      res,
      fault.status,
      fault.body ?? { success: false, error: `scripted ${fault.status}` },
      fault.retryAfter ? { 'retry-after': fault.retryAfter } : {},
    );
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, rawBody: string) => {
    if (latencyMs > 0) await new Promise((r) => setTimeout(r, latencyMs));
    const key = req.headers['x-api-key'];
    const authorized = typeof key === 'string' && validKeys.has(key);
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/api/v1/health') {
      return authorized
        ? send(res, 200, { status: 'ok' })
        : send(res, 401, { success: false, error: 'Invalid API key' });
    }
    if (req.method !== 'POST' || path !== '/api/v1/call-results') {
      return send(res, 404, { success: false, error: 'Not found' });
    }
    if (!authorized) return send(res, 401, { success: false, error: 'Invalid API key' });
    const next = scripted.shift();
    if (next) return applyFault(res, req, next);
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(rawBody) as Record<string, unknown>;
    } catch {
      return send(res, 400, { success: false, error: 'Invalid JSON' });
    }
    if (conditional?.predicate(body)) return applyFault(res, req, conditional.fault);
    const missing = REQUIRED.filter((f) => typeof body[f] !== 'string' || (body[f] as string).trim() === '');
    if (missing.length > 0) {
      return send(res, 400, { success: false, error: `Missing required fields: ${missing.join(', ')}` });
    }
    const uniqueid = body.uniqueid as string;
    const duplicate = stored.has(uniqueid);
    if (duplicate) duplicates++;
    stored.set(uniqueid, body);
    calls.push({ uniqueid, body, headers: { ...req.headers }, rawBody, at: Date.now() });
    return send(
      res,
      200,
      duplicate ? { success: true, duplicate: true } : { success: true, id: calls.length },
    );
  };

  const server = createServer((req, res) => {
    requestCount++;
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void handle(req, res, Buffer.concat(chunks).toString('utf8'))
        .catch((error: unknown) => send(res, 500, { success: false, error: String(error) }))
        .finally(() => {
          inFlight--;
        });
    });
    req.on('error', () => undefined);
  });
  server.keepAliveTimeout = 5_000;
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    get calls() {
      return calls;
    },
    get stored() {
      return stored;
    },
    get requestCount() {
      return requestCount;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    deliveredCount: (uniqueid) => calls.filter((c) => c.uniqueid === uniqueid).length,
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
    reset() {
      calls = [];
      stored = new Map();
      requestCount = 0;
      maxInFlight = 0;
      duplicates = 0;
      scripted = [];
      conditional = null;
      validKeys = new Set(options.validKeys ?? ['test-key']);
      latencyMs = options.latencyMs ?? 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
