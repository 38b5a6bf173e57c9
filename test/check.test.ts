import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { QueryCommand } from '@aws-sdk/client-dynamodb';
import mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type CheckDeps,
  type CheckReport,
  formatCheckReport,
  runChecks,
} from '../functions/sync/admin/check';
import type { DbSettings } from '../functions/sync/settings';
import { staticCredentials, VicidialDbConnection } from '../functions/sync/source/db-connection';
import { USER_AGENT } from '../functions/sync/version';
import { createDynamoClient } from '../functions/sync/wiring';
import { type FakeDidApi, startFakeDidApi } from './support/fake-did-api';
import { dbSettingsOf, freePort } from './support/local-mariadb';
import { insertCalls, makeCall } from './support/sample-calls';
import { type Harness, startHarness, TEST_KEY } from './support/sync-harness';

/**
 * The check against healthy and broken real parts: MariaDB (a read-only user, root, a missing table),
 * dynalite, the API stand-in and a second loopback server a redirect points at.
 */
const RO_USER = 'did_sync_check';
const RO_PASSWORD = 'check-Passw0rd-value';

let h: Harness;
let ro: DbSettings;
const dynamo = () => createDynamoClient({ table: h.table, region: 'us-east-1', endpoint: h.dynamo.endpoint });
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'check');
  ro = { ...dbSettingsOf(h.dbUrl), user: RO_USER, password: RO_PASSWORD };
  await h.db.query(`DROP USER IF EXISTS '${RO_USER}'@'%'`);
  await h.db.query(`CREATE USER '${RO_USER}'@'%' IDENTIFIED BY ?`, [RO_PASSWORD]);
  await h.db.query(`GRANT SELECT ON \`${ro.database}\`.vicidial_log TO '${RO_USER}'@'%'`);
});
afterAll(async () => {
  await h?.db.query(`DROP USER IF EXISTS '${RO_USER}'@'%'`);
  await h?.close();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await h.db.query('TRUNCATE vicidial_log');
  h.api.reset();
});

function connect(settings: DbSettings, connectTimeoutMs = 5_000): VicidialDbConnection {
  const connection = new VicidialDbConnection(staticCredentials(settings), { connectTimeoutMs });
  // A pool whose connection attempt timed out rejects its end() with that error.
  cleanups.push(() => connection.close().catch(() => undefined));
  return connection;
}

function deps(overrides: Partial<CheckDeps> & { db?: CheckDeps['db'] } = {}): CheckDeps {
  const client = dynamo();
  cleanups.push(async () => client.destroy());
  return {
    settings: h.settings({ SYNC_ID: 'chk' }),
    db: connect(ro),
    api: async () => ({ url: h.api.url, key: TEST_KEY }),
    userAgent: USER_AGENT,
    dynamo: client,
    table: h.table,
    ...overrides,
  };
}

async function recentCalls(n: number): Promise<void> {
  const end = (await h.dbNow()) - 300;
  await insertCalls(
    h.db,
    Array.from({ length: n }, (_, i) => makeCall({ end_epoch: end - i * 7 }, i)),
  );
}

function statuses(report: CheckReport): Record<string, string> {
  return Object.fromEntries(Object.entries(report.checks).map(([name, r]) => [name, r.status]));
}

function neverLeaks(report: CheckReport, ...secrets: string[]): void {
  const text = JSON.stringify(report) + formatCheckReport(report);
  for (const secret of secrets) expect(text).not.toContain(secret);
  // SHOW GRANTS prints the password hash: no grant line may be echoed.
  expect(text).not.toMatch(/IDENTIFIED BY PASSWORD|\*[0-9A-F]{40}/);
}

describe('did-sync check', () => {
  it('passes every check with the documented read-only user, and posts nothing', async () => {
    await recentCalls(20);
    const report = await runChecks(deps());
    expect(statuses(report)).toEqual({
      database: 'pass',
      grants: 'pass',
      table: 'pass',
      queryPlan: 'pass',
      timeZone: 'pass',
      apiKey: 'pass',
      apiRedirect: 'pass',
      checkpointTable: 'pass',
    });
    expect(report.ok).toBe(true);
    expect(report.checks.database.message).toMatch(new RegExp(`^logged in as ${RO_USER}@%`));
    expect(report.checks.grants.message).toBe(`read-only: SELECT on \`${ro.database}\`.\`vicidial_log\``);
    expect(report.checks.queryPlan.details).toMatchObject({ key: 'call_date', type: 'range' });
    expect(report.checks.timeZone.details).toMatchObject({ status: 'ok', rowsUsed: 20 });
    expect(report.checks.apiKey.message).toBe('API key accepted (GET /api/health: 200)');
    // Every POST counts as DID usage at the API: the check only GETs health.
    expect(h.api.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /api/health']);
    // The probe item is gone again.
    const client = dynamo();
    const left = await client.send(
      new QueryCommand({
        TableName: h.table,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': { S: 'sync#chk' } },
      }),
    );
    client.destroy();
    expect(left.Count).toBe(0);
    const text = formatCheckReport(report);
    expect(text.split('\n')[0]).toBe('did-sync check: sync chk');
    expect(text).toMatch(/\n {2}pass {2}read-only grant {3}read-only: SELECT on /);
    expect(text.trim().split('\n').at(-1)).toBe('all checks passed');
    neverLeaks(report, RO_PASSWORD, TEST_KEY);
  });

  it('warns, without failing, while vicidial_log is empty', async () => {
    const report = await runChecks(deps());
    expect(report.ok).toBe(true);
    expect(report.checks.timeZone.status).toBe('warn');
    expect(report.checks.queryPlan).toMatchObject({ status: 'warn' });
    expect(report.checks.queryPlan.message).toMatch(/^cannot judge the plan yet/);
  });

  it('reports a database that is down and still checks the API and the table', async () => {
    const report = await runChecks(deps({ db: connect({ ...ro, port: await freePort() }) }));
    expect(report.ok).toBe(false);
    expect(report.checks.database.status).toBe('fail');
    expect(report.checks.database.message).toMatch(/^cannot reach the database: .*ECONNREFUSED/);
    for (const name of ['grants', 'table', 'queryPlan', 'timeZone'] as const) {
      expect(report.checks[name]).toEqual({ status: 'skip', message: 'not checked: no database connection' });
    }
    expect(report.checks.apiKey.status).toBe('pass');
    expect(report.checks.checkpointTable.status).toBe('pass');
  });

  it('reports a refused password without showing it', async () => {
    const report = await runChecks(deps({ db: connect({ ...ro, password: 'wrong-Passw0rd-x' }) }));
    expect(report.checks.database.status).toBe('fail');
    expect(report.checks.database.message).toMatch(/^login refused: .*did_sync_check/);
    neverLeaks(report, 'wrong-Passw0rd-x', RO_PASSWORD);
  });

  it('reports a missing vicidial_log and skips what needs it', async () => {
    const schema = `asterisk_empty_${randomBytes(3).toString('hex')}`;
    await h.db.query(`CREATE DATABASE \`${schema}\``);
    cleanups.push(() => h.db.query(`DROP DATABASE \`${schema}\``));
    const report = await runChecks(deps({ db: connect({ ...dbSettingsOf(h.dbUrl), database: schema }) }));
    expect(report.checks.table.status).toBe('fail');
    expect(report.checks.table.message).toMatch(/^table missing: Table '.*\.vicidial_log' doesn't exist/);
    expect(report.checks.queryPlan.status).toBe('skip');
    expect(report.checks.timeZone.status).toBe('skip');
  });

  it('fails the plan when the call_date index is gone (the batch query would scan)', async () => {
    const schema = `asterisk_noidx_${randomBytes(3).toString('hex')}`;
    await h.db.query(`CREATE DATABASE \`${schema}\``);
    cleanups.push(() => h.db.query(`DROP DATABASE \`${schema}\``));
    await h.db.query(`CREATE TABLE \`${schema}\`.vicidial_log LIKE vicidial_log`);
    await h.db.query(`ALTER TABLE \`${schema}\`.vicidial_log DROP INDEX call_date`);
    const report = await runChecks(deps({ db: connect({ ...dbSettingsOf(h.dbUrl), database: schema }) }));
    expect(report.checks.queryPlan.status).toBe('fail');
    expect(report.checks.queryPlan.message).toMatch(
      /^the batch query cannot run: Key 'call_date' doesn't exist/,
    );
  });

  it('finds call_date written in another zone and names VICIDIAL_DB_TIME_ZONE', async () => {
    await recentCalls(30);
    // As if VICIdial's machine ran 8 h east of the database session's zone.
    await h.db.query('UPDATE vicidial_log SET call_date = call_date + INTERVAL 8 HOUR');
    const report = await runChecks(deps());
    expect(report.ok).toBe(false);
    expect(report.checks.timeZone.status).toBe('fail');
    expect(report.checks.timeZone.details).toMatchObject({ status: 'mismatch', differenceSeconds: 28800 });
    expect(report.checks.timeZone.message).toMatch(/set VICIDIAL_DB_TIME_ZONE=[+-]\d\d:\d\d/);

    // Following the advice: the connection sets the suggested zone on its sessions, and the check passes.
    const suggested = (report.checks.timeZone.details as { suggestedTimeZone: string }).suggestedTimeZone;
    const fixed = new VicidialDbConnection(staticCredentials(ro), { timeZone: suggested });
    cleanups.push(() => fixed.close().catch(() => undefined));
    const after = await runChecks(deps({ db: fixed }));
    expect(after.checks.timeZone).toMatchObject({ status: 'pass' });
    expect(after.checks.timeZone.details).toMatchObject({ sessionTimeZone: suggested, differenceSeconds: 0 });
  });

  it('fails the grant check for users that can write, directly or through a role', async () => {
    const root = await runChecks(deps({ db: connect(dbSettingsOf(h.dbUrl)) }));
    expect(root.checks.grants.status).toBe('fail');
    expect(root.checks.grants.message).toMatch(/^not read-only: ALL PRIVILEGES on \*\.\*/);

    const user = `did_sync_rw_${randomBytes(2).toString('hex')}`;
    const role = `did_sync_role_${randomBytes(2).toString('hex')}`;
    await h.db.query(`CREATE USER '${user}'@'%' IDENTIFIED BY ?`, ['rw-Passw0rd-value']);
    await h.db.query(`CREATE ROLE ${role}`);
    cleanups.push(() => h.db.query(`DROP USER '${user}'@'%'`));
    cleanups.push(() => h.db.query(`DROP ROLE ${role}`));
    await h.db.query(`GRANT SELECT ON \`${ro.database}\`.vicidial_log TO '${user}'@'%'`);
    await h.db.query(`GRANT UPDATE ON \`${ro.database}\`.* TO ${role}`);
    await h.db.query(`GRANT ${role} TO '${user}'@'%'`);
    const asUser = () => deps({ db: connect({ ...ro, user, password: 'rw-Passw0rd-value' }) });
    // Not active: MariaDB shows the user no grant of the role, only that it may SET ROLE to it.
    const inactive = await runChecks(asUser());
    expect(inactive.checks.grants.status).toBe('warn');
    expect(inactive.checks.grants.message).toContain(`role(s) ${role} granted but not active`);
    // The default role is active from login, and its grants are shown.
    await h.db.query(`SET DEFAULT ROLE ${role} FOR '${user}'@'%'`);
    const viaRole = await runChecks(asUser());
    expect(viaRole.checks.grants.status).toBe('fail');
    expect(viaRole.checks.grants.message).toBe(
      `not read-only: UPDATE on \`${ro.database}\`.* (role ${role}); grant only SELECT ON \`${ro.database}\`.vicidial_log`,
    );
    neverLeaks(viaRole, 'rw-Passw0rd-value');
  });

  it('reports a table locked by another session (archiving, OPTIMIZE TABLE) and skips what follows', async () => {
    await recentCalls(3);
    const locker = await mysql.createConnection({ uri: h.dbUrl });
    cleanups.push(() => locker.end());
    await locker.query('LOCK TABLES vicidial_log WRITE');
    cleanups.push(() => locker.query('UNLOCK TABLES'));
    const started = Date.now();
    const report = await runChecks(deps(), { timeoutMs: 1_500 });
    expect(Date.now() - started).toBeLessThan(6_000);
    expect(report.checks.grants.status).toBe('pass');
    expect(report.checks.table.status).toBe('fail');
    // The connection's limit comes first (1.5 s, the server's max_statement_time is 2 s): it reports
    // what the server thread waited for, and kills it.
    expect(report.checks.table.message).toMatch(
      /^no answer in time: query did not finish within \d+ ms \(server: .*table.*lock.*; query killed\)$/i,
    );
    expect(report.checks.queryPlan.status).toBe('skip');
    expect(report.checks.timeZone.status).toBe('skip');
    // The connection killed the waiting query: the lock holder sees no queue behind it.
    const [threads] = await h.db.query(
      "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ? AND STATE LIKE '%lock%'",
      [RO_USER],
    );
    expect(Number((threads as { n: number }[])[0]?.n)).toBe(0);
  });

  it('says "API key rejected (HTTP 401)" for a wrong key', async () => {
    const report = await runChecks(deps({ api: async () => ({ url: h.api.url, key: 'wrong-key-value' }) }));
    expect(report.checks.apiKey).toEqual({ status: 'fail', message: 'API key rejected (HTTP 401)' });
    expect(report.checks.apiRedirect.status).toBe('pass');
    expect(report.ok).toBe(false);
    neverLeaks(report, 'wrong-key-value');
  });

  it.each([
    [['/api/health'] as const, 'API key accepted (GET /api/health: 200)'],
    [['/api/v1/health'] as const, 'API key accepted (GET /api/health: 404, GET /api/v1/health: 200)'],
  ])('finds the health endpoint when the server has only %o', async (paths, message) => {
    const api = await startFakeDidApi({ validKeys: [TEST_KEY], healthPaths: paths });
    cleanups.push(() => api.close());
    const report = await runChecks(deps({ api: async () => ({ url: api.url, key: TEST_KEY }) }));
    expect(report.checks.apiKey).toEqual({ status: 'pass', message });
  });

  it('reports no health endpoint at all, e.g. a wrong base URL', async () => {
    const api = await startFakeDidApi({ validKeys: [TEST_KEY], healthPaths: [] });
    cleanups.push(() => api.close());
    const report = await runChecks(deps({ api: async () => ({ url: api.url, key: TEST_KEY }) }));
    expect(report.checks.apiKey.status).toBe('fail');
    expect(report.checks.apiKey.message).toMatch(/^no health endpoint found/);
  });

  it('never follows a redirect: the other origin receives nothing, let alone the key', async () => {
    const moved: FakeDidApi = await startFakeDidApi({ validKeys: [TEST_KEY] });
    const elsewhere = await startFakeDidApi({ validKeys: [TEST_KEY] });
    cleanups.push(
      () => moved.close(),
      () => elsewhere.close(),
    );
    moved.redirectTo(elsewhere.url);
    const report = await runChecks(deps({ api: async () => ({ url: moved.url, key: TEST_KEY }) }));
    expect(report.checks.apiRedirect.status).toBe('fail');
    expect(report.checks.apiRedirect.message).toContain(
      `GET /api/health answered HTTP 301 to ${elsewhere.url}/api/health; not followed`,
    );
    expect(report.checks.apiKey.message).toBe('not checked: GET /api/health redirected (HTTP 301)');
    expect(elsewhere.requests).toEqual([]);
    expect(elsewhere.requests.some((r) => r.headers['x-api-key'] !== undefined)).toBe(false);
    expect(moved.requests.map((r) => r.method)).toEqual(['GET']);
  });

  it('reports an API secret that cannot be read as the API check failing', async () => {
    const report = await runChecks(
      deps({
        api: async () => {
          throw new Error('secret arn:aws:secretsmanager:x has no "apiKey"');
        },
      }),
    );
    expect(report.checks.apiKey.message).toBe(
      'cannot read the API settings: secret arn:aws:secretsmanager:x has no "apiKey"',
    );
    expect(report.checks.apiRedirect.status).toBe('skip');
  });

  it('reports a missing checkpoint table', async () => {
    const report = await runChecks(deps({ table: 'no-such-table' }));
    expect(report.checks.checkpointTable.status).toBe('fail');
    expect(report.checks.checkpointTable.message).toMatch(/^table no-such-table not found/);
  });

  describe('with a database and an API that accept connections and never answer', () => {
    let silent: Server;
    let port: number;
    const sockets = new Set<Socket>();
    beforeAll(async () => {
      silent = createServer((socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
      });
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      port = (silent.address() as { port: number }).port;
    });
    afterAll(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    });

    it('ends every check within its timeout', async () => {
      const started = Date.now();
      const report = await runChecks(
        deps({
          db: connect({ ...ro, host: '127.0.0.1', port }, 1_500),
          api: async () => ({ url: `http://127.0.0.1:${port}`, key: TEST_KEY }),
        }),
        { timeoutMs: 600 },
      );
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(report.checks.database.status).toBe('fail');
      expect(report.checks.database.message).toMatch(
        /^no answer in time: query did not finish within \d+ ms \(connection dead or unreachable\)$/,
      );
      expect(report.checks.apiKey).toEqual({
        status: 'fail',
        message: 'cannot reach the API: GET /api/health: no answer in time',
      });
      expect(report.checks.checkpointTable.status).toBe('pass');
    });
  });
});
