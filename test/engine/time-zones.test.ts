import mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { insertCalls, makeCall } from '../support/sample-calls';
import { type Harness, startHarness } from '../support/sync-harness';
import { loadTimeZone } from '../support/time-zones';

/**
 * call_date is the writing machine's local time; the sync bounds every read by it. The zone is checked
 * before a run reads anything, and daylight-saving changes (an hour that repeats) lose or double nothing.
 */
let h: Harness;
let hasNewYork = false;

beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'zones');
  hasNewYork = await loadTimeZone(inject('mysqlUrl'), 'America/New_York');
});
afterAll(async () => {
  await h?.close();
});
afterEach(async () => {
  await h.db.query('TRUNCATE vicidial_log');
  h.api.reset();
});

/** Calls written the way a VICIdial whose machine runs in `zone` writes them. */
async function writeAs(zone: string, starts: readonly number[], seq = 0) {
  const writer = await mysql.createConnection({ uri: h.dbUrl, dateStrings: true });
  try {
    await writer.query('SET time_zone = ?', [zone]);
    const rows = starts.map((start, i) =>
      makeCall({ start_epoch: start, end_epoch: start + 45, length_in_sec: 45 }, seq + i),
    );
    await insertCalls(writer, rows, { timeZoneAware: true });
    return rows;
  } finally {
    await writer.end();
  }
}

describe('the database time zone', () => {
  it('stops with the fix named when call_date was written in another zone, and delivers everything once set', async () => {
    const now = await h.dbNow();
    const starts = Array.from({ length: 1200 }, (_, i) => now - 3000 + i * 2);
    await writeAs('+08:00', starts);
    const env = { SYNC_ID: 'zone', START_FROM: String(now - 3300) };

    const wrong = await h.run(env);
    expect(wrong.summary).toMatchObject({ outcome: 'failed', reason: 'time_zone_mismatch', delivered: 0 });
    expect(wrong.summary.detail).toContain('VICIDIAL_DB_TIME_ZONE=+08:00');
    expect(wrong.log.events('time_zone_mismatch')[0]).toMatchObject({ differenceSeconds: 28800 });
    // It stopped before taking the lease or reading a call.
    expect(await h.store.read('zone')).toBeUndefined();
    expect(h.api.requestCount).toBe(0);

    const right = await h.run({ ...env, VICIDIAL_DB_TIME_ZONE: '+08:00' });
    expect(right.summary).toMatchObject({ outcome: 'completed', delivered: 1200 });
    expect(h.api.calls).toHaveLength(1200);
  });

  it('names the missing time-zone tables when a named zone is unknown to the server', async () => {
    const now = await h.dbNow();
    await writeAs('+00:00', [now - 600]);
    const run = h.run({ SYNC_ID: 'zone-unknown', VICIDIAL_DB_TIME_ZONE: 'Mars/Olympus_Mons' });
    await expect(run).rejects.toThrow(
      /VICIDIAL_DB_TIME_ZONE: the database does not know the time zone "Mars\/Olympus_Mons"/,
    );
  });

  it('delivers every call of the hour that the end of daylight saving repeats, once', async (ctx) => {
    if (!hasNewYork) ctx.skip();
    // 2025-11-02 in New York: 01:00-02:00 local happens twice (EDT, then EST), 05:00-07:00 UTC.
    const from = Date.UTC(2025, 10, 2, 4, 0, 0) / 1000;
    const starts = Array.from({ length: 540 }, (_, i) => from + 600 + i * 20);
    await writeAs('America/New_York', starts);
    const [dates] = await h.db.query(
      "SELECT COUNT(*) AS n FROM vicidial_log WHERE call_date >= '2025-11-02 01:00:00' AND call_date < '2025-11-02 02:00:00'",
    );
    // Both passes of the repeated hour are in the table.
    expect(Number((dates as { n: number }[])[0]?.n)).toBe(360);
    // Chunks of 50 rows: several chunk boundaries fall inside the repeated hour.
    const env = {
      SYNC_ID: 'dst',
      START_FROM: String(from),
      VICIDIAL_DB_TIME_ZONE: 'America/New_York',
      BATCH_SIZE: '50',
    };
    const { summary } = await h.run(env);
    expect(summary.outcome).toBe('completed');
    expect(summary.batches).toBeGreaterThan(10);
    expect(h.api.stored.size).toBe(540);
    expect(h.api.calls).toHaveLength(540);
  }, 60_000);
});
