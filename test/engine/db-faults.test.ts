import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { MemorySyncLog } from '../../functions/sync/log';
import { runSync } from '../../functions/sync/run/engine';
import { staticCredentials } from '../../functions/sync/source/db-connection';
import { dbSettingsOf } from '../support/local-mariadb';
import { insertCalls, makeCall } from '../support/sample-calls';
import { type Harness, startHarness } from '../support/sync-harness';
import { startTcpProxy } from '../support/tcp-proxy';

/**
 * Connections that die under the sync: killed by the server mid-run, closed while a warm Lambda was
 * frozen, or silently dropped by a NAT. Each costs a retry on a new connection, never a failed run.
 */
let h: Harness;
const USER = 'sync_faults';
const PASSWORD = 'faults-Passw0rd';

beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'dbfaults');
  const db = dbSettingsOf(h.dbUrl).database;
  await h.db.query(`DROP USER IF EXISTS '${USER}'@'%'`);
  await h.db.query(`CREATE USER '${USER}'@'%' IDENTIFIED BY '${PASSWORD}'`);
  await h.db.query(`GRANT SELECT ON \`${db}\`.vicidial_log TO '${USER}'@'%'`);
});
afterAll(async () => {
  await h?.db.query(`DROP USER IF EXISTS '${USER}'@'%'`).catch(() => undefined);
  await h?.close();
});
afterEach(async () => {
  await h.db.query('TRUNCATE vicidial_log');
  h.api.reset();
});

function credentials(port?: number) {
  const s = dbSettingsOf(h.dbUrl);
  return staticCredentials({ ...s, user: USER, password: PASSWORD, ...(port ? { port } : {}) });
}

/** Kills every connection of the sync's database user, as an admin or the server's wait_timeout would. */
async function killSyncConnections(): Promise<number> {
  const [rows] = await h.db.query('SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ?', [
    USER,
  ]);
  const ids = (rows as { id: number }[]).map((r) => r.id);
  for (const id of ids) await h.db.query(`KILL CONNECTION ${Number(id)}`).catch(() => undefined);
  return ids.length;
}

async function someCalls(syncId: string, n: number, endOffset = 600) {
  const end = (await h.dbNow()) - endOffset;
  await insertCalls(
    h.db,
    Array.from({ length: n }, (_, i) => makeCall({ end_epoch: end + Math.floor(i / 3) }, i + endOffset * 10)),
  );
  return { SYNC_ID: syncId, START_FROM: String(end - 10), BATCH_SIZE: '100' };
}

describe('database connections that die', () => {
  it('goes on when the server kills its connection in the middle of a run', async () => {
    const env = await someCalls('killed-mid', 600);
    h.api.setLatency(15);
    const sync = h.createSync(env, { db: credentials() });
    const log = new MemorySyncLog();
    const run = runSync({ ...sync, log }, { owner: 'mid' });
    let killed = 0;
    while (killed === 0) {
      await new Promise((r) => setTimeout(r, 20));
      if (h.api.calls.length > 150) killed = await killSyncConnections();
    }
    const summary = await run;
    expect(killed).toBeGreaterThan(0);
    expect(summary).toMatchObject({ outcome: 'completed', delivered: 600 });
    expect(h.api.calls.length).toBe(600);
  });

  it('reconnects at once when its connections were closed between two warm invocations', async () => {
    const env = await someCalls('killed-between', 50);
    const sync = h.createSync(env, { db: credentials() });
    const first = await runSync({ ...sync, log: new MemorySyncLog() }, { owner: 'warm-1' });
    expect(first).toMatchObject({ outcome: 'completed', delivered: 50 });
    expect(await killSyncConnections()).toBeGreaterThan(0);
    await insertCalls(h.db, [makeCall({ end_epoch: (await h.dbNow()) - 1 }, 99_999)]);
    await new Promise((r) => setTimeout(r, 1100));
    const second = await runSync({ ...sync, log: new MemorySyncLog() }, { owner: 'warm-2' });
    expect(second).toMatchObject({ outcome: 'completed' });
    expect(h.api.calls.length).toBe(second.delivered + 50);
  });

  it('finds a silently dropped connection within DB_QUERY_TIMEOUT_MS and goes on with a new one', async () => {
    const target = dbSettingsOf(h.dbUrl);
    const proxy = await startTcpProxy(target.host, target.port);
    try {
      const env = await someCalls('silent', 20);
      const sync = h.createSync(env, { db: credentials(proxy.port) });
      const first = await runSync({ ...sync, log: new MemorySyncLog() }, { owner: 'silent-1' });
      expect(first).toMatchObject({ outcome: 'completed', delivered: 20 });
      expect(proxy.flows).toBeGreaterThan(0);
      // A NAT forgets the flow: no FIN, no RST, the bytes just stop.
      proxy.freezeOpenFlows();
      const started = Date.now();
      const second = await runSync({ ...sync, log: new MemorySyncLog() }, { owner: 'silent-2' });
      const seconds = (Date.now() - started) / 1000;
      expect(second).toMatchObject({ outcome: 'completed' });
      // The default DB_QUERY_TIMEOUT_MS (15 s), not minutes of TCP retransmissions.
      expect(seconds).toBeGreaterThanOrEqual(14);
      expect(seconds).toBeLessThan(25);
    } finally {
      await proxy.close();
    }
  }, 60_000);
});
