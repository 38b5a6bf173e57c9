import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildScanQuery } from '../../functions/sync/source/vicidial-log';
import { type LocalMariaDb, startLocalMariaDb } from '../support/local-mariadb';
import { generateCalls, insertCalls, makeCall } from '../support/sample-calls';
import { type Harness, startHarness } from '../support/sync-harness';

describe('rows read per batch', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(inject('mysqlUrl'), 'scan');
  });
  afterAll(async () => {
    await h?.close();
  });

  async function handlerReads(sql: string, values: unknown[]) {
    const conn = await h.db.getConnection();
    try {
      await conn.query('FLUSH STATUS');
      await conn.query(sql, values);
      const [rows] = await conn.query("SHOW SESSION STATUS LIKE 'Handler_read%'");
      const status = Object.fromEntries(
        (rows as { Variable_name: string; Value: string }[]).map((r) => [r.Variable_name, Number(r.Value)]),
      );
      const total = Object.values(status).reduce((a, b) => a + b, 0);
      return { status, total };
    } finally {
      conn.release();
    }
  }

  it('reads through the call_date index, independent of the table size', async () => {
    const now = await h.dbNow();
    const cursorEpoch = now - 1800;
    // Recent calls around the cursor, then a large history far older than the lookback.
    await insertCalls(
      h.db,
      generateCalls({ count: 600, fromEpoch: cursorEpoch - 600, toEpoch: now - 60, seed: 1 }),
    );
    const filters = {
      minDurationSeconds: 0,
      campaigns: [],
      excludeCampaigns: [],
      transientStatuses: ['INCALL', 'DISPO', 'QUEUE'],
    };
    const { sql, values } = buildScanQuery(
      { from: { epoch: cursorEpoch - 120 }, toEpoch: now - 30, limit: 100 },
      filters,
    );

    const [plan] = await h.db.query(`EXPLAIN ${sql}`, values);
    expect((plan as { key: string; type: string }[])[0]).toMatchObject({ key: 'call_date', type: 'range' });
    const small = await handlerReads(sql, values);

    const history = generateCalls({
      count: 40_000,
      fromEpoch: now - 40 * 86400,
      toEpoch: now - 2 * 86400,
      seed: 2,
    });
    await insertCalls(h.db, history, { chunkSize: 2000 });
    const large = await handlerReads(sql, values);

    const [countRows] = await h.db.query('SELECT COUNT(*) AS total FROM vicidial_log');
    const tableRows = Number((countRows as { total: number }[])[0]?.total);
    expect(tableRows).toBeGreaterThan(40_000);
    expect(large.status.Handler_read_rnd_next ?? 0).toBe(0);
    // Same reads with 40,000 more (older) rows in the table: the range does not grow with it.
    expect(large.total).toBe(small.total);
    expect(large.total).toBeLessThan(1500);
  });
});

describe('time zones', () => {
  let zoned: LocalMariaDb | undefined;
  const originalTz = process.env.TZ;

  beforeAll(async () => {
    if (!process.env.TEST_MYSQL_URL) zoned = await startLocalMariaDb({ timeZone: '-05:00' });
  });
  afterAll(async () => {
    process.env.TZ = originalTz;
    await zoned?.stop();
  });

  it('gives the same calls with the database session in a non-UTC zone and the host in UTC', async () => {
    process.env.TZ = 'UTC';
    const servers = [inject('mysqlUrl'), zoned?.url ?? inject('mysqlUrl')];
    const results: { uniqueids: string[]; callDates: Map<string, unknown> }[] = [];
    // One set of epochs for both servers (they share this machine's clock), so the calls are identical.
    const now = Math.floor(Date.now() / 1000);
    for (const serverUrl of servers) {
      const h = await startHarness(serverUrl, 'tz');
      try {
        // Calls around the start point, in both zones.
        const start = now - 4 * 3600;
        const rows = [
          ...generateCalls({ count: 300, fromEpoch: start - 1800, toEpoch: now - 60, seed: 11 }),
          makeCall({ end_epoch: start + 10, length_in_sec: 100, uniqueid: '1699990000.1' }, 1),
        ];
        await insertCalls(h.db, rows);
        const { summary } = await h.run({ SYNC_ID: 'tz', START_FROM: String(start) });
        expect(summary.outcome).toBe('completed');
        const [dbDates] = await h.db.query('SELECT uniqueid, call_date FROM vicidial_log');
        const callDates = new Map(
          (dbDates as { uniqueid: string; call_date: string }[]).map((r) => [r.uniqueid, r.call_date]),
        );
        for (const [uid, body] of h.api.stored) expect(body.callDate).toBe(callDates.get(uid));
        results.push({ uniqueids: [...h.api.stored.keys()].sort(), callDates });
      } finally {
        await h.close();
      }
    }
    const [utc, offset] = results;
    expect(utc?.uniqueids.length).toBeGreaterThan(200);
    expect(utc?.uniqueids).toContain('1699990000.1');
    expect(offset?.uniqueids).toEqual(utc?.uniqueids);
    if (zoned) {
      // Same call, different local call_date: the zone really differs, and nothing depended on it.
      expect(offset?.callDates.get('1699990000.1')).not.toBe(utc?.callDates.get('1699990000.1'));
    }
  });
});

describe('database errors', () => {
  it('ends the run as failed with the reason, without the password', async () => {
    const h = await startHarness(inject('mysqlUrl'), 'dberr');
    try {
      const sync = h.createSync(
        { SYNC_ID: 'dberr' },
        {
          db: {
            current: async () => ({
              host: '127.0.0.1',
              port: 1,
              user: 'nobody',
              password: 'pw-should-not-leak',
              database: 'x',
              charset: 'utf8mb4',
            }),
          },
        },
      );
      const { runSync } = await import('../../functions/sync/run/engine');
      const { MemorySyncLog } = await import('../../functions/sync/log');
      const log = new MemorySyncLog();
      const summary = await runSync({ ...sync, log }, { owner: 'test' });
      expect(summary).toMatchObject({ outcome: 'failed', reason: 'database_error' });
      expect(JSON.stringify(log.entries)).not.toContain('pw-should-not-leak');
      const status = await h.store.read('dberr');
      // A database it cannot reach costs no lease: the run fails before taking it.
      expect(status?.lease ?? null).toBeNull();
    } finally {
      await h.close();
    }
  });
});
