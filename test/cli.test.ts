import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { insertCalls, makeCall } from './support/sample-calls';
import { type Harness, startHarness } from './support/sync-harness';

// Through the package.json bin entry, as an operator runs it.
const CLI = join(import.meta.dirname, '..', 'bin', 'did-sync.js');

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(
  args: string[],
  env: Record<string, string>,
  cwd = mkdtempSync(join(tmpdir(), 'did-sync-cli-')),
): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd,
      env: {
        PATH: process.env.PATH,
        POWERTOOLS_LOG_LEVEL: 'INFO',
        // On a Node older than 22 (a local run outside CI) the command's one-line note would be in stderr.
        DID_SYNC_QUIET_NODE_NOTE: '1',
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

let h: Harness;
let baseEnv: Record<string, string>;

beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'cli');
  baseEnv = h.cliEnv();
});
afterAll(async () => {
  await h?.close();
});

describe('did-sync run', () => {
  // A dozen processes of the CLI, one after another: a loaded CI machine needs more than the default minute.
  it('drains, logs JSON lines with stable events, and ends with a human summary', async () => {
    const end = (await h.dbNow()) - 300;
    await insertCalls(h.db, [
      ...Array.from({ length: 30 }, (_, i) => makeCall({ end_epoch: end + (i % 3) }, i)),
      makeCall({ end_epoch: end, phone_number: null, uniqueid: '1700000009.9' }, 99),
    ]);
    const env = { ...baseEnv, SYNC_ID: 'cli-run', START_FROM: String(end - 60), BATCH_SIZE: '10' };
    const dry = await cli(['run', '--dry-run'], env);
    expect(dry.code).toBe(0);
    expect(h.api.requestCount).toBe(0);
    expect(jsonLines(dry.stderr).filter((l) => l.event === 'call_would_send')).toHaveLength(30);
    // A sync without a checkpoint is started on purpose, never silently.
    expect(dry.stderr).toContain(
      'did-sync: notice: sync "cli-run" had no checkpoint yet: this run would start it',
    );

    const run = await cli(['run'], env);
    expect(run.code).toBe(0);
    // Every log line goes to stderr, one JSON object per line; stdout holds only the answer.
    expect(
      run.stderr
        .trim()
        .split('\n')
        .every((l) => l.startsWith('{') || l.startsWith('did-sync: notice:')),
    ).toBe(true);
    expect(jsonLines(run.stdout)).toEqual([]);
    const lines = jsonLines(run.stderr);
    const events = new Set(lines.map((l) => l.event));
    for (const e of ['run_start', 'batch', 'call_sent', 'call_dead_lettered', 'checkpoint', 'run_end']) {
      expect(events).toContain(e);
    }
    const sent = lines.find((l) => l.event === 'call_sent');
    expect(sent).toMatchObject({ syncId: 'cli-run', httpStatus: 200, attempt: 1 });
    expect(sent).toHaveProperty('campaignId');
    expect(sent).toHaveProperty('disposition');
    expect(sent).toHaveProperty('durationMs');
    const end_ = lines.find((l) => l.event === 'run_end');
    expect(end_).toMatchObject({ outcome: 'completed', delivered: 30, deadLettered: 1, ambiguous: 0 });
    expect(
      run.stdout
        .trim()
        .split('\n')
        .find((l) => l.startsWith('sync ')),
    ).toMatch(/^sync cli-run: completed/);
    expect(h.api.stored.size).toBe(30);

    const status = await cli(['status', '--json'], env);
    expect(status.code).toBe(0);
    const report = JSON.parse(status.stdout);
    expect(report).toMatchObject({ syncId: 'cli-run', lease: null, pending: 0, deadLetters: 1 });
    expect(report.cursor.endEpoch).toBeGreaterThan(end);
    expect(report.cursorTime).toMatch(/Z$/);
    expect(typeof report.lagSeconds).toBe('number');

    const letters = await cli(['dead-letters', '--json'], env);
    expect(JSON.parse(letters.stdout)[0]).toMatchObject({ uniqueid: '1700000009.9' });

    // The operator fixes the row in VICIdial, then replays.
    await h.db.query("UPDATE vicidial_log SET phone_number = '5550001111' WHERE uniqueid = '1700000009.9'");
    const replay = await cli(['dead-letters', '--replay'], env);
    expect(replay.code).toBe(0);
    expect(replay.stdout).toContain('delivered 1');
    expect(h.api.stored.get('1700000009.9')?.phoneNumber).toBe('5550001111');
    expect(JSON.parse((await cli(['status', '--json'], env)).stdout).deadLetters).toBe(0);

    const reset = await cli(['reset', '--to', new Date((end - 60) * 1000).toISOString()], env);
    expect(reset.code).toBe(0);
    // A backward reset says what the next runs will post: none, since the ledger holds every call
    // (the replayed letter too: replay records what it delivers).
    expect(reset.stdout).toContain(
      '31 eligible call(s) between the two cursors: 31 delivered, 0 dead-lettered',
    );
    expect(reset.stdout).toContain('the next runs post 0 call(s)');
    expect(JSON.parse((await cli(['status', '--json'], env)).stdout).cursor).toEqual({
      endEpoch: end - 60,
      uniqueid: '',
    });
    const after = await cli(['run', '--json'], env);
    expect(JSON.parse(after.stdout)).toMatchObject({ delivered: 0, resent: 0 });
    expect(h.api.duplicates()).toBe(0);
  }, 180_000);

  it('reads settings from ./.env, the environment winning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'did-sync-env-'));
    writeFileSync(join(dir, '.env'), `SYNC_ID=from-file\nCHECKPOINT_TABLE=${h.table}\nBATCH_SIZE=zzz\n`);
    const bad = await cli(['status', '--json'], { DYNAMODB_ENDPOINT: h.dynamo.endpoint }, dir);
    expect(bad.stderr.trim()).toBe('did-sync: setting BATCH_SIZE: must be a whole number, got "zzz"');
    const ok = await cli(
      ['status', '--json'],
      { DYNAMODB_ENDPOINT: h.dynamo.endpoint, BATCH_SIZE: '10' },
      dir,
    );
    expect(JSON.parse(ok.stdout).syncId).toBe('from-file');
  });

  it.each([
    [{ BATCH_SIZE: '-3' }, 'did-sync: setting BATCH_SIZE: must be between 1 and 5000, got -3'],
    [
      { DID_OPTIMIZER_API_URL: 'http://dids.example.com' },
      /^did-sync: setting DID_OPTIMIZER_API_URL: must use https:\/\//,
    ],
    [{ API_KEY: '' }, 'did-sync: setting API_KEY: is required (the DID Optimizer API key)'],
    [{ VICIDIAL_DB_USER: '' }, /^did-sync: setting VICIDIAL_DB_USER: is required/],
    [
      { CAMPAIGNS: "X' OR '1'='1" },
      "did-sync: setting CAMPAIGNS: \"X' OR '1'='1\" is not a valid campaign id",
    ],
  ])('fails at start with one line for %o', async (override, message) => {
    const { code, stderr, stdout } = await cli(['run'], { ...baseEnv, SYNC_ID: 'cli-bad', ...override });
    expect(code).toBe(2);
    expect(stdout).toBe('');
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    if (typeof message === 'string') expect(lines[0]).toBe(message);
    else expect(lines[0]).toMatch(message);
  });

  it('refuses a reset while a run holds the lease, unless forced', async () => {
    const acquired = await h.store.acquire('cli-held', 'someone-else', 60_000, { endEpoch: 1, uniqueid: '' });
    expect(acquired.acquired).toBe(true);
    const env = { ...baseEnv, SYNC_ID: 'cli-held' };
    const refused = await cli(['reset', '--to', '1700000000'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/lease held by someone-else until .*--force/);
    const skipped = await cli(['run'], env);
    expect(skipped.code).toBe(0);
    expect(skipped.stdout).toMatch(/sync cli-held: skipped \(lease_held\)/);
    const forced = await cli(['reset', '--to', '1700000000', '--force'], env);
    expect(forced.code).toBe(0);
  });

  it('check: one line per dependency, exit 0 when none fails, 1 when one does, 2 for a bad setting', async () => {
    const user = 'did_sync_cli_ro';
    const password = 'cli-Passw0rd-value';
    const schema = new URL(h.dbUrl).pathname.slice(1);
    await h.db.query(`DROP USER IF EXISTS '${user}'@'%'`);
    await h.db.query(`CREATE USER '${user}'@'%' IDENTIFIED BY ?`, [password]);
    await h.db.query(`GRANT SELECT ON \`${schema}\`.vicidial_log TO '${user}'@'%'`);
    const end = (await h.dbNow()) - 600;
    await insertCalls(
      h.db,
      Array.from({ length: 5 }, (_, i) => makeCall({ end_epoch: end + i }, 700 + i)),
    );
    const env = { ...baseEnv, SYNC_ID: 'cli-check', VICIDIAL_DB_USER: user, VICIDIAL_DB_PASSWORD: password };
    h.api.reset();
    try {
      const ok = await cli(['check'], env);
      expect(ok.stderr).toBe('');
      expect(ok.code).toBe(0);
      const lines = ok.stdout.trim().split('\n');
      expect(lines[0]).toBe('did-sync check: sync cli-check');
      expect(
        lines.slice(1, -1).map((l) =>
          l
            .trim()
            .split(/\s{2,}/)
            .slice(0, 2),
        ),
      ).toEqual([
        ['pass', 'database'],
        ['pass', 'read-only grant'],
        ['pass', 'vicidial_log'],
        ['pass', 'query plan'],
        ['pass', 'time zone'],
        ['pass', 'API key'],
        ['pass', 'API redirect'],
        ['pass', 'checkpoint table'],
      ]);
      expect(lines.at(-1)).toBe('all checks passed');
      expect(h.api.requests.filter((r) => r.method === 'POST')).toEqual([]);

      const bad = await cli(['check', '--json'], { ...env, API_KEY: 'wrong-key-value' });
      expect(bad.code).toBe(1);
      const report = JSON.parse(bad.stdout);
      expect(report.ok).toBe(false);
      expect(report.checks.apiKey).toEqual({ status: 'fail', message: 'API key rejected (HTTP 401)' });
      expect(bad.stdout + bad.stderr).not.toContain('wrong-key-value');
      expect(bad.stdout + bad.stderr).not.toContain(password);

      const unset = await cli(['check'], { ...env, API_KEY: '' });
      expect(unset.code).toBe(2);
      expect(unset.stderr.trim()).toBe('did-sync: setting API_KEY: is required (the DID Optimizer API key)');
    } finally {
      await h.db.query(`DROP USER IF EXISTS '${user}'@'%'`);
      await h.db.query('TRUNCATE vicidial_log');
    }
  });

  it.each([
    ['2099-01-01T00:00:00Z', /reset refused: to: 2099-01-01T00:00:00.000Z is after the database's clock/],
    ['1990-01-01T00:00:00Z', /reset refused: to: 1990-01-01T00:00:00.000Z is before 2000-01-01/],
    ['1700000000000', /reset refused: to: 1700000000000 looks like milliseconds/],
  ])('refuses reset --to %s with one line and exit 2, writing nothing', async (to, message) => {
    const env = { ...baseEnv, SYNC_ID: 'cli-bad-reset' };
    const { code, stderr } = await cli(['reset', '--to', to], env);
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(message);
    expect(await h.store.read('cli-bad-reset')).toBeUndefined();
  });

  it('refuses a reset it cannot check against the database unless told to use the host clock', async () => {
    const env = { ...baseEnv, SYNC_ID: 'cli-nodb', VICIDIAL_DB_PORT: '1' };
    const refused = await cli(['reset', '--to', '2026-01-01T00:00:00Z'], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      /cannot check the new cursor against the database's clock.*--without-database/,
    );
    const hostChecked = await cli(['reset', '--to', '2026-01-01T00:00:00Z', '--without-database'], env);
    expect(hostChecked.code).toBe(0);
    expect(hostChecked.stdout).toContain('checked against the host clock');
  });

  it('refuses START_FROM in the future before taking the lease', async () => {
    const env = { ...baseEnv, SYNC_ID: 'cli-future', START_FROM: '2099-01-01T00:00:00Z' };
    const { code, stderr } = await cli(['run'], env);
    expect(code).toBe(2);
    expect(stderr).toMatch(
      /^did-sync: setting START_FROM: 2099-01-01T00:00:00.000Z is after the database's clock/,
    );
    expect(await h.store.read('cli-future')).toBeUndefined();
  });

  it('shows a cursor ahead of the database clock as negative lag with a warning', async () => {
    const future = (await h.dbNow()) + 3600;
    await h.store.reset('cli-ahead', { endEpoch: future, uniqueid: '' }, true);
    const { code, stdout } = await cli(['status', '--json'], { ...baseEnv, SYNC_ID: 'cli-ahead' });
    // A cursor ahead of the clock is a problem found: exit 1.
    expect(code).toBe(1);
    const report = JSON.parse(stdout);
    expect(report.clock).toBe('database');
    expect(report.lagSeconds).toBeLessThan(-3500);
    expect(report.warning).toMatch(/ahead of the database clock/);
  });

  it('answers an unknown command before reading any setting, with exit 2', async () => {
    const { code, stderr, stdout } = await cli(['frobnicate'], {});
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.split('\n')[0]).toBe('did-sync: unknown command "frobnicate"');
    expect(stderr).not.toContain('CHECKPOINT_TABLE');
  });
});
