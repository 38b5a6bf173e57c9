import { spawn } from 'node:child_process';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { MemorySyncLog } from '../../functions/sync/log';
import { runSync } from '../../functions/sync/run/engine';
import { insertCalls, makeCall } from '../support/sample-calls';
import { type Harness, startHarness } from '../support/sync-harness';

/**
 * Every wait ends at the deadline: `did-sync run --max-seconds S` exits within S + 2 s, after releasing
 * its lease and printing its summary, whatever the API or the database does.
 */
const CLI = join(import.meta.dirname, '..', '..', 'bin', 'did-sync.js');
let h: Harness;

beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'deadlines');
});
afterAll(async () => {
  await h?.close();
});
afterEach(async () => {
  await h.db.query('TRUNCATE vicidial_log');
  h.api.reset();
});

function runCli(env: Record<string, string>, maxSeconds: number) {
  const started = Date.now();
  return new Promise<{ code: number | null; stdout: string; seconds: number }>((resolve) => {
    const child = spawn(process.execPath, [CLI, 'run', '--max-seconds', String(maxSeconds)], {
      env: {
        PATH: process.env.PATH,
        ...h.cliEnv(),
        ...env,
        POWERTOOLS_LOG_LEVEL: 'WARN',
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', () => undefined);
    child.on('close', (code) => resolve({ code, stdout, seconds: (Date.now() - started) / 1000 }));
  });
}

async function someCalls(syncId: string, n: number) {
  const end = (await h.dbNow()) - 300;
  await insertCalls(
    h.db,
    Array.from({ length: n }, (_, i) => makeCall({ end_epoch: end + (i % 60) }, i)),
  );
  return { SYNC_ID: syncId, START_FROM: String(end - 10) };
}

describe('run --max-seconds 8', () => {
  it('ends as rate_limited when Retry-After: 30 would pass the deadline, and the next run loses nothing', async () => {
    const env = await someCalls('ratelimit', 400);
    let served = 0;
    h.api.setLatency(5);
    h.api.failWhen(() => ++served > 100, { status: 429, retryAfter: '30', body: 'Too many requests' });
    const run = await runCli(env, 8);
    expect(run.seconds).toBeLessThanOrEqual(10);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/sync ratelimit: partial \(rate_limited\)/);
    const state = await h.store.read('ratelimit');
    expect(state?.lease).toBeNull();
    const delivered = h.api.stored.size;
    expect(delivered).toBe(100);

    h.api.failWhen(() => false, null);
    const { summary } = await h.run(env);
    expect(summary).toMatchObject({ outcome: 'completed', delivered: 300 });
    expect(h.api.stored.size).toBe(400);
    expect(h.api.calls.length).toBe(400);
  }, 30_000);

  it('ends on time when the API never answers', async () => {
    const env = await someCalls('hang', 50);
    h.api.failWhen(() => true, { hang: true });
    const run = await runCli(env, 8);
    expect(run.seconds).toBeLessThanOrEqual(10);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/sync hang: partial \(time_budget\)/);
    expect((await h.store.read('hang'))?.lease).toBeNull();
    h.api.failWhen(() => false, null);
    const { summary } = await h.run(env);
    expect(summary).toMatchObject({ outcome: 'completed', delivered: 50 });
    expect(h.api.calls.length).toBe(50);
  }, 30_000);

  it('ends on time while another connection holds vicidial_log write-locked', async () => {
    const env = await someCalls('locked', 20);
    const locker = await mysql.createConnection({ uri: h.dbUrl });
    try {
      await locker.query('LOCK TABLES vicidial_log WRITE');
      const run = await runCli(env, 8);
      expect(run.seconds).toBeLessThanOrEqual(10);
      expect(run.code).toBe(1);
      expect(run.stdout).toMatch(/sync locked: failed \(database_error\)/);
      expect(run.stdout).toMatch(/query killed/);
      // The query was killed on the server, not left waiting for the lock.
      const [threads] = await h.db.query(
        "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE '%FROM vicidial_log%' AND ID <> CONNECTION_ID()",
      );
      expect(Number((threads as { n: number }[])[0]?.n)).toBe(0);
    } finally {
      await locker.query('UNLOCK TABLES');
      await locker.end();
    }
    const { summary } = await h.run(env);
    expect(summary).toMatchObject({ outcome: 'completed', delivered: 20 });
  }, 30_000);
});

describe('a locked table in one process', () => {
  it('leaves the pool usable once the lock is gone', async () => {
    const env = await someCalls('locked-pool', 10);
    const sync = h.createSync(env);
    const locker = await mysql.createConnection({ uri: h.dbUrl });
    try {
      await locker.query('LOCK TABLES vicidial_log WRITE');
      const started = Date.now();
      const blocked = await runSync(
        { ...sync, log: new MemorySyncLog() },
        { owner: 'a', deadline: Date.now() + 3000 },
      );
      expect(blocked).toMatchObject({ outcome: 'failed', reason: 'database_error' });
      expect(Date.now() - started).toBeLessThan(6000);
    } finally {
      await locker.query('UNLOCK TABLES');
      await locker.end();
    }
    const after = await runSync({ ...sync, log: new MemorySyncLog() }, { owner: 'b' });
    expect(after).toMatchObject({ outcome: 'completed', delivered: 10 });
  }, 30_000);
});
