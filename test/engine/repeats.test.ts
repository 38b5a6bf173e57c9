import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { reconcile } from '../../functions/sync/admin/reconcile';
import { resetCheckpoint } from '../../functions/sync/admin/reset';
import { staticApiKey } from '../../functions/sync/delivery/api-client';
import { DEFAULT_RETRY_POLICY } from '../../functions/sync/delivery/retry-policy';
import { MemorySyncLog } from '../../functions/sync/log';
import { type RunSummary, runSync } from '../../functions/sync/run/engine';
import { type Env, parseConnectionSettings } from '../../functions/sync/settings';
import { staticCredentials } from '../../functions/sync/source/db-connection';
import { CheckpointStore } from '../../functions/sync/state/checkpoint-store';
import { createDynamoClient, createSync } from '../../functions/sync/wiring';
import { dbSettingsOf } from '../support/local-mariadb';
import { type LossyDynamoProxy, startLossyDynamoProxy } from '../support/lossy-dynamo-proxy';
import { insertCalls, makeCall } from '../support/sample-calls';
import { type Harness, startHarness, TEST_KEY } from '../support/sync-harness';

/**
 * Never a silent repeat (the real API stores every POST and counts the DID's usage again): one gate
 * before every post, the ledger before the cursor, every possible repeat counted. Each case at the
 * defaults, with DynamoDB failures injected on the wire, and exact counts.
 */
let h: Harness;
let proxy: LossyDynamoProxy;

beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'repeats');
  proxy = await startLossyDynamoProxy(h.dynamo.endpoint);
});
afterAll(async () => {
  await proxy?.close();
  await h?.close();
});
afterEach(async () => {
  proxy.failWhen(null);
  h.api.failWhen(() => false, null);
  h.api.setLatency(0);
  await h.db.query('TRUNCATE vicidial_log');
  h.api.reset();
});

function postedTwice(): number {
  return h.api.calls.length - new Set(h.api.calls.map((c) => c.uniqueid)).size;
}

/** A run whose DynamoDB requests go through the lossy proxy. */
async function runThroughProxy(
  env: Env,
  log = new MemorySyncLog(),
): Promise<{ summary: RunSummary; log: MemorySyncLog }> {
  const client = createDynamoClient({ table: h.table, region: 'us-east-1', endpoint: proxy.endpoint });
  const sync = createSync({
    settings: h.settings(env),
    api: { url: h.api.url, allowInsecure: false },
    db: staticCredentials(dbSettingsOf(h.dbUrl)),
    dbConnection: parseConnectionSettings({}),
    keys: staticApiKey(TEST_KEY),
    checkpoints: new CheckpointStore(client, h.table),
    log,
  });
  try {
    const summary = await runSync(
      { ...sync, log, retryPolicy: DEFAULT_RETRY_POLICY },
      { owner: `p-${Date.now()}` },
    );
    return { summary, log };
  } finally {
    await sync.close();
    client.destroy();
  }
}

/** `n` finished calls ending a few minutes ago, two a second. */
async function calls(n: number, syncId: string, seq = 0) {
  const end = (await h.dbNow()) - 900;
  const rows = Array.from({ length: n }, (_, i) => makeCall({ end_epoch: end + Math.floor(i / 2) }, seq + i));
  await insertCalls(h.db, rows);
  return { env: { SYNC_ID: syncId, START_FROM: String(end - 10) }, rows, end };
}

const isLedgerWrite = (operation: string, body: string) =>
  operation === 'UpdateItem' && body.includes('"S":"ledger#');

describe('the ledger before the cursor (R2)', () => {
  it('a ledger write failing on every SDK attempt is written again: nothing repeated', async () => {
    const { env } = await calls(800, 'ledger-once');
    // One request fails on every attempt the SDK makes (the client's own retries included), then
    // DynamoDB is well again.
    const log = new MemorySyncLog();
    proxy.failWhen((op, body) => isLedgerWrite(op, body) && log.events('ledger_write_failed').length === 0);
    const first = await runThroughProxy(env, log);
    expect(first.log.events('ledger_write_failed')).toHaveLength(1);
    expect(first.summary).toMatchObject({ outcome: 'completed', delivered: 800, unrecorded: 0 });
    const second = await h.run(env);
    expect(second.summary).toMatchObject({ outcome: 'completed', delivered: 0 });
    expect(h.api.stored.size).toBe(800);
    expect(postedTwice()).toBe(0);
  });

  it('a ledger that cannot be written stops the run behind its calls: exactly BATCH_SIZE repeat (the crash bound)', async () => {
    const { env } = await calls(800, 'ledger-down');
    proxy.failWhen(isLedgerWrite);
    const broken = await runThroughProxy(env);
    // R6: posts stop when a batch of calls is posted but not recorded; the cursor never passes them.
    expect(broken.summary).toMatchObject({
      outcome: 'failed',
      reason: 'checkpoint_error',
      delivered: 500,
      unrecorded: 500,
    });
    expect(broken.log.events('calls_unrecorded')[0]).toMatchObject({ calls: 500 });
    expect((await h.store.read('ledger-down'))?.cursor.endEpoch).toBe(Number(env.START_FROM));
    proxy.failWhen(null);
    const next = await h.run(env);
    expect(next.summary).toMatchObject({ outcome: 'completed', delivered: 800 });
    expect(h.api.stored.size).toBe(800);
    expect(postedTwice()).toBe(500);
  });
});

describe('one gate before every post (R3)', () => {
  it('a repair whose delete fails is not posted again: the next run finds it in the ledger', async () => {
    const { env, rows, end } = await calls(50, 'repair-delete');
    const late = rows[10] as (typeof rows)[number];
    // A row that lands behind the cursor after the run: reconcile queues it.
    await h.db.query('UPDATE vicidial_log SET status = ? WHERE uniqueid = ?', ['INCALL', late.uniqueid]);
    await h.run(env);
    await h.db.query('UPDATE vicidial_log SET status = ? WHERE uniqueid = ?', ['SALE', late.uniqueid]);
    const sync = h.createSync(env);
    const found = await reconcile({ ...sync, log: new MemorySyncLog() }, { since: end - 10, repair: true });
    // Followed calls are not missing; a call dispositioned after it was followed is posted by the runs.
    expect(found.missing).toBe(0);
    await h.store.putRepair(
      'repair-delete',
      { uniqueid: rows[20]?.uniqueid as string, endEpoch: end + 10 },
      0,
    );
    proxy.failWhen((op, body) => op === 'DeleteItem' && body.includes('repair#'));
    const first = await runThroughProxy(env);
    expect(first.log.events('repair_delete_failed').length).toBeGreaterThan(0);
    proxy.failWhen(null);
    const second = await h.run(env);
    expect(second.summary.repaired).toBe(0);
    expect(await h.store.repairs('repair-delete')).toEqual([]);
    expect(postedTwice()).toBe(0);
    expect(h.api.stored.get(late.uniqueid)?.disposition).toBe('SALE');
  });

  it('a backward reset while a repair is queued posts the call once', async () => {
    const { env, rows, end } = await calls(40, 'reset-repair');
    const missing = rows[5] as (typeof rows)[number];
    await h.db.query('UPDATE vicidial_log SET status = ? WHERE uniqueid = ?', ['NEW', missing.uniqueid]);
    // NEW is final but the call "lands" later: modelled by inserting it after the run.
    await h.db.query('DELETE FROM vicidial_log WHERE uniqueid = ?', [missing.uniqueid]);
    await h.run(env);
    await insertCalls(h.db, [missing]);
    const sync = h.createSync(env);
    const found = await reconcile({ ...sync, log: new MemorySyncLog() }, { since: end - 10, repair: true });
    expect(found.missing).toBe(1);
    await resetCheckpoint(
      h.store,
      sync.calls,
      'reset-repair',
      end - 10,
      { force: false, withoutDatabase: false },
      new MemorySyncLog(),
      sync.settings,
    );
    const { summary } = await h.run(env);
    expect(summary.delivered).toBe(1);
    expect(h.api.deliveredCount(missing.uniqueid)).toBe(1);
    expect(postedTwice()).toBe(0);
  });

  it('a followed call the ledger already holds (a crash between the two writes) is let go, not posted', async () => {
    const { env, rows } = await calls(20, 'crash-followed');
    await h.run(env);
    const held = rows[3] as (typeof rows)[number];
    // The state a crash leaves: the ledger has the call, the checkpoint still follows it.
    const state = await h.store.acquire('crash-followed', 'crashed', 1, { endEpoch: 0, uniqueid: '' });
    if (!state.acquired) throw new Error('expected the lease');
    await h.store.advance(
      state.lease,
      state.state.cursor,
      state.state.cursor,
      {
        pending: [{ uniqueid: held.uniqueid, endEpoch: Number(held.end_epoch), firstSeen: 0 }],
        parked: [],
        frontier: 0,
      },
      1,
    );
    await h.expireLease('crash-followed');
    const { summary, log } = await h.run(env);
    expect(summary).toMatchObject({ delivered: 0, pending: 0, skippedAhead: 1 });
    expect(log.events('call_skipped')).toMatchObject([{ uniqueid: held.uniqueid, source: 'pending' }]);
    expect(postedTwice()).toBe(0);
  });

  it('a repair queued for a call a run delivered meanwhile (overlapping reconciles) is not posted', async () => {
    const { env, rows, end } = await calls(20, 'overlap');
    await h.run(env);
    await h.store.putRepair('overlap', { uniqueid: rows[7]?.uniqueid as string, endEpoch: end + 3 }, 0);
    const { summary } = await h.run(env);
    expect(summary).toMatchObject({ delivered: 0, repaired: 0 });
    expect(await h.store.repairs('overlap')).toEqual([]);
    expect(postedTwice()).toBe(0);
  });

  it('a dead letter the ledger records as delivered is not replayed', async () => {
    const { env, rows } = await calls(5, 'replay-gate');
    await h.run(env);
    const { replayDeadLetters } = await import('../../functions/sync/admin/dead-letters');
    const call = rows[2] as (typeof rows)[number];
    await h.store.putDeadLetter({
      syncId: 'replay-gate',
      uniqueid: call.uniqueid,
      reason: 'rejected by the API: HTTP 422',
      httpStatus: 422,
      responseExcerpt: null,
      payload: null,
      endEpoch: Number(call.end_epoch),
      campaignId: 'SALESA',
      createdAt: new Date().toISOString(),
      attempts: 1,
      expiresAt: null,
    });
    const replay = await replayDeadLetters(h.createSync(env), { owner: 'replayer' });
    expect(replay).toMatchObject({ delivered: 0, alreadyDelivered: 1 });
    expect(postedTwice()).toBe(0);
  });
});

describe('every possible repeat is counted (R5), every run ends on time (R4)', () => {
  it('a request the deadline cuts after the API stored it is counted ambiguous, and is the only repeat', async () => {
    const { env, rows } = await calls(30, 'deadline-cut');
    const slow = rows[12]?.uniqueid as string;
    h.api.failWhen((b) => b.uniqueid === slow, { storeThenWaitMs: 5_000 });
    const first = await h.run(env, { deadline: Date.now() + 2_500 });
    expect(first.summary).toMatchObject({ ambiguous: 1 });
    expect(first.log.events('call_ambiguous')).toMatchObject([{ uniqueid: slow }]);
    h.api.failWhen(() => false, null);
    await h.run(env);
    expect(h.api.stored.size).toBe(30);
    expect(postedTwice()).toBe(1);
    expect(postedTwice()).toBeLessThanOrEqual(first.summary.ambiguous);
  });

  it('a prefix held by a failing call, with a batch resolved ahead by a crashed run, parks it and goes on', async () => {
    const { env, rows } = await calls(600, 'stalled');
    const stuck = rows[0]?.uniqueid as string;
    // A crashed run delivered 510 calls after the first one: the ledger has them, the cursor does not.
    await h.run({ ...env, SYNC_ID: 'stalled' }, { maxBatches: 0 });
    await h.store.ledger.record(
      'stalled',
      rows.slice(1, 511).map((r) => ({ uniqueid: r.uniqueid, endEpoch: Number(r.end_epoch) })),
      { ledgerDays: 8 },
    );
    h.api.failWhen((b) => b.uniqueid === stuck, { status: 503 });
    const started = Date.now();
    const { summary } = await h.run(env, {
      deadline: Date.now() + 10_000,
      retryPolicy: DEFAULT_RETRY_POLICY,
    });
    expect(Date.now() - started).toBeLessThan(12_000);
    expect(summary).toMatchObject({ delivered: 89, parkedNew: 1, skippedAhead: 510 });
    expect(postedTwice()).toBe(0);
  }, 30_000);
});

describe("VICIdial's duplicate-row cleanup", () => {
  it('posts only the survivor of two twins, and reconcile reports neither missing', async () => {
    const end = (await h.dbNow()) - 600;
    const survivor = makeCall({
      uniqueid: `${end - 100}.5001`,
      lead_id: 777,
      start_epoch: end - 100,
      end_epoch: end,
      length_in_sec: 100,
    });
    const twin = makeCall({
      uniqueid: `${end - 100}.5002`,
      lead_id: 777,
      start_epoch: end - 99,
      end_epoch: end,
      length_in_sec: 99,
    });
    await insertCalls(h.db, [twin, survivor, makeCall({ end_epoch: end }, 1)]);
    const env = { SYNC_ID: 'twins', START_FROM: String(end - 10) };
    const { summary, log } = await h.run(env);
    expect(summary.delivered).toBe(2);
    expect(h.api.deliveredCount(survivor.uniqueid)).toBe(1);
    expect(h.api.deliveredCount(twin.uniqueid)).toBe(0);
    expect(log.events('duplicate_row_skipped')).toMatchObject([
      { uniqueid: twin.uniqueid, survivor: survivor.uniqueid },
    ]);
    const sync = h.createSync(env);
    const before = await reconcile({ ...sync, log: new MemorySyncLog() }, { since: end - 10, repair: false });
    expect(before).toMatchObject({ eligible: 3, missing: 0 });
    // The cleanup deletes the twin; nothing changes for the sync.
    await h.db.query('DELETE FROM vicidial_log WHERE uniqueid = ?', [twin.uniqueid]);
    expect((await h.run(env)).summary.delivered).toBe(0);
    expect(postedTwice()).toBe(0);
  });

  it('lets go of a followed twin the cleanup deleted, without a dead letter', async () => {
    const now = await h.dbNow();
    const a = makeCall({
      uniqueid: `${now - 900}.6001`,
      lead_id: 888,
      start_epoch: now - 900,
      end_epoch: now - 700,
      length_in_sec: 200,
      status: 'DISPO',
    });
    const b = makeCall({
      uniqueid: `${now - 900}.6002`,
      lead_id: 888,
      start_epoch: now - 899,
      end_epoch: now - 700,
      length_in_sec: 199,
      status: 'DISPO',
    });
    await insertCalls(h.db, [a, b]);
    const env = { SYNC_ID: 'twins-followed', START_FROM: String(now - 1000) };
    const first = await h.run(env);
    expect(first.summary.pending).toBe(2);
    await h.db.query('DELETE FROM vicidial_log WHERE uniqueid = ?', [b.uniqueid]);
    await h.db.query("UPDATE vicidial_log SET status = 'SALE' WHERE uniqueid = ?", [a.uniqueid]);
    const second = await h.run(env);
    expect(second.log.events('followed_duplicate_removed')).toMatchObject([
      { uniqueid: b.uniqueid, twin: a.uniqueid },
    ]);
    expect(second.summary).toMatchObject({ delivered: 1, deadLettered: 0, pending: 0 });
    expect(await h.store.countDeadLetters('twins-followed')).toBe(0);
  });
});

describe('reconcile and a call whose end moved after it was sent', () => {
  it('finds it under the minute it was recorded, in another hour: not missing, not repaired', async () => {
    const now = await h.dbNow();
    const hourStart = Math.floor((now - 7200) / 3600) * 3600;
    const sent = makeCall({ start_epoch: hourStart - 300, end_epoch: hourStart - 30, length_in_sec: 270 });
    await insertCalls(h.db, [sent]);
    const env = { SYNC_ID: 'moved-end', START_FROM: String(hourStart - 600) };
    await h.run(env);
    expect(h.api.deliveredCount(sent.uniqueid)).toBe(1);
    // The end moves into the next hour (an end overwritten later from another clock).
    await h.db.query('UPDATE vicidial_log SET end_epoch = ?, length_in_sec = ? WHERE uniqueid = ?', [
      hourStart + 40,
      340,
      sent.uniqueid,
    ]);
    const sync = h.createSync(env);
    const report = await reconcile(
      { ...sync, log: new MemorySyncLog() },
      { since: hourStart - 600, repair: true },
    );
    expect(report).toMatchObject({ eligible: 1, delivered: 1, missing: 0 });
    await h.run(env);
    expect(postedTwice()).toBe(0);
  });
});
