import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { DEFAULT_RETRY_POLICY } from '../../functions/sync/delivery/retry-policy';
import { insertCalls, makeCall, seededRandom } from '../support/sample-calls';
import { type Harness, startHarness } from '../support/sync-harness';

/**
 * The sync under the faults an operator meets, at the default settings (CONCURRENCY 16, FAILURE_STOP
 * 32, the production backoff): each test counts exactly what was delivered, posted twice, parked and
 * dead-lettered.
 */
let h: Harness;

beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'faults');
});
afterAll(async () => {
  await h?.close();
});
afterEach(async () => {
  await h.db.query('TRUNCATE vicidial_log');
  h.api.reset();
});

const production = { retryPolicy: DEFAULT_RETRY_POLICY };

async function calls(syncId: string, n: number, offset = 0, spreadSeconds = 600) {
  const now = await h.dbNow();
  const end = now - spreadSeconds - 60;
  const rows = Array.from({ length: n }, (_, i) =>
    makeCall({ end_epoch: end + Math.floor(((i + offset) * spreadSeconds) / (n + offset)) }, i + offset),
  );
  await insertCalls(h.db, rows);
  return { env: { SYNC_ID: syncId, START_FROM: String(end - 10) }, rows };
}

/** Calls that end after the sync's cursor, once the database clock has reached it. */
async function callsAfterCursor(syncId: string, n: number, offset: number) {
  const cursor = (await h.store.read(syncId))?.cursor.endEpoch ?? 0;
  while ((await h.dbNow()) < cursor) await new Promise((r) => setTimeout(r, 200));
  await insertCalls(
    h.db,
    Array.from({ length: n }, (_, i) => makeCall({ end_epoch: cursor }, offset + i)),
  );
}

async function deadLetters(syncId: string) {
  const out = [];
  for await (const l of h.store.deadLetters(syncId)) out.push(l);
  return out;
}

/** Posts that reached the API more than once for the same call. */
function postedTwice(): number {
  return h.api.calls.length - new Set(h.api.calls.map((c) => c.uniqueid)).size;
}

describe('one bad call among thousands', () => {
  it('parks it, moves on, retries it in later runs and dead-letters it after RETRY_MAX_RUNS', async () => {
    const { env, rows } = await calls('poison', 2000);
    const poison = rows[700]?.uniqueid as string;
    h.api.failWhen((b) => b.uniqueid === poison, {
      status: 500,
      body: '{"error":"TypeError: x is undefined"}',
    });

    const first = await h.run(env, production);
    expect(first.summary).toMatchObject({
      outcome: 'completed',
      delivered: 1999,
      parked: 1,
      parkedNew: 1,
      deadLettered: 0,
    });
    expect(first.log.events('call_parked')).toMatchObject([{ uniqueid: poison, httpStatus: 500 }]);
    expect(h.api.stored.size).toBe(1999);
    const status = await h.store.read('poison');
    expect(status?.parked).toMatchObject([{ uniqueid: poison, failures: 1, lastStatus: 500 }]);

    // Runs in which the API accepts other calls count; the third such run gives up on it.
    for (let run = 2; run <= 3; run++) {
      await callsAfterCursor('poison', 10, 5000 + run * 10);
      const next = await h.run(env, production);
      expect(next.summary).toMatchObject({ outcome: 'completed', delivered: 10 });
      expect(next.summary.deadLettered).toBe(run === 3 ? 1 : 0);
      expect(next.summary.parked).toBe(run === 3 ? 0 : 1);
    }
    const letters = await deadLetters('poison');
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ uniqueid: poison, httpStatus: 500 });
    expect(letters[0]?.reason).toMatch(/failed in 3 runs while the API accepted other calls: HTTP 500/);
    expect(letters[0]?.expiresAt).toBeGreaterThan(Date.now() / 1000 + 29 * 86400);
    expect(h.api.stored.size).toBe(2019);
    expect(postedTwice()).toBe(0);
  }, 120_000);

  it('delivers a parked call that the API takes later, once, as recovered', async () => {
    const { env, rows } = await calls('recover', 300);
    const bad = rows[10]?.uniqueid as string;
    h.api.failWhen((b) => b.uniqueid === bad, { status: 503 });
    const first = await h.run(env, production);
    expect(first.summary).toMatchObject({ delivered: 299, parked: 1 });
    h.api.failWhen(() => false, null);
    const second = await h.run(env, production);
    expect(second.summary).toMatchObject({ delivered: 1, recovered: 1, parked: 0, deadLettered: 0 });
    expect(second.log.events('call_recovered')).toMatchObject([{ uniqueid: bad }]);
    expect(h.api.stored.size).toBe(300);
    expect(postedTwice()).toBe(0);
  });

  it('parks a call a WAF refuses with 403 while others pass, and stops only when the key is refused for all', async () => {
    const { env, rows } = await calls('waf', 100);
    const blocked = rows[5]?.uniqueid as string;
    h.api.failWhen((b) => b.uniqueid === blocked, {
      status: 403,
      body: '{"error":"blocked by rule 942100"}',
    });
    const first = await h.run(env, production);
    expect(first.summary).toMatchObject({ outcome: 'completed', delivered: 99, parked: 1, deadLettered: 0 });
    h.api.reset();

    const { env: env2 } = await calls('waf-all', 100, 1000);
    h.api.failWhen(() => true, { status: 403 });
    const refused = await h.run(env2, production);
    expect(refused.summary).toMatchObject({ outcome: 'failed', reason: 'api_auth', delivered: 0, parked: 0 });
    expect(await deadLetters('waf-all')).toHaveLength(0);
  });
});

describe('an unreliable API', () => {
  it('delivers every call exactly once when a quarter of all requests fail', async () => {
    const { env } = await calls('flaky25', 3000);
    const random = seededRandom(25);
    h.api.failWhen(() => random() < 0.25, { status: 500 });
    let runs = 0;
    let summary: Awaited<ReturnType<typeof h.run>>['summary'];
    do {
      ({ summary } = await h.run(env, production));
      runs++;
    } while ((summary.outcome !== 'completed' || summary.parked > 0) && runs < 10);
    expect(summary.outcome).toBe('completed');
    expect(summary.parked).toBe(0);
    expect(h.api.stored.size).toBe(3000);
    expect(postedTwice()).toBe(0);
    expect(await deadLetters('flaky25')).toHaveLength(0);
  }, 120_000);

  it('stops on an outage after FAILURE_STOP calls in a row, parks none, and repeats nothing afterwards', async () => {
    const { env } = await calls('outage', 1000);
    h.api.setLatency(2);
    let served = 0;
    // Up for the first 300 requests, then down.
    h.api.failWhen(() => ++served > 300, { status: 502 });
    const down = await h.run(env, production);
    expect(down.summary).toMatchObject({
      outcome: 'failed',
      reason: 'api_unavailable',
      parked: 0,
      deadLettered: 0,
    });
    const deliveredFirst = h.api.stored.size;
    expect(deliveredFirst).toBe(300);
    expect(down.summary.delivered).toBe(300);

    h.api.failWhen(() => false, null);
    const up = await h.run(env, production);
    expect(up.summary).toMatchObject({ outcome: 'completed', delivered: 700 });
    expect(up.summary.skippedAhead).toBe(300 - (await deliveredBehind(down.summary.cursor)));
    expect(h.api.stored.size).toBe(1000);
    expect(postedTwice()).toBe(0);
  }, 60_000);

  it('stops as api_misconfigured on a wrong path (404 for every call): nothing dead-lettered or parked', async () => {
    const { env } = await calls('wrongpath', 200);
    h.api.failWhen(() => true, { status: 404, body: '{"error":"Not found"}' });
    const { summary } = await h.run(env, production);
    expect(summary).toMatchObject({
      outcome: 'failed',
      reason: 'api_misconfigured',
      delivered: 0,
      parked: 0,
      deadLettered: 0,
    });
    // FAILURE_STOP (2 x 16) failures, plus the requests already in flight when it tripped.
    expect(h.api.requestCount).toBeGreaterThanOrEqual(32);
    expect(h.api.requestCount).toBeLessThanOrEqual(32 + 15);
    h.api.failWhen(() => false, null);
    const fixed = await h.run(env, production);
    expect(fixed.summary).toMatchObject({ outcome: 'completed', delivered: 200 });
    expect(postedTwice()).toBe(0);
  });
});

/** How many calls are at or before the cursor (delivered in order, so not in the skip list). */
async function deliveredBehind(cursor: { endEpoch: number; uniqueid: string } | null): Promise<number> {
  if (!cursor) return 0;
  const delivered = new Set(h.api.calls.map((c) => c.uniqueid));
  const [rows] = await h.db.query(
    'SELECT uniqueid FROM vicidial_log WHERE end_epoch < ? OR (end_epoch = ? AND uniqueid <= ?)',
    [cursor.endEpoch, cursor.endEpoch, cursor.uniqueid],
  );
  return (rows as { uniqueid: string }[]).filter((r) => delivered.has(r.uniqueid)).length;
}

describe('an answer that never came', () => {
  it('retries a call whose request was sent but timed out, and counts that as ambiguous', async () => {
    const { env, rows } = await calls('ambiguous', 30);
    const slow = rows[3]?.uniqueid as string;
    let first = true;
    h.api.failWhen(
      (b) => {
        if (b.uniqueid !== slow || !first) return false;
        first = false;
        return true;
      },
      { storeThenWaitMs: 3_000 },
    );
    const { summary, log } = await h.run({ ...env, API_TIMEOUT_MS: '1000' }, production);
    expect(summary).toMatchObject({ outcome: 'completed', delivered: 30, ambiguous: 1, parked: 0 });
    // Logged once, for the request that was cut after it was sent in full.
    expect(log.events('call_ambiguous')).toMatchObject([{ uniqueid: slow, attempt: 1 }]);
    // The server had stored it: the one repeat a sync cannot avoid, and it says so.
    expect(h.api.deliveredCount(slow)).toBe(2);
    expect(postedTwice()).toBe(1);
  });
});

describe('a misconfigured API URL', () => {
  it('never follows a redirect: the key reaches no other origin and no call counts as delivered', async () => {
    const seen: IncomingHttpHeaders[] = [];
    const other = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>Welcome to our new site</html>');
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const location = `http://127.0.0.1:${(other.address() as AddressInfo).port}/api/v1/call-results`;
    try {
      const { env } = await calls('redirect', 1000);
      h.api.failWhen(() => true, { status: 301, body: '', headers: { location } });
      const { summary, log } = await h.run(env, production);
      expect(summary).toMatchObject({
        outcome: 'failed',
        reason: 'api_misconfigured',
        delivered: 0,
        deadLettered: 0,
        parked: 0,
      });
      expect(summary.detail).toContain(location);
      expect(log.events('api_misconfigured')[0]).toMatchObject({ httpStatus: 301 });
      expect(seen).toHaveLength(0);
      // At most the requests in flight when the first answer came: never one per call.
      expect(h.api.requestCount).toBeLessThanOrEqual(16);

      h.api.failWhen(() => false, null);
      const fixed = await h.run(env, production);
      expect(fixed.summary).toMatchObject({ outcome: 'completed', delivered: 1000 });
      expect(postedTwice()).toBe(0);
    } finally {
      await new Promise((r) => other.close(r));
    }
  });

  it('does not count a 200 HTML page as delivered', async () => {
    const { env } = await calls('html200', 100);
    h.api.failWhen(() => true, { status: 200, body: '<!doctype html><title>Login</title>' });
    const { summary } = await h.run(env, production);
    expect(summary).toMatchObject({ outcome: 'failed', reason: 'api_misconfigured', delivered: 0 });
    expect(summary.detail).toMatch(/HTTP 200 without a JSON body with "success": true.*Login/);
    expect(summary.cursor?.endEpoch).toBe(Number(env.START_FROM));
    h.api.failWhen(() => false, null);
    const fixed = await h.run(env, production);
    expect(fixed.summary).toMatchObject({ outcome: 'completed', delivered: 100 });
    expect(h.api.stored.size).toBe(100);
    expect(postedTwice()).toBe(0);
  });
});

describe('conditional writes whose answer was lost', () => {
  it('reads the item to see that a retried checkpoint write had been applied, and goes on', async () => {
    const { startLossyDynamoProxy } = await import('../support/lossy-dynamo-proxy');
    const { CheckpointStore } = await import('../../functions/sync/state/checkpoint-store');
    const { createDynamoClient } = await import('../../functions/sync/wiring');
    const proxy = await startLossyDynamoProxy(h.dynamo.endpoint);
    const client = createDynamoClient({ table: h.table, region: 'us-east-1', endpoint: proxy.endpoint });
    const store = new CheckpointStore(client, h.table);
    try {
      const cursor = { endEpoch: 1_700_000_000, uniqueid: '' };
      proxy.dropNextAnswer('UpdateItem');
      const acquired = await store.acquire('lossy', 'owner-1', 60_000, cursor);
      expect(acquired.acquired).toBe(true);
      if (!acquired.acquired) return;
      const next = { endEpoch: 1_700_000_100, uniqueid: '1700000100.1' };
      proxy.dropNextAnswer('UpdateItem');
      await store.advance(acquired.lease, cursor, next, { pending: [], parked: [], frontier: 0 }, 60_000);
      expect(proxy.dropped).toBe(2);
      expect((await store.read('lossy'))?.cursor).toEqual(next);
      // A write that really was refused still says so.
      await expect(
        store.advance(
          acquired.lease,
          cursor,
          { endEpoch: 1, uniqueid: '' },
          { pending: [], parked: [], frontier: 0 },
          60_000,
        ),
      ).rejects.toThrow(/lease on sync "lossy" was lost/);
    } finally {
      client.destroy();
      await proxy.close();
    }
  });
});
