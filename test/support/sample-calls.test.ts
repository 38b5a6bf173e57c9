import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createVicidialDatabase } from './local-mariadb';
import {
  AUTO_STATUSES,
  AWKWARD_COMMENTS,
  generateCalls,
  insertCalls,
  LONG_COMMENTS,
  makeCall,
  STATUS_MIX,
  setStatus,
  type VicidialLogRow,
} from './sample-calls';

const FROM = 1_729_771_000;
const TO = FROM + 3_599;

describe('generateCalls', () => {
  it('is deterministic for a seed and differs between seeds', () => {
    const opts = { count: 2000, fromEpoch: FROM, toEpoch: TO, seed: 42, awkwardFraction: 0.05 };
    expect(generateCalls(opts)).toEqual(generateCalls(opts));
    expect(generateCalls({ ...opts, seed: 43 })).not.toEqual(generateCalls(opts));
  });

  it('changes only agent calls to INCALL when incallFraction is raised', () => {
    const base = generateCalls({ count: 3000, fromEpoch: FROM, toEpoch: TO, seed: 5 });
    const incall = generateCalls({ count: 3000, fromEpoch: FROM, toEpoch: TO, seed: 5, incallFraction: 0.2 });
    const agentCalls = base.filter((r) => !AUTO_STATUSES.has(r.status ?? ''));
    const parked = incall.filter((r) => r.status === 'INCALL');
    expect(parked.length / agentCalls.length).toBeGreaterThan(0.15);
    expect(parked.length / agentCalls.length).toBeLessThan(0.25);
    expect(incall.map(({ status: _, ...rest }) => rest)).toEqual(base.map(({ status: _, ...rest }) => rest));
    for (const r of parked) expect(r.user).toMatch(/^agent\d{3}$/);
  });

  describe('a busy hour', () => {
    const rows = generateCalls({
      count: 20_000,
      fromEpoch: FROM,
      toEpoch: TO,
      seed: 7,
      tiesPerSecond: 20,
      awkwardFraction: 0.02,
    });

    it('follows an outbound campaign status mix', () => {
      const counts = new Map<string, number>();
      for (const r of rows) counts.set(r.status ?? '', (counts.get(r.status ?? '') ?? 0) + 1);
      expect([...counts.keys()].sort()).toEqual(STATUS_MIX.map(([s]) => s).sort());
      for (const [status, percent] of STATUS_MIX) {
        const share = ((counts.get(status) ?? 0) / rows.length) * 100;
        expect(Math.abs(share - percent), status).toBeLessThan(1.5);
      }
    });

    it('has consistent epochs and plausible columns', () => {
      // One verdict per row: 20,000 rows times a dozen expect() calls would take seconds.
      const problems = rows.flatMap((r) => {
        const auto = AUTO_STATUSES.has(r.status ?? '');
        const length = r.length_in_sec ?? -1;
        const checks: [string, boolean][] = [
          ['end in range', (r.end_epoch ?? 0) >= FROM && (r.end_epoch ?? 0) <= TO],
          ['start = end - length', r.start_epoch === (r.end_epoch ?? 0) - length],
          ['length', auto ? length >= 1 && length <= 30 : length >= 20 && length <= 900],
          ['user', auto ? r.user === 'VDAD' : /^agent\d{3}$/.test(r.user ?? '')],
          ['term_reason', auto || r.term_reason === 'CALLER' || r.term_reason === 'AGENT'],
          ['call_date', r.call_date === null],
          ['campaign', ['SALESA', 'SALESB', 'RETENT'].includes(r.campaign_id ?? '')],
          ['list', (r.list_id ?? 0) >= 1000 && (r.list_id ?? 0) <= 1005],
          ['called_count', (r.called_count ?? 0) >= 1 && (r.called_count ?? 0) <= 8],
          [
            'phone',
            r.phone_number === null || r.phone_number === '' || /^[2-9]\d{2}[2-9]\d{6}$/.test(r.phone_number),
          ],
          [
            'constants',
            r.phone_code === '1' && r.user_group === 'AGENTS' && r.alt_dial === 'MAIN' && r.processed === 'N',
          ],
        ];
        return checks.filter(([, ok]) => !ok).map(([what]) => `${r.uniqueid}: ${what}`);
      });
      expect(problems).toEqual([]);
      expect(rows.map((r) => r.lead_id)).toEqual(rows.map((_, i) => 200_000 + i));
    });

    it('has Asterisk uniqueids whose string order is neither numeric nor completion order', () => {
      const ids = rows.map((r) => r.uniqueid);
      expect(new Set(ids).size).toBe(rows.length);
      const malformed = rows.filter(
        (r) =>
          !/^\d{10}\.\d+$/.test(r.uniqueid) ||
          r.uniqueid.length > 20 ||
          !r.uniqueid.startsWith(`${r.start_epoch}.`),
      );
      expect(malformed).toEqual([]);

      // Numeric order of (epoch, counter) as two integers, not as one decimal.
      const pair = (id: string) => id.split('.').map(Number) as [number, number];
      const byNumbers = (a: string, b: string) => pair(a)[0] - pair(b)[0] || pair(a)[1] - pair(b)[1];
      const numeric = [...ids].sort(byNumbers);
      const lexical = [...ids].sort();
      const byCompletion = [...rows]
        .sort((a, b) => (a.end_epoch ?? 0) - (b.end_epoch ?? 0) || byNumbers(a.uniqueid, b.uniqueid))
        .map((r) => r.uniqueid);
      expect(lexical.some((id, i) => id !== numeric[i])).toBe(true);
      expect(numeric.some((id, i) => id !== byCompletion[i])).toBe(true);

      // Within one second, counters of different lengths: "x.98" sorts after "x.10012" as a string.
      const counterLengths = new Map<string, Set<number>>();
      for (const id of ids) {
        const [sec = '', counter = ''] = id.split('.');
        const lengths = counterLengths.get(sec) ?? new Set();
        lengths.add(counter.length);
        counterLengths.set(sec, lengths);
      }
      expect([...counterLengths.values()].some((lengths) => lengths.size > 1)).toBe(true);
    });

    it('puts about tiesPerSecond calls on each end second', () => {
      const perSecond = new Map<number, number>();
      for (const r of rows) perSecond.set(r.end_epoch ?? 0, (perSecond.get(r.end_epoch ?? 0) ?? 0) + 1);
      const average = rows.length / perSecond.size;
      expect(average).toBeGreaterThan(15);
      expect(average).toBeLessThan(25);
      expect(Math.max(...perSecond.values())).toBeGreaterThan(30);
    });

    it('includes awkward rows', () => {
      expect(rows.some((r) => r.phone_number === null)).toBe(true);
      expect(rows.some((r) => r.phone_number === '')).toBe(true);
      expect(rows.some((r) => r.comments === AWKWARD_COMMENTS)).toBe(true);
      expect(rows.some((r) => r.comments === LONG_COMMENTS)).toBe(true);
      expect(Array.from(LONG_COMMENTS)).toHaveLength(255);
      expect(LONG_COMMENTS).toContain('😀');
    });
  });

  it('crowds ties together when the span is shorter than the count needs', () => {
    const rows = generateCalls({ count: 1000, fromEpoch: FROM, toEpoch: FROM + 9, seed: 3 });
    expect(new Set(rows.map((r) => r.end_epoch)).size).toBe(10);
  });

  it('puts every call on fromEpoch when the range is empty or inverted', () => {
    const rows = generateCalls({ count: 50, fromEpoch: FROM, toEpoch: FROM - 1, seed: 4 });
    expect(new Set(rows.map((r) => r.end_epoch))).toEqual(new Set([FROM]));
  });
});

describe('makeCall', () => {
  it('builds a finished agent call that overrides can reshape', () => {
    expect(makeCall({ end_epoch: 1_700_000_100 }, 7)).toEqual({
      uniqueid: '1700000073.7',
      lead_id: 100_007,
      list_id: 1001,
      campaign_id: 'SALESA',
      call_date: null,
      start_epoch: 1_700_000_073,
      end_epoch: 1_700_000_100,
      length_in_sec: 27,
      status: 'NI',
      phone_code: '1',
      phone_number: '5550000007',
      user: 'agent001',
      comments: 'AUTO',
      processed: 'N',
      user_group: 'AGENTS',
      term_reason: 'CALLER',
      alt_dial: 'MAIN',
      called_count: 1,
    } satisfies VicidialLogRow);
    expect(makeCall({ end_epoch: 1_700_000_100, start_epoch: 1_700_000_000 }, 1)).toMatchObject({
      uniqueid: '1700000000.1',
      length_in_sec: 100,
    });
    expect(makeCall({ end_epoch: 1_700_000_100, length_in_sec: 0, phone_number: null }, 2)).toMatchObject({
      start_epoch: 1_700_000_100,
      phone_number: null,
    });
  });
});

describe('insertCalls against MariaDB', () => {
  let conn: mysql.Connection;
  let dbName: string;

  beforeAll(async () => {
    dbName = `asterisk_samples_${randomBytes(4).toString('hex')}`;
    const url = await createVicidialDatabase(inject('mysqlUrl'), dbName);
    conn = await mysql.createConnection({ uri: url, dateStrings: true, charset: 'utf8mb4' });
    // A zone that is not the host's, to show call_date comes from the database session.
    await conn.query("SET time_zone = '-05:00'");
  });
  afterAll(async () => {
    await conn?.query(`DROP DATABASE IF EXISTS \`${dbName}\``).catch(() => undefined);
    await conn?.end();
  });

  it('writes every column exactly, in chunks, with call_date computed by the database', async () => {
    const rows = [
      ...generateCalls({ count: 250, fromEpoch: FROM, toEpoch: TO, seed: 9, awkwardFraction: 0.2 }),
      makeCall({ end_epoch: FROM, comments: AWKWARD_COMMENTS, uniqueid: '1729770990.1000' }, 1),
      makeCall({ end_epoch: FROM, comments: LONG_COMMENTS, uniqueid: '1729770990.567' }, 2),
      makeCall({ end_epoch: FROM, call_date: '2001-02-03 04:05:06', uniqueid: '1729770990.9' }, 3),
    ];
    await insertCalls(conn, rows, { chunkSize: 64 });

    const [read] = await conn.query(
      `SELECT *, DATE_FORMAT(FROM_UNIXTIME(start_epoch), '%Y-%m-%d %H:%i:%s') AS db_local,
              DATE_FORMAT(CONVERT_TZ(FROM_UNIXTIME(start_epoch), @@session.time_zone, '+00:00'),
                          '%Y-%m-%d %H:%i:%s') AS utc
         FROM vicidial_log`,
    );
    const byId = new Map(
      (read as (VicidialLogRow & { db_local: string; utc: string })[]).map((r) => [r.uniqueid, r]),
    );
    expect(byId.size).toBe(rows.length);
    for (const row of rows) {
      const got = byId.get(row.uniqueid);
      const { call_date, db_local, utc, ...columns } = got ?? ({} as never);
      const { call_date: given, ...expected } = row;
      expect(columns).toEqual(expected);
      if (given) {
        expect(call_date).toBe(given);
      } else {
        expect(call_date).toBe(db_local);
        expect(call_date).not.toBe(utc);
      }
    }
  });

  it('lets the database compute call_date even when a row carries one, with timeZoneAware', async () => {
    const row = makeCall({ end_epoch: FROM, call_date: '2001-02-03 04:05:06', uniqueid: '1729770990.77' }, 4);
    await insertCalls(conn, [row], { timeZoneAware: true });
    const [read] = await conn.query(
      "SELECT call_date, DATE_FORMAT(FROM_UNIXTIME(start_epoch), '%Y-%m-%d %H:%i:%s') AS db_local FROM vicidial_log WHERE uniqueid = ?",
      [row.uniqueid],
    );
    const [got] = read as { call_date: string; db_local: string }[];
    expect(got?.call_date).toBe(got?.db_local);
  });

  it('sets a late disposition', async () => {
    const row = makeCall({ end_epoch: FROM, status: 'INCALL', uniqueid: '1729770990.88' }, 5);
    await insertCalls(conn, [row]);
    await setStatus(conn, row.uniqueid, 'SALE');
    const [read] = await conn.query('SELECT status FROM vicidial_log WHERE uniqueid = ?', [row.uniqueid]);
    expect((read as { status: string }[])[0]?.status).toBe('SALE');
  });

  it('does nothing for no rows', async () => {
    await expect(insertCalls(conn, [])).resolves.toBeUndefined();
  });
});
