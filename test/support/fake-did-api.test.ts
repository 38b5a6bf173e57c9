import { Agent, request } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FakeDidApi, RATE_LIMIT_MESSAGE, startFakeDidApi } from './fake-did-api';
import { AWKWARD_COMMENTS } from './sample-calls';

const KEY = 'test-key';
let api: FakeDidApi;

beforeAll(async () => {
  api = await startFakeDidApi();
});
afterAll(async () => {
  await api.close();
});
afterEach(() => {
  api.reset();
});

function call(uniqueid: string, extra: Record<string, unknown> = {}) {
  return { uniqueid, phoneNumber: '5551234567', campaignId: 'SALESA', disposition: 'NI', ...extra };
}

function post(body: unknown, init: { key?: string | null; signal?: AbortSignal; raw?: string } = {}) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (init.key !== null) headers['x-api-key'] = init.key ?? KEY;
  return fetch(`${api.url}/api/v1/call-results`, {
    method: 'POST',
    headers,
    body: init.raw ?? JSON.stringify(body),
    ...(init.signal ? { signal: init.signal } : {}),
  });
}

async function answer(res: Response) {
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('fake DID Optimizer API', () => {
  it('listens on loopback without a trailing slash', () => {
    expect(api.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('refuses a wrong or missing key with 401 and stores nothing', async () => {
    expect(await answer(await post(call('1.1'), { key: 'nope' }))).toEqual({
      status: 401,
      body: { success: false, error: 'Invalid API key' },
    });
    expect((await post(call('1.1'), { key: null })).status).toBe(401);
    expect(api.calls).toHaveLength(0);
    expect(api.stored.size).toBe(0);
    expect(api.requestCount).toBe(2);
  });

  it('accepts a rotated key only after setValidKeys, and reset restores the original keys', async () => {
    api.setValidKeys(['new-key']);
    expect((await post(call('1.2'))).status).toBe(401);
    expect((await post(call('1.2'), { key: 'new-key' })).status).toBe(200);
    api.reset();
    expect((await post(call('1.2'))).status).toBe(200);
  });

  it('answers health with the key and 404 elsewhere', async () => {
    const health = (key?: string) =>
      fetch(`${api.url}/api/v1/health`, key ? { headers: { 'x-api-key': key } } : {});
    expect(await answer(await health(KEY))).toEqual({ status: 200, body: { status: 'ok' } });
    expect((await health('bad')).status).toBe(401);
    expect((await health()).status).toBe(401);
    expect((await fetch(`${api.url}/api/v1/other`, { headers: { 'x-api-key': KEY } })).status).toBe(404);
    expect((await fetch(`${api.url}/api/v1/call-results`, { headers: { 'x-api-key': KEY } })).status).toBe(
      404,
    );
  });

  it("answers the public server's /api/health as well, or only the paths it is told to", async () => {
    const get = (url: string, key = KEY) => fetch(url, { headers: { 'x-api-key': key } });
    expect(await answer(await get(`${api.url}/api/health`))).toEqual({ status: 200, body: { status: 'ok' } });
    expect((await get(`${api.url}/api/health`, 'bad')).status).toBe(401);
    const only = await startFakeDidApi({ healthPaths: ['/api/health'] });
    try {
      expect((await get(`${only.url}/api/health`)).status).toBe(200);
      expect((await get(`${only.url}/api/v1/health`)).status).toBe(404);
      expect(only.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
        'GET /api/health',
        'GET /api/v1/health',
      ]);
      expect(only.requests[0]?.headers['x-api-key']).toBe(KEY);
    } finally {
      await only.close();
    }
  });

  it('redirects every request when told to, before looking at the key', async () => {
    api.redirectTo('https://moved.example.com/');
    const res = await fetch(`${api.url}/api/v1/call-results`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': KEY },
      body: JSON.stringify(call('1.9')),
      redirect: 'manual',
    });
    expect(res.status).toBe(301);
    expect(res.headers.get('location')).toBe('https://moved.example.com/api/v1/call-results');
    expect(api.stored.size).toBe(0);
    api.reset();
    expect((await post(call('1.9'))).status).toBe(200);
  });

  it('lists the missing required fields with 400', async () => {
    expect(await answer(await post({ uniqueid: '1.3', phoneNumber: null, campaignId: '' }))).toEqual({
      status: 400,
      body: { success: false, error: 'Missing required fields: phoneNumber, campaignId' },
    });
    // A number is not a phone number string.
    expect((await answer(await post(call('1.3', { phoneNumber: 5551234567 })))).body.error).toBe(
      'Missing required fields: phoneNumber',
    );
    expect((await answer(await post({}))).body.error).toBe(
      'Missing required fields: uniqueid, phoneNumber, campaignId',
    );
    expect(api.calls).toHaveLength(0);
  });

  it('answers 400 to a body that is not a JSON object', async () => {
    expect(await answer(await post(null, { raw: '{"uniqueid": "1.4",' }))).toEqual({
      status: 400,
      body: { success: false, error: 'Invalid JSON' },
    });
    expect((await post([call('1.4')])).status).toBe(400);
    expect((await post(null)).status).toBe(400);
  });

  it('ignores a body that does not declare JSON, as a JSON body parser does', async () => {
    const res = await fetch(`${api.url}/api/v1/call-results`, {
      method: 'POST',
      headers: { 'x-api-key': KEY, 'content-type': 'text/plain' },
      body: JSON.stringify(call('1.5')),
    });
    expect((await answer(res)).body.error).toBe('Missing required fields: uniqueid, phoneNumber, campaignId');
  });

  it('stores a repeat again and answers it like any call, as the real API does (no duplicate flag)', async () => {
    const first = await answer(await post(call('1729771234.1000', { disposition: 'INCALL' })));
    expect(first).toMatchObject({ status: 200, body: { success: true, message: 'Call result recorded' } });
    expect(first.body.duplicate).toBeUndefined();
    const again = await answer(await post(call('1729771234.1000', { disposition: 'SALE' })));
    expect(again).toMatchObject({ status: 200, body: { success: true, message: 'Call result recorded' } });
    expect(again.body.duplicate).toBeUndefined();
    expect((again.body.data as { recordId: number }).recordId).not.toBe(
      (first.body.data as { recordId: number }).recordId,
    );
    await post(call('1729771234.567'));

    expect(api.calls.map((c) => c.uniqueid)).toEqual([
      '1729771234.1000',
      '1729771234.1000',
      '1729771234.567',
    ]);
    expect(api.deliveredCount('1729771234.1000')).toBe(2);
    expect(api.deliveredCount('1729771234.567')).toBe(1);
    expect(api.deliveredCount('nope')).toBe(0);
    expect(api.duplicates()).toBe(1);
    expect(api.stored.size).toBe(2);
    expect(api.stored.get('1729771234.1000')?.disposition).toBe('SALE');
    expect(api.calls[0]?.headers['x-api-key']).toBe(KEY);
    expect(api.calls[0]?.headers['content-type']).toBe('application/json');
  });

  it('plays scripted faults in order, one per authorized POST, then answers normally', async () => {
    api.failNext(
      { status: 500 },
      { status: 429, retryAfter: '1', body: '{"success":false,"error":"slow down"}' },
      { hang: true },
      { destroy: true },
      { status: 400, body: 'bad' },
    );
    // A refused key does not use up a fault: the key is checked first.
    expect((await post(call('2.1'), { key: 'bad' })).status).toBe(401);

    expect((await post(call('2.1'))).status).toBe(500);

    const limited = await post(call('2.1'));
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('1');
    expect(await limited.text()).toBe('{"success":false,"error":"slow down"}');

    const started = Date.now();
    await expect(post(call('2.1'), { signal: AbortSignal.timeout(300) })).rejects.toMatchObject({
      name: 'TimeoutError',
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);

    await expect(post(call('2.1'))).rejects.toThrow(TypeError);

    const rejected = await post(call('2.1'));
    expect(rejected.status).toBe(400);
    expect(await rejected.text()).toBe('bad');

    expect((await post(call('2.1'))).status).toBe(200);
    expect(api.calls).toHaveLength(1);
    expect(api.requestCount).toBe(7);
  });

  it('applies a conditional fault to matching calls until cleared', async () => {
    api.failWhen((b) => b.campaignId === 'RETENT', { status: 503, retryAfter: '2' });
    expect((await post(call('3.1', { campaignId: 'RETENT' }))).status).toBe(503);
    expect((await post(call('3.1', { campaignId: 'RETENT' }))).status).toBe(503);
    expect((await post(call('3.2'))).status).toBe(200);
    api.failWhen(() => true, null);
    expect((await post(call('3.1', { campaignId: 'RETENT' }))).status).toBe(200);
    expect([...api.stored.keys()]).toEqual(['3.2', '3.1']);
  });

  it('handles requests concurrently and reports the peak', async () => {
    api.setLatency(300);
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => post(call(`4.${i}`))));
    expect(answers.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(api.maxInFlight).toBe(10);
    // Ten answers after ~one latency, not ten latencies.
    expect(Date.now() - started).toBeLessThan(2000);
    api.reset();
    expect(api.maxInFlight).toBe(0);
    expect(api.requestCount).toBe(0);
  });

  it('counts a hung request as in flight until the client gives up', async () => {
    api.failNext({ hang: true });
    const hung = post(call('4.9'), { signal: AbortSignal.timeout(400) }).catch((e: Error) => e.name);
    await new Promise((r) => setTimeout(r, 100));
    expect((await post(call('4.10'))).status).toBe(200);
    expect(api.maxInFlight).toBe(2);
    expect(await hung).toBe('TimeoutError');
  });

  it('keeps the UTF-8 body byte-exact, even when a character straddles two chunks', async () => {
    const body = JSON.stringify(call('5.1', { comments: AWKWARD_COMMENTS }));
    expect((await post(null, { raw: body })).status).toBe(200);
    expect(api.calls[0]?.rawBody).toBe(body);
    expect(api.stored.get('5.1')?.comments).toBe(AWKWARD_COMMENTS);

    // Unescaped JSON, written in two pieces that split the emoji's four bytes.
    const raw = `{"uniqueid":"5.2","phoneNumber":"5551234567","campaignId":"SALESA","comments":${JSON.stringify(AWKWARD_COMMENTS)}}`;
    const bytes = Buffer.from(raw, 'utf8');
    const cut = bytes.indexOf(Buffer.from('😀', 'utf8')) + 2;
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${api.url}/api/v1/call-results`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-api-key': KEY, 'content-length': bytes.length },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.write(bytes.subarray(0, cut));
      setTimeout(() => req.end(bytes.subarray(cut)), 50);
    });
    expect(status).toBe(200);
    expect(api.calls[1]?.rawBody).toBe(raw);
    expect(api.stored.get('5.2')?.comments).toBe(AWKWARD_COMMENTS);
  });

  it('keeps connections alive between requests', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const once = () =>
      new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
        const req = request(`${api.url}/api/v1/health`, { agent, headers: { 'x-api-key': KEY } }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      expect(await once()).toEqual({ status: 200, reused: false });
      expect(await once()).toEqual({ status: 200, reused: true });
    } finally {
      agent.destroy();
    }
  });

  it('rate-limits per fixed window: 429 with a plain-text body and Retry-After, before the key check', async () => {
    api.setRateLimit({ perSecond: 3, retryAfterSeconds: 2, windowMs: 60_000 });
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await post(call(`8.${i}`)));
    const refused = await post(call('8.9'), { key: 'nope' });
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 429]);
    const last = answers[3] as Response;
    expect(last.headers.get('retry-after')).toBe('2');
    // Express's res.send of a string: the message is plain text, labelled text/html.
    expect(last.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await last.text()).toBe(RATE_LIMIT_MESSAGE);
    expect(refused.status).toBe(429);
    expect(api.stored.size).toBe(3);
    expect(api.rateLimitedCount).toBe(2);
    api.setRateLimit(null);
    expect((await post(call('8.3'))).status).toBe(200);
  });

  it("names the window on every /api/ answer as express-rate-limit 8's defaults do", async () => {
    api.setRateLimit({ perSecond: 2, windowMs: 60_000 });
    const before = Date.now();
    const first = await post(call('7.1'));
    const health = await fetch(`${api.url}/api/health`, { headers: { 'x-api-key': 'test-key' } });
    const over = await post(call('7.2'));
    const reset = Number(first.headers.get('x-ratelimit-reset'));
    expect(first.headers.get('x-ratelimit-limit')).toBe('2');
    expect(first.headers.get('x-ratelimit-remaining')).toBe('1');
    // Epoch seconds of the window's end, rounded up; the window opened with the first request.
    expect(reset * 1000).toBeGreaterThanOrEqual(before + 60_000);
    expect(reset * 1000).toBeLessThan(Date.now() + 61_000);
    expect(Date.parse(first.headers.get('date') ?? '')).toBeLessThanOrEqual(Date.now());
    expect(health.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(over.status).toBe(429);
    expect(over.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(55);
    expect(first.headers.get('ratelimit-policy')).toBeNull();
  });

  it('sends the IETF draft-6 fields in standardHeaders mode, and none in the mode of an API without them', async () => {
    api.setRateLimit({ perSecond: 3, windowMs: 900_000, headers: 'draft-6' });
    const answer = await post(call('6.1'));
    expect(answer.headers.get('ratelimit-policy')).toBe('3;w=900');
    expect(answer.headers.get('ratelimit-limit')).toBe('3');
    expect(answer.headers.get('ratelimit-remaining')).toBe('2');
    expect(answer.headers.get('ratelimit-reset')).toBe('900');
    expect(answer.headers.get('x-ratelimit-limit')).toBeNull();
    api.setRateLimit({ perSecond: 1, headers: 'none', retryAfterSeconds: 1 });
    const plain = await post(call('6.2'));
    const refused = await post(call('6.3'));
    expect(plain.headers.get('x-ratelimit-limit')).toBeNull();
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
  });

  it('opens a new window when the last one is over, and reset() lifts the limit', async () => {
    api.setRateLimit({ perSecond: 1, windowMs: 200 });
    expect((await post(call('9.1'))).status).toBe(200);
    const over = await post(call('9.2'));
    expect(over.status).toBe(429);
    expect(over.headers.get('retry-after')).toBe('1');
    await new Promise((r) => setTimeout(r, 250));
    expect((await post(call('9.2'))).status).toBe(200);
    api.reset();
    expect(api.rateLimitedCount).toBe(0);
    for (let i = 3; i < 6; i++) expect((await post(call(`9.${i}`))).status).toBe(200);
  });
});

describe('closing the fake API', () => {
  it('ends hung requests and idle keep-alive sockets promptly', async () => {
    const own = await startFakeDidApi({ validKeys: ['k'], latencyMs: 5 });
    own.failNext({ hang: true });
    expect((await fetch(`${own.url}/api/v1/health`, { headers: { 'x-api-key': 'k' } })).status).toBe(200);
    const hung = fetch(`${own.url}/api/v1/call-results`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'k' },
      body: JSON.stringify(call('6.1')),
    });
    hung.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await own.close();
    expect(Date.now() - started).toBeLessThan(1000);
    await expect(hung).rejects.toThrow(TypeError);
  });
});
