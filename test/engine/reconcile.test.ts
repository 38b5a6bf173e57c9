import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { reconcile } from '../../functions/sync/admin/reconcile';
import { MemorySyncLog } from '../../functions/sync/log';
import { runSync } from '../../functions/sync/run/engine';
import { CheckpointStore } from '../../functions/sync/state/checkpoint-store';
import { createDynamoClient, createSync } from '../../functions/sync/wiring';
import { type LocalMariaDb, startLocalMariaDb } from '../support/local-mariadb';
import { startLossyDynamoProxy } from '../support/lossy-dynamo-proxy';
import { generateCalls, insertCalls, makeCall } from '../support/sample-calls';
import { type Harness, QUICK_RETRIES, startHarness, TEST_KEY } from '../support/sync-harness';

/**
 * Rows that become visible behind the cursor (a lagging clock, an UPDATE held by a lock, a status set
 * late) are found by reconcile, hour by hour, queued, and delivered once by the next run; nothing the
 * sync handled is ever reported.
 */
let h: Harness;

beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'reconcile');
});
afterAll(async () => {
  await h?.close();
});
afterEach(async () => {
  await h.db.query('TRUNCATE vicidial_log');
  h.api.reset();
});

function postedTwice(): number {
  return h.api.calls.length - new Set(h.api.calls.map((c) => c.uniqueid)).size;
}

async function reconcileNow(
  syncId: string,
  since: number,
  repair: boolean,
  extra: Record<string, string> = {},
) {
  const sync = h.createSync({ SYNC_ID: syncId, ...extra });
  const log = new MemorySyncLog();
  const report = await reconcile({ ...sync, log }, { since, repair });
  return { report, log };
}

describe('reconcile', () => {
  it('reports rows that landed behind the cursor exactly, queues them, and the next run delivers each once', async () => {
    const now = await h.dbNow();
    const env = { SYNC_ID: 'late', START_FROM: String(now - 4 * 3600), CAMPAIGNS: 'SALESA,SALESB' };
    await insertCalls(
      h.db,
      generateCalls({ count: 600, fromEpoch: now - 3 * 3600, toEpoch: now - 120, seed: 3 }).map((r) => ({
        ...r,
        campaign_id: r.campaign_id === 'RETENT' ? 'SALESB' : r.campaign_id,
        length_in_sec: Math.min(r.length_in_sec ?? 0, 60),
        start_epoch: (r.end_epoch ?? 0) - Math.min(r.length_in_sec ?? 0, 60),
      })),
    );
    const first = await h.run(env);
    expect(first.summary.outcome).toBe('completed');
    const clean = await reconcileNow('late', now - 4 * 3600, false, { CAMPAIGNS: 'SALESA,SALESB' });
    expect(clean.report.missing).toBe(0);
    expect(clean.report.eligible).toBe(clean.report.delivered + clean.report.deadLettered);
    expect(clean.report.eligible).toBeGreaterThan(300);

    // Behind the cursor: committed ~30 s late, two hours back, a status set late, another campaign.
    const cursor = (await h.store.read('late'))?.cursor.endEpoch as number;
    const late = [
      ...Array.from({ length: 6 }, (_, i) =>
        makeCall({ end_epoch: cursor - 30 - i, length_in_sec: 20 }, 9000 + i),
      ),
      ...Array.from({ length: 4 }, (_, i) =>
        makeCall({ end_epoch: cursor - 7200 - i * 60, length_in_sec: 40 }, 9100 + i),
      ),
      makeCall({ end_epoch: cursor - 600, length_in_sec: 30, status: '' }, 9200),
    ];
    const elsewhere = makeCall({ end_epoch: cursor - 300, length_in_sec: 30, campaign_id: 'RETENT' }, 9300);
    await insertCalls(h.db, [...late, elsewhere]);
    await h.db.query("UPDATE vicidial_log SET status = 'SALE' WHERE uniqueid = ?", [late[10]?.uniqueid]);

    const found = await reconcileNow('late', now - 4 * 3600, true, { CAMPAIGNS: 'SALESA,SALESB' });
    expect(found.report).toMatchObject({ missing: 11, queued: 11 });
    expect([...found.report.missingUniqueids].sort()).toEqual(late.map((c) => c.uniqueid).sort());
    expect(found.log.events('call_missing')).toHaveLength(11);
    expect(found.report.hours.filter((x) => x.missing > 0).length).toBeGreaterThanOrEqual(2);
    expect(found.report.notReached).toEqual([]);
    expect(found.report.rowsRead).toBeLessThan(2000);

    // Queued calls are neither missing nor delivered twice while they wait.
    const again = await reconcileNow('late', now - 4 * 3600, true, { CAMPAIGNS: 'SALESA,SALESB' });
    expect(again.report).toMatchObject({ missing: 0, queued: 11 });

    const before = h.api.calls.length;
    const run = await h.run(env);
    expect(run.summary).toMatchObject({ outcome: 'completed', repaired: 11 });
    expect(h.api.calls.length - before).toBe(11);
    for (const c of late) expect(h.api.deliveredCount(c.uniqueid)).toBe(1);
    expect(h.api.deliveredCount(elsewhere.uniqueid)).toBe(0);
    expect(postedTwice()).toBe(0);

    const after = await reconcileNow('late', now - 4 * 3600, false, { CAMPAIGNS: 'SALESA,SALESB' });
    expect(after.report).toMatchObject({ missing: 0, queued: 0 });
    expect(await h.store.repairs('late')).toEqual([]);
  });

  it('never reports delivered, dead-lettered, pending, parked or queued calls, nor anything before ledgerSince', async () => {
    const now = await h.dbNow();
    const env = { SYNC_ID: 'kinds', START_FROM: String(now - 1800) };
    const delivered = makeCall({ end_epoch: now - 1500 }, 1);
    const rejected = makeCall({ end_epoch: now - 1400, phone_number: null }, 2);
    const pending = makeCall({ end_epoch: now - 1300, status: 'DISPO', length_in_sec: 30 }, 3);
    const parked = makeCall({ end_epoch: now - 1200 }, 4);
    const old = makeCall({ end_epoch: now - 2400 }, 5);
    await insertCalls(h.db, [
      delivered,
      rejected,
      pending,
      parked,
      ...Array.from({ length: 20 }, (_, i) => makeCall({ end_epoch: now - 1100 + i }, 10 + i)),
    ]);
    h.api.failWhen((b) => b.uniqueid === parked.uniqueid, { status: 500 });
    const run = await h.run(env);
    expect(run.summary).toMatchObject({ parked: 1, pending: 1, deadLettered: 1, delivered: 21 });
    // A row from before the ledger started appears late: not the ledger's to report.
    await insertCalls(h.db, [old]);
    const { report } = await reconcileNow('kinds', now - 3 * 3600, false);
    expect(report).toMatchObject({ missing: 0, delivered: 21, deadLettered: 1, parked: 1 });
    expect(report.ledgerSince).toBe(new Date((now - 1800) * 1000).toISOString());
    expect(report.since).toBe(report.ledgerSince);
  });

  it('takes no lease: a run goes on while it reconciles', async () => {
    const now = await h.dbNow();
    await insertCalls(h.db, [makeCall({ end_epoch: now - 600 }, 1)]);
    const env = { SYNC_ID: 'nolease', START_FROM: String(now - 900) };
    await h.run(env);
    const held = await h.store.acquire('nolease', 'a-run', 60_000, { endEpoch: 0, uniqueid: '' });
    expect(held.acquired).toBe(true);
    const { report } = await reconcileNow('nolease', now - 900, true);
    expect(report.missing).toBe(0);
    expect((await h.store.read('nolease'))?.lease?.owner).toBe('a-run');
  });
});

describe('a crash between the ledger write and the checkpoint write', () => {
  it('repeats nothing the ledger recorded', async () => {
    const now = await h.dbNow();
    await insertCalls(
      h.db,
      Array.from({ length: 300 }, (_, i) => makeCall({ end_epoch: now - 900 + Math.floor(i / 3) }, i)),
    );
    const env = { SYNC_ID: 'ledger-crash', START_FROM: String(now - 1000), BATCH_SIZE: '100' };
    // DynamoDB in front of which every checkpoint write fails once the run is under way (a crash right
    // after the ledger write, as far as the table can tell).
    const proxy = await startLossyDynamoProxy(h.dynamo.endpoint);
    // Every write that would move the checkpoint's cursor: advances, and the last one with the release.
    proxy.failWhen(
      (operation, body) =>
        operation === 'UpdateItem' && body.includes('"S":"checkpoint"') && /[ ,]cursorEpoch = :e/.test(body),
    );
    const client = createDynamoClient({
      table: h.table,
      region: 'us-east-1',
      endpoint: proxy.endpoint,
    });
    try {
      const settings = h.settings(env);
      const { staticApiKey } = await import('../../functions/sync/delivery/api-client');
      const { staticCredentials } = await import('../../functions/sync/source/db-connection');
      const { dbSettingsOf } = await import('../support/local-mariadb');
      const { parseConnectionSettings } = await import('../../functions/sync/settings');
      const sync = createSync({
        settings,
        api: { url: h.api.url, allowInsecure: false },
        db: staticCredentials(dbSettingsOf(h.dbUrl)),
        dbConnection: parseConnectionSettings({}),
        keys: staticApiKey(TEST_KEY),
        checkpoints: new CheckpointStore(client, h.table),
        log: new MemorySyncLog(),
      });
      const broken = await runSync({ ...sync, retryPolicy: QUICK_RETRIES }, { owner: 'crashing' });
      await sync.close();
      expect(broken).toMatchObject({ outcome: 'failed', reason: 'checkpoint_error' });
      expect(proxy.failed).toBeGreaterThan(0);
      const postedBefore = new Set(h.api.calls.map((c) => c.uniqueid));
      expect(postedBefore.size).toBeGreaterThan(0);
      // Its lease runs out; the next run starts from the old checkpoint.
      await h.expireLease('ledger-crash');
      const recorded = await h.store.ledger.loadAfter('ledger-crash', now - 1000);
      const { summary } = await h.run(env);
      expect(summary.outcome).toBe('completed');
      expect(h.api.stored.size).toBe(300);
      // Only calls posted after the last ledger write can repeat; none of those the ledger recorded.
      const twice = h.api.calls.length - h.api.stored.size;
      const unrecorded = [...postedBefore].filter((u) => !recorded.has(u)).length;
      expect(twice).toBe(unrecorded);
      expect(summary.skippedAhead).toBe([...postedBefore].filter((u) => recorded.has(u)).length);
    } finally {
      client.destroy();
      await proxy.close();
    }
  });
});

describe('a day reconciled', () => {
  let server: LocalMariaDb | undefined;
  let hh: Harness | undefined;
  beforeAll(async () => {
    if (process.env.TEST_MYSQL_URL) return;
    server = await startLocalMariaDb();
    hh = await startHarness(server.url, 'day');
  }, 120_000);
  afterAll(async () => {
    await hh?.close();
    await server?.stop();
  });

  it('reads rows bounded by the index range over 100,000 rows and stops at its deadline with notReached', async (ctx) => {
    if (!hh) ctx.skip();
    const x = hh as Harness;
    const now = await x.dbNow();
    await insertCalls(
      x.db,
      generateCalls({ count: 100_000, fromEpoch: now - 26 * 3600, toEpoch: now - 60, seed: 24 }).map((r) => ({
        ...r,
        length_in_sec: Math.min(r.length_in_sec ?? 0, 60),
        start_epoch: (r.end_epoch ?? 0) - Math.min(r.length_in_sec ?? 0, 60),
      })),
      { chunkSize: 5000 },
    );
    const env = { SYNC_ID: 'day', START_FROM: String(now - 24 * 3600) };
    // The sync has run all day (its ledger and cursor are there).
    await x.store.acquire('day', 'setup', 1000, { endEpoch: now - 24 * 3600, uniqueid: '' });
    await x.store.reset('day', { endEpoch: now - 24 * 3600, uniqueid: '' }, true);
    await x.store.reset('day', { endEpoch: now - 60, uniqueid: '' }, true);
    const state = await x.store.read('day');
    expect(state?.cursor.endEpoch).toBe(now - 60);
    const sync = x.createSync(env);
    const reads = async () => {
      const [rows] = await x.db.query("SHOW GLOBAL STATUS LIKE 'Handler_read%'");
      return (rows as { Value: string }[]).reduce((n, r) => n + Number(r.Value), 0);
    };
    const before = await reads();
    // ledgerSince was moved by the reset: reconcile the whole day from a store whose ledgerSince is a day back.
    await x.db.query('SELECT 1');
    const since = now - 24 * 3600;
    const client = createDynamoClient({ table: x.table, region: 'us-east-1', endpoint: x.dynamo.endpoint });
    await client.send(
      new UpdateItemCommand({
        TableName: x.table,
        Key: { pk: { S: 'sync#day' }, sk: { S: 'checkpoint' } },
        UpdateExpression: 'SET ledgerSince = :s',
        ExpressionAttributeValues: { ':s': { N: String(since) } },
      }),
    );
    client.destroy();
    const full = await reconcile({ ...sync, log: new MemorySyncLog() }, { since, repair: false });
    const read = (await reads()) - before;
    expect(full.notReached).toEqual([]);
    expect(full.hours.length).toBeGreaterThanOrEqual(24);
    // The day's rows plus the margin before it: about one read per row, not one per hour reconciled.
    const [[count]] = (await x.db.query(
      'SELECT COUNT(*) AS n FROM vicidial_log WHERE call_date >= FROM_UNIXTIME(?)',
      [since - 2 * 3600 - 60],
    )) as unknown as [{ n: number }[]];
    expect(read).toBeLessThan(Number(count?.n) * 1.3);
    expect(full.rowsRead).toBeLessThanOrEqual(Number(count?.n) * 1.05);
    expect(full.missing).toBe(full.eligible);

    const cut = await reconcile(
      { ...sync, log: new MemorySyncLog() },
      { since, repair: false, deadline: Date.now() + 2500 },
    );
    expect(cut.notReached.length).toBeGreaterThan(0);
    expect(cut.hours.length + cut.notReached.length).toBe(full.hours.length);
  }, 120_000);
});

// mysql2 is used by the harness; keep the import for type-only users.
void mysql;
