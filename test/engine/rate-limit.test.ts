import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { DynamoRateLimitState } from '../../functions/sync/delivery/rate-limit-state';
import { MemorySyncLog } from '../../functions/sync/log';
import { runSync } from '../../functions/sync/run/engine';
import { type FakeDidApi, type RateLimit, startFakeDidApi } from '../support/fake-did-api';
import { insertCalls, makeCall } from '../support/sample-calls';
import { type Harness, QUICK_RETRIES, startHarness, TEST_KEY } from '../support/sync-harness';

/**
 * Pacing by the API's own window. Each test has an API stand-in of its own: the window is kept per API
 * origin (in the process, and in the checkpoint table), as the syncs behind one IP share it.
 */
let h: Harness;
const apis: FakeDidApi[] = [];

beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'ratelimit');
});
afterAll(async () => {
  await Promise.all(apis.map((a) => a.close()));
  await h?.close();
});
afterEach(async () => {
  await h.db.query('TRUNCATE vicidial_log');
});

async function ownApi(limit: RateLimit, latencyMs = 5): Promise<FakeDidApi> {
  const api = await startFakeDidApi({ validKeys: [TEST_KEY], latencyMs });
  apis.push(api);
  api.setRateLimit(limit);
  return api;
}

async function calls(count: number): Promise<void> {
  const end = (await h.dbNow()) - 600;
  await insertCalls(
    h.db,
    Array.from({ length: count }, (_, i) => makeCall({ end_epoch: end - (i % 50) }, i)),
  );
}

async function run(api: FakeDidApi, env: Record<string, string> = {}, deadline?: number) {
  const now = await h.dbNow();
  const log = new MemorySyncLog();
  const sync = h.createSync(
    { SYNC_ID: `rl-${randomBytes(3).toString('hex')}`, START_FROM: String(now - 3 * 3600), ...env },
    { apiUrl: api.url },
  );
  const summary = await runSync(
    { ...sync, log, retryPolicy: QUICK_RETRIES },
    { owner: 'test', ...(deadline === undefined ? {} : { deadline }) },
  );
  return { summary, log };
}

describe('pacing by the rate-limit fields', () => {
  it('never sends a request the window is known to refuse: no 429 however many workers', async () => {
    // express-rate-limit's default fields; 16 workers against 6 requests per 300 ms window.
    const api = await ownApi({ perSecond: 6, windowMs: 300 });
    await calls(40);
    const { summary } = await run(api);
    expect(summary).toMatchObject({ outcome: 'completed', delivered: 40, rateLimited: 0 });
    expect(api.stored.size).toBe(40);
    expect(api.duplicates()).toBe(0);
    // Counted at the stand-in: a request sent after Remaining: 0 and before the reset is answered 429.
    expect(api.rateLimitedCount).toBe(0);
    expect(api.requestCount).toBe(40);
  });

  it('reads the IETF fields (standardHeaders) just as well', async () => {
    const api = await ownApi({ perSecond: 8, windowMs: 1000, headers: 'draft-6' });
    await calls(20);
    const { summary } = await run(api);
    expect(summary).toMatchObject({ outcome: 'completed', delivered: 20, rateLimited: 0 });
    expect(api.rateLimitedCount).toBe(0);
    expect(api.requestCount).toBe(20);
  });

  it('falls back to the 429 pause when the API names no window', async () => {
    const api = await ownApi({ perSecond: 10, windowMs: 400, retryAfterSeconds: 1, headers: 'none' });
    await calls(30);
    const { summary, log } = await run(api);
    expect(summary).toMatchObject({ outcome: 'completed', delivered: 30 });
    expect(api.stored.size).toBe(30);
    expect(api.duplicates()).toBe(0);
    expect(api.rateLimitedCount).toBeGreaterThan(0);
    expect(summary.rateLimited).toBe(api.rateLimitedCount);
    expect(log.events('rate_limited')).toHaveLength(api.rateLimitedCount);
    expect(api.requestCount).toBe(30 + api.rateLimitedCount);
  });

  it('ends a run at once as rate_limited, naming the reset, once a 15-minute window is spent; the next run sends nothing', async () => {
    const api = await ownApi({ perSecond: 5, windowMs: 15 * 60_000 });
    await calls(12);
    const deadline = Date.now() + 60_000;
    const { summary, log } = await run(api, {}, deadline);
    const reset = (log.events('rate_limit_spent')[0]?.resetAt ?? '') as string;
    expect(reset).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(Date.parse(reset)).toBeGreaterThan(Date.now() + 14 * 60_000);
    expect(summary).toMatchObject({ outcome: 'partial', reason: 'rate_limited', delivered: 5 });
    expect(summary.detail).toContain(reset);
    expect(log.events('rate_limit_stop')[0]?.detail).toContain(reset);
    expect(api.requestCount).toBe(5);
    expect(api.rateLimitedCount).toBe(0);

    // Kept beside the checkpoints for the next runs and the other syncs behind this IP.
    const kept = await new DynamoRateLimitState(h.store.client, h.table).read(new URL(api.url).origin);
    expect(kept).toEqual({ limit: 5, untilMs: Date.parse(reset) });

    // Another sync to the same API: the window is known before it sends anything.
    const next = await run(api, {}, Date.now() + 60_000);
    expect(next.summary).toMatchObject({ outcome: 'partial', reason: 'rate_limited', delivered: 0 });
    expect(api.requestCount).toBe(5);
  });
});
