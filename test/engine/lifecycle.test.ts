import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import type mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDynamoClient } from '../../functions/sync/wiring';
import { type LocalMariaDb, startLocalMariaDb } from '../support/local-mariadb';
import { generateCalls, insertCalls, makeCall, type VicidialLogRow } from '../support/sample-calls';
import { type Harness, startHarness } from '../support/sync-harness';

/**
 * Calls written the way VICIdial writes them (domain-facts.md): agent calls inserted at answer or
 * connect (QUEUE / INCALL, no end or end = start, length 0), updated at hangup (end, DISPO), and given
 * their disposition later; auto-dial outcomes inserted complete. Each reaches the API once, with its
 * final status, however long it lasted.
 */
let h: Harness;

beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'lifecycle');
});
afterAll(async () => {
  await h?.close();
});
afterEach(async () => {
  await h.db.query('TRUNCATE vicidial_log');
  h.api.reset();
});

/** An agent call as VICIdial inserts it when it connects: INCALL, length 0, end_epoch = start_epoch. */
function connected(
  start: number,
  seq: number,
  overrides: Partial<Omit<VicidialLogRow, 'end_epoch'>> = {},
): VicidialLogRow {
  // end_epoch = start_epoch at connect
  return makeCall(
    { start_epoch: start, end_epoch: start, length_in_sec: 0, status: 'INCALL', ...overrides },
    seq,
  );
}

async function update(uniqueid: string, set: Record<string, unknown>) {
  const columns = Object.keys(set);
  await h.db.query(
    `UPDATE vicidial_log SET ${columns.map((c) => `\`${c}\` = ?`).join(', ')} WHERE uniqueid = ?`,
    [...columns.map((c) => set[c]), uniqueid],
  );
}

/** Finished calls ending after the sync's cursor, so each run has something new, as minutes pass. */
async function traffic(syncId: string, n: number, seq: number) {
  const cursor = (await h.store.read(syncId))?.cursor.endEpoch ?? (await h.dbNow()) - 600;
  const now = await h.dbNow();
  const end = Math.min(Math.max(cursor, now - 60), now - 31);
  await insertCalls(
    h.db,
    Array.from({ length: n }, (_, i) => makeCall({ end_epoch: end, length_in_sec: 30 }, seq + i)),
  );
}

describe('calls of any length', () => {
  it.each([
    ['3 hours', 3 * 3600],
    ['9 hours', 9 * 3600],
  ])(
    'delivers a call inserted at connect and finished %s later, once, with its final status',
    async (_, seconds) => {
      const syncId = `long-${seconds}`;
      const now = await h.dbNow();
      const start = now - seconds;
      const call = connected(start, 1);
      // The sync was running when the call connected: it starts a little before.
      const env = { SYNC_ID: syncId, START_FROM: String(start - 60) };
      await insertCalls(h.db, [call]);
      const first = await h.run(env);
      expect(first.summary).toMatchObject({ outcome: 'completed', delivered: 0, pending: 1 });
      // Hours of other calls pass by the cursor while it goes on.
      await insertCalls(
        h.db,
        generateCalls({ count: 400, fromEpoch: start + 60, toEpoch: now - 120, seed: seconds }).map((r) => ({
          ...r,
          length_in_sec: Math.min(r.length_in_sec ?? 0, 60),
          start_epoch: (r.end_epoch ?? 0) - Math.min(r.length_in_sec ?? 0, 60),
        })),
      );
      const during = await h.run(env);
      expect(during.summary).toMatchObject({ pending: 1 });
      expect(h.api.deliveredCount(call.uniqueid)).toBe(0);
      // The agent hangs up and submits SALE.
      await update(call.uniqueid, { end_epoch: now - 90, length_in_sec: now - 90 - start, status: 'SALE' });
      const after = await h.run(env);
      expect(after.summary.pending).toBe(0);
      expect(h.api.deliveredCount(call.uniqueid)).toBe(1);
      expect(h.api.stored.get(call.uniqueid)).toMatchObject({
        disposition: 'SALE',
        duration: now - 90 - start,
      });
      await h.run(env);
      expect(h.api.deliveredCount(call.uniqueid)).toBe(1);
      expect(h.api.calls.length).toBe(new Set(h.api.calls.map((c) => c.uniqueid)).size);
    },
  );
});

describe('a run that stops while a long call settles', () => {
  it('follows the call instead of holding the cursor at its start, and the next run posts it once', async () => {
    const syncId = 'settling-long';
    const now = await h.dbNow();
    const env = { SYNC_ID: syncId, START_FROM: String(now - 1200) };
    // Ten minutes on the phone, hung up and dispositioned 10 s ago: within SETTLE_SECONDS (30).
    const long = makeCall({ end_epoch: now - 10, length_in_sec: 600, status: 'SALE' }, 60);
    // Short calls up to the settle bound: the run's candidate cursor goes there.
    const short = Array.from({ length: 20 }, (_, i) => makeCall({ end_epoch: now - 200 + i * 8 }, 61 + i));
    await insertCalls(h.db, [long, ...short]);
    const first = await h.run(env);
    expect(first.summary).toMatchObject({ outcome: 'completed', delivered: 20, pending: 1 });
    // Not held where the call started (+ LOOKBACK_SECONDS, ~8 minutes back): every next run would
    // read those minutes again.
    const cursor = (await h.store.read(syncId))?.cursor.endEpoch ?? 0;
    expect(cursor).toBeGreaterThanOrEqual(now - 40);
    expect(h.api.deliveredCount(long.uniqueid)).toBe(0);
    // A minute later: the call has settled.
    await update(long.uniqueid, { end_epoch: now - 70, start_epoch: now - 670 });
    const second = await h.run(env);
    expect(second.summary).toMatchObject({ pending: 0, pendingResolved: 1 });
    await h.run(env);
    expect(h.api.deliveredCount(long.uniqueid)).toBe(1);
    expect(h.api.stored.get(long.uniqueid)).toMatchObject({ disposition: 'SALE', duration: 600 });
    // Every call posted by the runs themselves (no reconcile ran), none twice.
    expect(h.api.calls).toHaveLength(21);
    expect(h.api.duplicates()).toBe(0);
  });
});

describe('in-between states', () => {
  it('sends an agent call once, as SALE, after QUEUE, INCALL, DISPO and the disposition minutes later', async () => {
    const now = await h.dbNow();
    const env = { SYNC_ID: 'states', START_FROM: String(now - 900) };
    // Answered by the dialer: QUEUE, no end, no length.
    const call = makeCall(
      { start_epoch: now - 700, end_epoch: now - 700, length_in_sec: null, status: 'QUEUE' },
      10,
    );
    await insertCalls(h.db, [call]);
    await update(call.uniqueid, { end_epoch: null });
    let seq = 100;
    const step = async (set: Record<string, unknown> | null) => {
      if (set) await update(call.uniqueid, set);
      seq += 10;
      await traffic('states', 5, seq);
      return (await h.run(env)).summary;
    };
    expect(await step(null)).toMatchObject({ pending: 1 });
    // An agent takes it.
    expect(await step({ status: 'INCALL' })).toMatchObject({ pending: 1 });
    // The customer hangs up: the dialer stamps an end; the agent's hangup overwrites it with its own.
    expect(await step({ end_epoch: now - 500, length_in_sec: 200 })).toMatchObject({ pending: 1 });
    expect(await step({ end_epoch: now - 480, length_in_sec: 220, status: 'DISPO' })).toMatchObject({
      pending: 1,
    });
    expect(h.api.deliveredCount(call.uniqueid)).toBe(0);
    // The agent submits the disposition screen.
    const done = await step({ status: 'SALE' });
    expect(done.pending).toBe(0);
    expect(h.api.deliveredCount(call.uniqueid)).toBe(1);
    expect(h.api.stored.get(call.uniqueid)).toMatchObject({
      disposition: 'SALE',
      endEpoch: now - 480,
      duration: 220,
    });
    await step(null);
    expect(h.api.deliveredCount(call.uniqueid)).toBe(1);
  });

  it('sends a call left in DISPO as it is after PENDING_MAX_AGE_SECONDS, as pending_expired', async () => {
    const now = await h.dbNow();
    const env = { SYNC_ID: 'dispo-forever', START_FROM: String(now - 900), PENDING_MAX_AGE_SECONDS: '300' };
    const call = makeCall({ end_epoch: now - 600, length_in_sec: 60, status: 'DISPO' }, 20);
    await insertCalls(h.db, [call]);
    const { summary, log } = await h.run(env);
    // Already older than the limit when seen: followed once, then sent as it is by the next run.
    expect(summary.pending).toBe(1);
    const next = await h.run(env);
    expect(next.summary).toMatchObject({ pending: 0, delivered: 1 });
    expect(next.log.events('pending_expired')).toHaveLength(1);
    expect(h.api.stored.get(call.uniqueid)?.disposition).toBe('DISPO');
    expect(log.events('pending')).toHaveLength(1);
  });

  it('delivers auto-dial outcomes inserted complete at their end', async () => {
    const now = await h.dbNow();
    const env = { SYNC_ID: 'auto', START_FROM: String(now - 600) };
    // An answering machine: end = now + 3, length 3, written complete.
    const machine = makeCall({ end_epoch: now - 100, length_in_sec: 3, status: 'A', user: 'VDAD' }, 30);
    await insertCalls(h.db, [machine]);
    const { summary } = await h.run(env);
    expect(summary).toMatchObject({ delivered: 1, pending: 0 });
    expect(h.api.stored.get(machine.uniqueid)?.disposition).toBe('A');
  });
});

describe('the open set', () => {
  it('survives restarts, and past PENDING_MAX holds the cursor before a call it cannot follow', async () => {
    const now = await h.dbNow();
    const env = { SYNC_ID: 'cap', START_FROM: String(now - 900), PENDING_MAX: '3' };
    const live = Array.from({ length: 3 }, (_, i) => connected(now - 700 + i, 40 + i));
    const withEnd = makeCall({ end_epoch: now - 650, length_in_sec: 40, status: 'DISPO' }, 50);
    await insertCalls(h.db, [...live, withEnd]);
    const first = await h.run(env);
    // R1: the DISPO call cannot be followed, so the cursor stays before it and the run says why.
    expect(first.summary).toMatchObject({
      outcome: 'failed',
      reason: 'pending_full',
      pending: 3,
      delivered: 0,
    });
    expect(first.log.events('pending_full')).toHaveLength(1);
    expect(first.summary.cursor?.endEpoch).toBeLessThanOrEqual(Number(withEnd.end_epoch) - 8);
    expect(h.api.stored.has(withEnd.uniqueid)).toBe(false);
    // A new process (a restart, a cold Lambda) reads the same followed calls from the checkpoint.
    const state = await h.store.read('cap');
    expect(state?.pending.map((p) => p.uniqueid).sort()).toEqual(live.map((c) => c.uniqueid).sort());
    for (const c of live)
      await update(c.uniqueid, { end_epoch: now - 200, length_in_sec: 500, status: 'NI' });
    const second = await h.run(env);
    // Room again: the three are delivered, and the DISPO call is followed until its disposition comes.
    expect(second.summary).toMatchObject({
      outcome: 'completed',
      pending: 1,
      delivered: 3,
      pendingResolved: 3,
    });
    expect((await h.store.read('cap'))?.pending.map((p) => p.uniqueid)).toEqual([withEnd.uniqueid]);
    await update(withEnd.uniqueid, { status: 'SALE' });
    const third = await h.run(env);
    expect(third.summary).toMatchObject({ outcome: 'completed', pending: 0, delivered: 1 });
    expect(h.api.stored.get(withEnd.uniqueid)?.disposition).toBe('SALE');
    expect(h.api.calls).toHaveLength(4);
  });
});

describe('a thousand followed calls', () => {
  it('live in items of their own: the checkpoint item stays small and a write costs by what changed', async () => {
    const now = await h.dbNow();
    const env = { SYNC_ID: 'many', START_FROM: String(now - 1800) };
    const live = Array.from({ length: 1200 }, (_, i) => connected(now - 1500 + Math.floor(i / 2), 5000 + i));
    await insertCalls(h.db, live);
    const first = await h.run(env);
    expect(first.summary).toMatchObject({ pending: 1200, delivered: 0 });
    const client = createDynamoClient({ table: h.table, region: 'us-east-1', endpoint: h.dynamo.endpoint });
    const raw = async () =>
      (
        await client.send(
          new GetItemCommand({
            TableName: h.table,
            Key: { pk: { S: 'sync#many' }, sk: { S: 'checkpoint' } },
          }),
        )
      ).Item;
    // ~45 B a call in the item itself would be ~54 KB: 54 write units for every checkpoint write.
    expect(JSON.stringify(await raw()).length).toBeLessThan(2_000);
    // A restart (a new process) reads the same set back.
    expect((await h.store.read('many'))?.pending).toHaveLength(1200);
    for (const c of live.slice(0, 100))
      await update(c.uniqueid, { end_epoch: now - 100, length_in_sec: 900, status: 'SALE' });
    const second = await h.run(env);
    expect(second.summary).toMatchObject({ pending: 1100, delivered: 100, pendingResolved: 100 });
    const state = await h.store.read('many');
    expect(state?.pending).toHaveLength(1100);
    // The write named one more item (a delta of 100 calls), not the 1,100 again.
    expect(state?.followedLog.items.length).toBe(2);
    expect(JSON.stringify(await raw()).length).toBeLessThan(2_000);
    expect(h.api.calls).toHaveLength(100);
  });
});

describe('rows read per call', () => {
  // A server of its own: its global Handler_read counters see only this test's queries.
  let server: LocalMariaDb | undefined;
  let hh: Harness | undefined;

  beforeAll(async () => {
    if (process.env.TEST_MYSQL_URL) return;
    server = await startLocalMariaDb();
    hh = await startHarness(server.url, 'reads');
  }, 120_000);
  afterAll(async () => {
    await hh?.close();
    await server?.stop();
  });

  async function handlerReads(conn: mysql.Pool): Promise<number> {
    const [rows] = await conn.query("SHOW GLOBAL STATUS LIKE 'Handler_read%'");
    return (rows as { Value: string }[]).reduce((n, r) => n + Number(r.Value), 0);
  }

  async function caughtUpRun(historyHours: number, perMinute: number, syncId: string) {
    const x = hh as Harness;
    await x.db.query('TRUNCATE vicidial_log');
    const now = await x.dbNow();
    // History, then the last few minutes: a run two minutes (plus SETTLE_SECONDS) behind the newest.
    const rows = generateCalls({
      count: Math.round(historyHours * 60 * perMinute),
      fromEpoch: now - historyHours * 3600,
      toEpoch: now - 35,
      seed: historyHours * 1000 + perMinute,
      tiesPerSecond: Math.max(1, perMinute / 60),
    });
    await insertCalls(x.db, rows, { chunkSize: 5000 });
    const before = await handlerReads(x.db);
    // START_LOOKBACK_SECONDS 0: this measures what a caught-up scan reads; a new sync's one-time start-up
    // read of the 12 hours before its start point is not that (the bench reports it).
    const { summary } = await x.run({
      SYNC_ID: syncId,
      START_FROM: String(now - 150),
      SETTLE_SECONDS: '30',
      START_LOOKBACK_SECONDS: '0',
    });
    const read = (await handlerReads(x.db)) - before;
    return { read, delivered: summary.delivered, perCall: read / Math.max(1, summary.delivered) };
  }

  it('stays under 10 per delivered call and does not grow with the hours of history', async (ctx) => {
    if (!hh) ctx.skip();
    const results = [];
    for (const [hours, rate] of [
      [1, 100],
      [6, 100],
      [1, 400],
      [4, 400],
    ] as const) {
      results.push({ hours, rate, ...(await caughtUpRun(hours, rate, `reads-${hours}-${rate}`)) });
    }
    for (const r of results) {
      expect(r.delivered).toBeGreaterThan(r.rate);
      expect(r.perCall).toBeLessThanOrEqual(10);
    }
    const [short100, long100, short400, long400] = results;
    // Six times the history, the same reads (within noise: the run's own bookkeeping queries).
    expect(long100?.read ?? 0).toBeLessThan((short100?.read ?? 0) * 1.5);
    expect(long400?.read ?? 0).toBeLessThan((short400?.read ?? 0) * 1.5);
  }, 120_000);
});
