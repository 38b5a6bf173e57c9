import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { replayDeadLetters } from '../../functions/sync/admin/dead-letters';
import { staticApiKey } from '../../functions/sync/delivery/api-client';
import { generateCalls, insertCalls, makeCall, setStatus } from '../support/sample-calls';
import { type Harness, startHarness } from '../support/sync-harness';

let h: Harness;

beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'delivery');
});
afterAll(async () => {
  await h?.close();
});
afterEach(async () => {
  await h.db.query('TRUNCATE vicidial_log');
  h.api.reset();
});

async function freshSync(name: string) {
  // A new sync id per test: its own checkpoint, started well before the inserted calls.
  const now = await h.dbNow();
  return { SYNC_ID: name, START_FROM: String(now - 3 * 3600) };
}

describe('reading calls', () => {
  it('delivers every call of a tie group larger than a batch, once', async () => {
    const env = await freshSync('ties');
    const end = (await h.dbNow()) - 600;
    const tie = Array.from({ length: 1203 }, (_, i) => makeCall({ end_epoch: end }, i));
    await insertCalls(h.db, [
      ...tie,
      makeCall({ end_epoch: end - 1 }, 5000),
      makeCall({ end_epoch: end + 1 }, 5001),
    ]);

    const { summary } = await h.run({ ...env, BATCH_SIZE: '100' });

    expect(summary.outcome).toBe('completed');
    expect(summary.delivered).toBe(1205);
    expect(h.api.stored.size).toBe(1205);
    expect(h.api.calls).toHaveLength(1205);
    // Chunks of at most a batch, read in call_date order: about one per hundred rows.
    expect(summary.batches).toBeGreaterThanOrEqual(13);
  });

  it('skips nothing and sends nothing twice across many runs of a busy table', async () => {
    const env = await freshSync('busy');
    const now = await h.dbNow();
    const rows = generateCalls({
      count: 3000,
      fromEpoch: now - 7200,
      toEpoch: now - 60,
      seed: 7,
      tiesPerSecond: 25,
    });
    await insertCalls(h.db, rows);
    const expected = rows.filter(
      (r) => r.status && (r.length_in_sec ?? 0) > 0 && r.phone_number && r.campaign_id,
    );

    let runs = 0;
    for (;;) {
      const { summary } = await h.run({ ...env, BATCH_SIZE: '250', SLICE_SECONDS: '600' }, { maxBatches: 3 });
      runs++;
      if (summary.outcome === 'completed') break;
      expect(summary.outcome).toBe('partial');
    }
    expect(runs).toBeGreaterThan(3);
    expect(h.api.stored.size).toBe(expected.length);
    expect(h.api.calls).toHaveLength(expected.length);
    expect(h.api.duplicates()).toBe(0);
  });

  it('applies the original filters and the campaign lists', async () => {
    const env = await freshSync('filters');
    const end = (await h.dbNow()) - 300;
    await insertCalls(h.db, [
      makeCall({ end_epoch: end, campaign_id: 'SALESA' }, 1),
      makeCall({ end_epoch: end, campaign_id: 'SALESB' }, 2),
      makeCall({ end_epoch: end, campaign_id: 'RETENT' }, 3),
      makeCall({ end_epoch: end, campaign_id: 'SALESA', status: '' }, 4),
      makeCall({ end_epoch: end, campaign_id: 'SALESA', status: null }, 5),
      makeCall({ end_epoch: end, campaign_id: 'SALESA', length_in_sec: 0 }, 6),
    ]);
    await h.run({ ...env, CAMPAIGNS: 'SALESA,SALESB' });
    expect([...h.api.stored.values()].map((b) => b.campaignId).sort()).toEqual(['SALESA', 'SALESB']);
    h.api.reset();
    await h.run({ ...env, SYNC_ID: 'filters-exclude', EXCLUDE_CAMPAIGNS: 'SALESB' });
    expect([...h.api.stored.values()].map((b) => b.campaignId).sort()).toEqual(['RETENT', 'SALESA']);
  });

  it('leaves calls that end within the settle window for the next run', async () => {
    const env = await freshSync('settle');
    const now = await h.dbNow();
    await insertCalls(h.db, [makeCall({ end_epoch: now - 100 }, 1), makeCall({ end_epoch: now + 30 }, 2)]);
    const { summary } = await h.run({ ...env, SETTLE_SECONDS: '5' });
    expect(summary.delivered).toBe(1);
    expect(summary.cursor?.endEpoch).toBeLessThanOrEqual(now + 1 - 5 + 2);
  });
});

describe('payloads', () => {
  it('sends all 18 fields with the headers the API expects, comments byte-exact', async () => {
    const env = await freshSync('bytes');
    const end = (await h.dbNow()) - 120;
    const comments = 'It\'s "quoted" \\ back\\slash 😀 ünïcödé';
    await insertCalls(h.db, [makeCall({ end_epoch: end, comments, uniqueid: '1700000000.42' }, 1)]);
    await h.run(env);
    const [received] = h.api.calls;
    expect(received?.body.comments).toBe(comments);
    expect(received?.rawBody).toContain(JSON.stringify(comments));
    expect(Object.keys(received?.body ?? {}).sort()).toEqual(
      [
        'uniqueid',
        'leadId',
        'listId',
        'campaignId',
        'phoneNumber',
        'phoneCode',
        'disposition',
        'duration',
        'agentId',
        'userGroup',
        'termReason',
        'comments',
        'altDial',
        'calledCount',
        'callDate',
        'startEpoch',
        'endEpoch',
        'timestamp',
      ].sort(),
    );
    expect(typeof received?.body.duration).toBe('number');
    expect(received?.body.timestamp).toBe(end);
    expect(received?.headers['idempotency-key']).toBe('1700000000.42');
    expect(received?.headers['x-api-key']).toBe('test-key');
    expect(received?.headers['content-type']).toBe('application/json');
    expect(received?.headers['user-agent']).toMatch(/^vicidial-did-sync\/\d+\.\d+\.\d+/);
  });

  it('dead-letters a call with a NULL phone and goes on', async () => {
    const env = await freshSync('nullphone');
    const end = (await h.dbNow()) - 120;
    await insertCalls(h.db, [
      makeCall({ end_epoch: end, uniqueid: '1700000001.1', phone_number: null }, 1),
      makeCall({ end_epoch: end, uniqueid: '1700000001.2' }, 2),
    ]);
    const { summary, log } = await h.run(env);
    expect(summary).toMatchObject({ outcome: 'completed', delivered: 1, deadLettered: 1 });
    const letters = [];
    for await (const l of h.store.deadLetters('nullphone')) letters.push(l);
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({
      uniqueid: '1700000001.1',
      reason: 'invalid row: missing required fields: phoneNumber',
    });
    expect(JSON.parse(letters[0]?.payload ?? '{}').phoneNumber).toBeNull();
    expect(log.events('call_dead_lettered')[0]).toMatchObject({
      uniqueid: '1700000001.1',
      syncId: 'nullphone',
    });
    expect(h.api.requestCount).toBe(1);
  });

  it('dead-letters what the API rejects, with its answer, and moves on', async () => {
    const env = await freshSync('rejected');
    const end = (await h.dbNow()) - 120;
    await insertCalls(h.db, [
      makeCall({ end_epoch: end, uniqueid: '1700000002.1' }, 1),
      makeCall({ end_epoch: end, uniqueid: '1700000002.2' }, 2),
    ]);
    h.api.failWhen((b) => b.uniqueid === '1700000002.1', {
      status: 422,
      body: '{"success":false,"error":"bad campaign"}',
    });
    const { summary } = await h.run(env);
    expect(summary).toMatchObject({ outcome: 'completed', delivered: 1, deadLettered: 1 });
    const letters = [];
    for await (const l of h.store.deadLetters('rejected')) letters.push(l);
    expect(letters[0]).toMatchObject({ httpStatus: 422, reason: 'rejected by the API: HTTP 422' });
    expect(letters[0]?.responseExcerpt).toContain('bad campaign');
  });
});

describe('dead letters', () => {
  it('replays a pile of dead letters in parallel once the API accepts them, and stops at a deadline', async () => {
    const env = await freshSync('replay-pile');
    const end = (await h.dbNow()) - 120;
    const calls = Array.from({ length: 60 }, (_, i) => makeCall({ end_epoch: end - (i % 7) }, 7000 + i));
    await insertCalls(h.db, calls);
    // The API refuses every payload (a schema change on its side): every call is a dead letter.
    h.api.failWhen(() => true, { status: 422 });
    const { summary } = await h.run(env);
    expect(summary).toMatchObject({ outcome: 'completed', delivered: 0, deadLettered: 60 });
    h.api.reset();

    const sync = h.createSync({ ...env, CONCURRENCY: '8' });
    const late = await replayDeadLetters(sync, { owner: 'replay-late', deadline: Date.now() - 1 });
    expect(late).toMatchObject({ total: 60, delivered: 0, notAttempted: 60, stoppedBy: 'time_budget' });
    expect(h.api.requestCount).toBe(0);

    h.api.setLatency(10); // long enough for posts to overlap
    const replay = await replayDeadLetters(sync, { owner: 'replay-now' });
    expect(replay).toMatchObject({ total: 60, delivered: 60, stillRejected: 0, notAttempted: 0 });
    expect(replay.stoppedBy).toBeUndefined();
    expect(h.api.stored.size).toBe(60);
    expect(h.api.duplicates()).toBe(0);
    expect(h.api.maxInFlight).toBeGreaterThan(1);
    expect(h.api.maxInFlight).toBeLessThanOrEqual(8);
    const left = [];
    for await (const l of h.store.deadLetters('replay-pile')) left.push(l);
    expect(left).toHaveLength(0);
  });
});

describe('API trouble', () => {
  it('retries 500s, timeouts and dropped connections, waits out a 429 without counting it, then delivers', async () => {
    const env = await freshSync('flaky');
    const end = (await h.dbNow()) - 120;
    await insertCalls(
      h.db,
      Array.from({ length: 10 }, (_, i) => makeCall({ end_epoch: end }, i)),
    );
    h.api.failNext(
      { status: 500 },
      { status: 503 },
      { hang: true },
      { destroy: true },
      { status: 429, retryAfter: '1' },
    );
    const { summary, log } = await h.run({ ...env, API_TIMEOUT_MS: '300', CONCURRENCY: '2' });
    expect(summary).toMatchObject({ outcome: 'completed', delivered: 10, deadLettered: 0 });
    expect(summary.retried).toBe(4);
    expect(summary.rateLimited).toBe(1);
    expect(h.api.stored.size).toBe(10);
    expect(
      log
        .events('call_retry')
        .map((e) => e.httpStatus)
        .sort(),
    ).toEqual([500, 503, null, null]);
    expect(log.events('rate_limited')).toHaveLength(1);
  });

  it('stops early when the API stays down, keeps what was delivered, and catches up after recovery', async () => {
    const env = await freshSync('outage');
    const end = (await h.dbNow()) - 120;
    await insertCalls(
      h.db,
      Array.from({ length: 40 }, (_, i) => makeCall({ end_epoch: end + (i % 4) }, i)),
    );
    h.api.failWhen((b) => Number(b.endEpoch) >= end + 2, { status: 500 });
    const first = await h.run({ ...env, CONCURRENCY: '1', API_MAX_ATTEMPTS: '3' });
    expect(first.summary.outcome).toBe('failed');
    expect(first.summary.reason).toBe('api_unavailable');
    const deliveredFirst = h.api.stored.size;
    expect(deliveredFirst).toBeGreaterThan(0);
    expect(first.summary.deadLettered).toBe(0);

    h.api.failWhen(() => true, null);
    const second = await h.run(env);
    expect(second.summary.outcome).toBe('completed');
    expect(h.api.stored.size).toBe(40);
    expect(h.api.duplicates()).toBe(0);
  });

  it('fetches a fresh key once after a 401, and stops without dead letters when it is still refused', async () => {
    const env = await freshSync('rotated');
    const end = (await h.dbNow()) - 120;
    await insertCalls(
      h.db,
      Array.from({ length: 20 }, (_, i) => makeCall({ end_epoch: end }, i)),
    );
    h.api.setValidKeys(['new-key']);
    let current = 'old-key';
    let refreshes = 0;
    const keys = {
      key: async () => current,
      refresh: async () => {
        refreshes++;
        return current;
      },
    };
    const refused = await h.run(env, { keys });
    expect(refused.summary).toMatchObject({
      outcome: 'failed',
      reason: 'api_auth',
      deadLettered: 0,
      delivered: 0,
    });
    expect(refreshes).toBe(1);

    current = 'new-key';
    const rotated = await h.run(env, { keys: { key: async () => 'old-key', refresh: async () => current } });
    expect(rotated.summary).toMatchObject({ outcome: 'completed', delivered: 20 });
    expect(rotated.log.events('api_key_refreshed')).toHaveLength(1);
    expect(h.api.stored.size).toBe(20);
  });

  it('never logs the API key', async () => {
    const env = await freshSync('nokey');
    const end = (await h.dbNow()) - 120;
    await insertCalls(h.db, [makeCall({ end_epoch: end }, 1)]);
    h.api.setValidKeys(['s3cr3t-api-key-value']);
    const { log } = await h.run(env, { keys: staticApiKey('wrong-s3cr3t-key') });
    expect(JSON.stringify(log.entries)).not.toContain('s3cr3t');
  });
});

describe('late dispositions', () => {
  it('parks an INCALL call and delivers it once, as SALE, when the agent submits', async () => {
    const env = await freshSync('incall');
    const end = (await h.dbNow()) - 120;
    await insertCalls(h.db, [
      makeCall({ end_epoch: end, uniqueid: '1700000003.1', status: 'INCALL' }, 1),
      makeCall({ end_epoch: end + 1, uniqueid: '1700000003.2', status: 'NA' }, 2),
    ]);
    const first = await h.run(env);
    expect(first.summary).toMatchObject({ outcome: 'completed', delivered: 1, pending: 1 });
    expect(h.api.deliveredCount('1700000003.1')).toBe(0);

    const still = await h.run(env);
    expect(still.summary).toMatchObject({ delivered: 0, pending: 1 });

    await setStatus(h.db, '1700000003.1', 'SALE');
    const second = await h.run(env);
    expect(second.summary).toMatchObject({ delivered: 1, pending: 0, pendingResolved: 1 });
    await h.run(env);
    expect(h.api.deliveredCount('1700000003.1')).toBe(1);
    expect(h.api.stored.get('1700000003.1')?.disposition).toBe('SALE');
  });

  it('posts a call as it is once it has waited longer than PENDING_MAX_AGE_SECONDS', async () => {
    const env = await freshSync('expired');
    const end = (await h.dbNow()) - 200;
    await insertCalls(h.db, [makeCall({ end_epoch: end, uniqueid: '1700000004.1', status: 'INCALL' }, 1)]);
    const { summary } = await h.run({ ...env, PENDING_MAX_AGE_SECONDS: '3600' });
    expect(summary.pending).toBe(1);
    const late = await h.run({ ...env, PENDING_MAX_AGE_SECONDS: '100' });
    expect(late.summary).toMatchObject({ delivered: 1, pending: 0 });
    expect(late.log.events('pending_expired')).toHaveLength(1);
    expect(h.api.stored.get('1700000004.1')?.disposition).toBe('INCALL');
  });

  it('never holds the cursor back behind a pending call', async () => {
    const env = await freshSync('noholdback');
    const end = (await h.dbNow()) - 120;
    await insertCalls(h.db, [
      makeCall({ end_epoch: end - 50, status: 'INCALL' }, 1),
      makeCall({ end_epoch: end }, 2),
    ]);
    const { summary } = await h.run(env);
    expect(summary.cursor?.endEpoch).toBeGreaterThan(end);
  });
});
