import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { measureTimeZone } from '../functions/sync/source/time-zone-check';
import type { SqlClient } from '../functions/sync/source/vicidial-log';
import { createVicidialDatabase } from './support/local-mariadb';
import { insertCalls, makeCall } from './support/sample-calls';
import { loadTimeZone } from './support/time-zones';

/**
 * measureTimeZone on a real MariaDB. VICIdial's writers never set the session zone, so call_date is
 * FROM_UNIXTIME(start_epoch) in the writer's zone: the tests insert through a connection set to the
 * writer's zone and measure through one set to the reader's.
 */
let dbUrl: string;
let dbName: string;
let root: mysql.Connection;
let hasNewYork = false;
const open: mysql.Connection[] = [];

async function session(timeZone: string | null): Promise<mysql.Connection> {
  const conn = await mysql.createConnection({ uri: dbUrl, dateStrings: true });
  if (timeZone) await conn.query('SET time_zone = ?', [timeZone]);
  open.push(conn);
  return conn;
}

function client(conn: mysql.Connection): SqlClient {
  return {
    query: async <T>(sql: string, values: readonly unknown[]) =>
      (await conn.query(sql, values as unknown[]))[0] as T[],
  };
}

/** Calls written by a VICIdial whose machine runs in `writerZone`, starting at the given epochs. */
async function writeCalls(writerZone: string, starts: readonly number[], seq = 0): Promise<void> {
  const writer = await session(writerZone);
  await insertCalls(
    writer,
    starts.map((start, i) => makeCall({ start_epoch: start, end_epoch: start + 30 }, seq + i)),
    { timeZoneAware: true },
  );
}

async function recent(n: number): Promise<number[]> {
  const [rows] = await root.query('SELECT UNIX_TIMESTAMP() AS now');
  const now = Number((rows as { now: number }[])[0]?.now);
  return Array.from({ length: n }, (_, i) => now - 600 - i * 37);
}

beforeAll(async () => {
  dbName = `asterisk_tz_${randomBytes(4).toString('hex')}`;
  dbUrl = await createVicidialDatabase(inject('mysqlUrl'), dbName);
  root = await mysql.createConnection({ uri: dbUrl });
  hasNewYork = await loadTimeZone(inject('mysqlUrl'), 'America/New_York');
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.end()));
  await root.query('TRUNCATE vicidial_log');
});
afterAll(async () => {
  await root?.query(`DROP DATABASE IF EXISTS \`${dbName}\``);
  await root?.end();
});

describe('measureTimeZone', () => {
  it('is unknown on an empty table', async () => {
    const report = await measureTimeZone(client(await session('+00:00')));
    expect(report).toMatchObject({ status: 'unknown', rowsUsed: 0, sessionTimeZone: '+00:00' });
  });

  it('agrees when the session reads in the zone VICIdial wrote in', async () => {
    await writeCalls('+08:00', await recent(40));
    const report = await measureTimeZone(client(await session('+08:00')));
    expect(report).toMatchObject({
      status: 'ok',
      sessionTimeZone: '+08:00',
      sessionOffset: '+08:00',
      differenceSeconds: 0,
      rowsUsed: 40,
    });
  });

  it('finds call_date written at +08:00 and read in UTC 28800 s ahead, and names +08:00', async () => {
    await writeCalls('+08:00', await recent(30));
    const report = await measureTimeZone(client(await session('+00:00')));
    // +28800, not -28800: UNIX_TIMESTAMP reads the +08:00 wall clock as UTC, 8 h after start_epoch.
    expect(report).toMatchObject({
      status: 'mismatch',
      sessionTimeZone: '+00:00',
      differenceSeconds: 28800,
      difference: '+08:00',
      suggestedTimeZone: '+08:00',
      rowsUsed: 30,
    });
    expect(report.message).toContain('VICIDIAL_DB_TIME_ZONE=+08:00');
  });

  it('handles call_date before start_epoch (a writer west of the session) without unsigned overflow', async () => {
    await writeCalls('-05:00', await recent(12));
    const report = await measureTimeZone(client(await session('+00:00')));
    expect(report).toMatchObject({
      status: 'mismatch',
      differenceSeconds: -18000,
      suggestedTimeZone: '-05:00',
    });
  });

  it('reads only the ~100 most recent rows, through the call_date index', async () => {
    await writeCalls('+00:00', await recent(150));
    const reader = await session('+00:00');
    await reader.query('FLUSH STATUS');
    const report = await measureTimeZone(client(reader));
    expect(report.rowsUsed).toBe(100);
    const [status] = await reader.query("SHOW SESSION STATUS LIKE 'Handler_read_rnd_next'");
    // A scan would show about 150 here; the index read shows none.
    expect(Number((status as { Value: string }[])[0]?.Value)).toBe(0);
  });

  it('ignores calls older than a week', async () => {
    const [rows] = await root.query('SELECT UNIX_TIMESTAMP() AS now');
    const now = Number((rows as { now: number }[])[0]?.now);
    await writeCalls('+08:00', [now - 8 * 86400, now - 9 * 86400]);
    expect((await measureTimeZone(client(await session('+00:00')))).status).toBe('unknown');
  });

  it('names the system zone when the session zone is SYSTEM', async () => {
    const report = await measureTimeZone(client(await session(null)));
    expect(report.sessionTimeZone).toBe('SYSTEM');
    expect(report.systemTimeZone).toEqual(expect.any(String));
  });

  it('leaves out calls in the hour that the end of daylight saving repeats', async (ctx) => {
    if (!hasNewYork) ctx.skip();
    // 2025-11-02 06:00Z: New York goes from 02:00 EDT back to 01:00 EST, so 01:00-01:59 happens twice.
    const fallBack = 1762063200;
    const repeated = Array.from({ length: 60 }, (_, i) => fallBack + i * 60); // the second 01:xx
    const normal = Array.from({ length: 30 }, (_, i) => fallBack + 7 * 86400 + i * 600);
    await writeCalls('America/New_York', [...repeated, ...normal]);
    const reader = client(await session('America/New_York'));
    const report = await measureTimeZone(reader, { recentSeconds: 10 * 365 * 86400 });
    // Without the exclusion most rows would read an hour off and the median would call a mismatch.
    expect(report).toMatchObject({ status: 'ok', differenceSeconds: 0, rowsUsed: 30, rowsExcluded: 60 });

    // Read in UTC, the same calls show New York's winter offset: call_date 5 h behind.
    const utc = await measureTimeZone(client(await session('+00:00')), { recentSeconds: 10 * 365 * 86400 });
    expect(utc).toMatchObject({ status: 'mismatch', differenceSeconds: -18000, suggestedTimeZone: '-05:00' });
  });
});
