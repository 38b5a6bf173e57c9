import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { insertCalls, makeCall } from '../support/sample-calls';
import { type Harness, startHarness } from '../support/sync-harness';

/**
 * The delivery path's mechanisms (the figures are the benchmark's): pooled connections, no batch
 * barrier, and a 429 that pauses every worker and halves the concurrency, which then recovers.
 */
let h: Harness;

beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'perf');
});
afterAll(async () => {
  await h?.close();
});
afterEach(async () => {
  await h.db.query('TRUNCATE vicidial_log');
  h.api.reset();
});

async function someCalls(syncId: string, n: number) {
  const now = await h.dbNow();
  const rows = Array.from({ length: n }, (_, i) =>
    makeCall({ end_epoch: now - 600 + Math.floor(i / 4), length_in_sec: 10 }, i),
  );
  await insertCalls(h.db, rows);
  return { env: { SYNC_ID: syncId, START_FROM: String(now - 700) }, rows };
}

describe('the delivery path', () => {
  it('reuses a pool of keep-alive connections, one per worker at most', async () => {
    const { env } = await someCalls('pool', 600);
    h.api.setLatency(5);
    const { summary } = await h.run(env);
    expect(summary.delivered).toBe(600);
    expect(h.api.connections).toBeLessThanOrEqual(16);
    expect(h.api.connections).toBeGreaterThan(0);
  });

  it('keeps workers busy across a batch boundary: the next batch is read while the last one is posted', async () => {
    const { env, rows } = await someCalls('barrier', 400);
    h.api.setLatency(25);
    const { summary } = await h.run({ ...env, BATCH_SIZE: '100' });
    expect(summary.delivered).toBe(400);
    // Rows are read in call_date order, 100 at a time: which chunk each call came in.
    const byCallDate = [...rows].sort((a, b) => (a.start_epoch ?? 0) - (b.start_epoch ?? 0));
    const chunkOf = new Map(byCallDate.map((r, i) => [r.uniqueid, Math.floor(i / 100)]));
    for (let chunk = 0; chunk < 3; chunk++) {
      const ofChunk = h.api.exchanges.filter((e) => chunkOf.get(e.uniqueid ?? '') === chunk);
      const ofNext = h.api.exchanges.filter((e) => chunkOf.get(e.uniqueid ?? '') === chunk + 1);
      const lastEnd = Math.max(...ofChunk.map((e) => e.endedAt));
      const firstStart = Math.min(...ofNext.map((e) => e.startedAt));
      // A barrier would wait for the whole chunk before the next one's first post.
      expect(firstStart).toBeLessThan(lastEnd);
    }
    expect(h.api.maxInFlight).toBe(16);
  });

  it('pauses every worker for Retry-After on a 429, halves the concurrency, and lets it recover', async () => {
    const { env } = await someCalls('throttled', 800);
    h.api.setLatency(10);
    let served = 0;
    h.api.failWhen(() => ++served === 60, { status: 429, retryAfter: '1', body: 'Too many requests' });
    const { summary, log } = await h.run(env);
    expect(summary).toMatchObject({ outcome: 'completed', delivered: 800, rateLimited: 1, retried: 0 });
    const limited = h.api.exchanges.find((e) => e.status === 429);
    if (!limited) throw new Error('no 429 seen');
    // Nothing new was sent until Retry-After passed (requests already under way may finish).
    const during = h.api.exchanges.filter(
      (e) => e.startedAt > limited.endedAt + 20 && e.startedAt < limited.endedAt + 950,
    );
    expect(during).toHaveLength(0);
    expect(log.events('rate_limited')[0]).toMatchObject({
      httpStatus: 429,
      retryAfterMs: 1000,
      concurrency: 8,
    });
    // Additive increase back to CONCURRENCY as deliveries succeed.
    expect(summary.concurrency).toBe(16);
    expect(h.api.calls.length).toBe(800);
  });
});
