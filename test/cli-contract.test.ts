import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { COMMANDS, parseCommandLine } from '../functions/cli/commands';
import { type LocalSecretsManager, startLocalSecretsManager } from './support/local-secrets-manager';
import { insertCalls, makeCall } from './support/sample-calls';
import { type Harness, startHarness, TEST_KEY } from './support/sync-harness';

/**
 * The command line as a script and an operator meet it: through real pipes, with the settings they
 * would give, against the real parts. Each row of issue 17's table is a case here.
 */

const ROOT = join(import.meta.dirname, '..');
const CLI = join(ROOT, 'bin', 'did-sync.js');

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string>, stdoutFile?: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const fd = stdoutFile ? openSync(stdoutFile, 'w') : undefined;
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: mkdtempSync(join(tmpdir(), 'did-sync-contract-')),
      env: {
        PATH: process.env.PATH,
        POWERTOOLS_LOG_LEVEL: 'INFO',
        // On a Node older than 22 (a local run outside CI) the command's one-line note would be in stderr.
        DID_SYNC_QUIET_NODE_NOTE: '1',
        ...env,
      },
      stdio: ['ignore', fd ?? 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => {
      stdout += d;
    });
    child.stderr?.on('data', (d) => {
      stderr += d;
    });
    child.on('close', (code) => {
      if (fd !== undefined) {
        closeSync(fd);
        stdout = readFileSync(stdoutFile as string, 'utf8');
      }
      resolve({ code, stdout, stderr });
    });
  });
}

/** stderr without the structured log lines: what a person reads. */
const said = (stderr: string) =>
  stderr
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('{'))
    .join('\n');

let h: Harness;
let env: Record<string, string>;
let secrets: LocalSecretsManager;

beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'contract');
  secrets = await startLocalSecretsManager();
  env = h.cliEnv();
});
afterAll(async () => {
  await secrets?.close();
  await h?.close();
});

const REJECTION = '{"success":false,"error":"campaign RETENT is not configured"}';

async function putLetters(syncId: string, n: number, campaignId = 'RETENT'): Promise<void> {
  for (let i = 0; i < n; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, n - i) }, (_, j) =>
        h.store.putDeadLetter({
          syncId,
          uniqueid: `1796000000.${i + j}`,
          reason: 'rejected by the API: HTTP 422',
          httpStatus: 422,
          responseExcerpt: REJECTION,
          payload: JSON.stringify({ uniqueid: `1796000000.${i + j}`, campaignId, phoneNumber: '5550001111' }),
          endEpoch: 1796000000,
          campaignId,
          createdAt: '2026-11-30T10:00:00.000Z',
          attempts: 1,
          expiresAt: null,
        }),
      ),
    );
  }
}

describe('--json is a contract', () => {
  it('writes one complete document over 64 KB through a pipe and to a file; text groups by reason and campaign', async () => {
    await putLetters('big', 984);
    const e = { ...env, SYNC_ID: 'big' };
    const piped = await cli(['dead-letters', '--json'], e);
    expect(piped.code).toBe(0);
    expect(piped.stdout.length).toBeGreaterThan(65_536);
    expect(JSON.parse(piped.stdout)).toHaveLength(984);

    const file = join(mkdtempSync(join(tmpdir(), 'did-sync-out-')), 'out.json');
    const toFile = await cli(['dead-letters', '--json'], e, file);
    expect(JSON.parse(toFile.stdout)).toHaveLength(984);

    const text = await cli(['dead-letters'], e);
    expect(text.code).toBe(0);
    const lines = text.stdout.split('\n');
    expect(lines[0]).toBe('984 dead letter(s) for sync big, in 1 group(s) by reason and campaign');
    expect(lines[1]).toMatch(/^ {3}984 {2}rejected by the API: HTTP 422 {2}campaign RETENT/);
    expect(lines[2]).toBe(`        the API answered: ${REJECTION}`);
    expect(lines.length).toBeLessThan(10);
  });

  it('keeps logs off stdout for every command (reconcile included)', async () => {
    const end = (await h.dbNow()) - 900;
    await insertCalls(
      h.db,
      Array.from({ length: 5 }, (_, i) => makeCall({ end_epoch: end + i }, 5000 + i)),
    );
    const e = { ...env, SYNC_ID: 'quiet', START_FROM: String(end - 60) };
    expect((await cli(['run', '--json'], e)).code).toBe(0);
    for (const args of [
      ['status', '--json'],
      ['reconcile', '--since', String(end - 60), '--json'],
      ['check', '--json'],
    ]) {
      const r = await cli(args, e);
      expect(() => JSON.parse(r.stdout), args.join(' ')).not.toThrow();
    }
  });
});

describe('usage', () => {
  it.each(COMMANDS.map((c) => c.name))(
    'did-sync %s --help prints its own usage, reading no setting',
    async (name) => {
      const r = await cli([name, '--help'], {});
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.stdout.split('\n')[0]).toMatch(new RegExp(`^usage: did-sync ${name}\\b`));
    },
  );

  it('runs every command example of the README through the parser', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const examples = [...readme.matchAll(/^(?:\$ )?(?:npx )?did-sync ([a-z-]+(?: .*)?)$/gm)].map((m) =>
      (m[1] as string).replace(/\s+#.*$/, ''),
    );
    expect(examples.length).toBeGreaterThan(10);
    for (const example of examples) {
      const argv = [...example.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? (m[2] as string));
      expect(() => parseCommandLine(argv), example).not.toThrow();
    }
    for (const c of COMMANDS) expect(readme, c.name).toContain(`did-sync ${c.name}`);
  });
});

describe('the sync the CLI acts on', () => {
  it('is never a silent default; SYNCS and DB_SECRET_ARN are read as the Lambda reads them', async () => {
    const required = await cli(['status'], env);
    expect(required.code).toBe(2);
    expect(required.stderr.trim()).toMatch(/^did-sync: setting SYNC_ID: is required/);

    const two = JSON.stringify([
      { id: 'east', apiSecretArn: 'api-east' },
      { id: 'west', apiSecretArn: 'api-west' },
    ]);
    const several = await cli(['status'], { ...env, SYNCS: two, DB_SECRET_ARN: 'db' });
    expect(several.code).toBe(2);
    expect(several.stderr).toContain('SYNCS lists 2 syncs (east, west)');

    // The function's own environment: secrets instead of VICIDIAL_DB_* and API_KEY.
    // A secret in the shape of Secrets Manager's MySQL rotation, for a read-only user of its own.
    const schema = new URL(h.dbUrl).pathname.slice(1);
    await h.db.query("DROP USER IF EXISTS 'did_sync_fn'@'%'");
    await h.db.query("CREATE USER 'did_sync_fn'@'%' IDENTIFIED BY 'fn-Passw0rd-value'");
    await h.db.query(`GRANT SELECT ON \`${schema}\`.vicidial_log TO 'did_sync_fn'@'%'`);
    secrets.put(
      'db-secret',
      JSON.stringify({
        host: env.VICIDIAL_DB_HOST,
        port: Number(env.VICIDIAL_DB_PORT),
        username: 'did_sync_fn',
        password: 'fn-Passw0rd-value',
        dbname: env.VICIDIAL_DB_NAME,
      }),
    );
    secrets.put('api-fn', JSON.stringify({ apiKey: TEST_KEY, apiUrl: h.api.url }));
    const fnEnv: Record<string, string> = {
      CHECKPOINT_TABLE: h.table,
      DYNAMODB_ENDPOINT: h.dynamo.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      SECRETS_MANAGER_ENDPOINT: secrets.endpoint,
      DB_SECRET_ARN: 'db-secret',
      SYNCS: JSON.stringify([
        { id: 'fn', apiSecretArn: 'api-fn', startFrom: String((await h.dbNow()) - 60) },
      ]),
      SETTLE_SECONDS: '0',
    };
    const run = await cli(['run', '--json'], fnEnv);
    expect(said(run.stderr)).toContain('sync "fn" had no checkpoint yet');
    expect(JSON.parse(run.stdout)).toMatchObject({ syncId: 'fn', outcome: 'completed' });
    const status = JSON.parse((await cli(['status', '--json'], fnEnv)).stdout);
    expect(status).toMatchObject({ syncId: 'fn', exists: true, clock: 'database' });

    // An existing `default` checkpoint keeps working, with a notice.
    await h.store.reset('default', { endEpoch: (await h.dbNow()) - 60, uniqueid: '' }, true);
    const fallback = await cli(['status', '--json'], env);
    expect(JSON.parse(fallback.stdout).syncId).toBe('default');
    expect(said(fallback.stderr)).toContain('SYNC_ID=default');
  });
});

describe('reconcile refuses what cannot be meant', () => {
  let e: Record<string, string>;
  let now: number;
  beforeAll(async () => {
    now = await h.dbNow();
    e = { ...env, SYNC_ID: 'rec', START_FROM: String(now - 1800) };
    expect((await cli(['run'], e)).code).toBe(0);
  });

  it.each([
    [
      'milliseconds',
      () => ['--since', String(now * 1000)],
      /reconcile refused: since: \d+ looks like milliseconds/,
    ],
    [
      'the future',
      () => ['--since', String(now + 3600)],
      /reconcile refused: since: .* is after the database's clock/,
    ],
    [
      'an inverted range',
      () => ['--since', String(now - 600), '--until', String(now - 1200)],
      /must be before until/,
    ],
  ])('refuses %s with one line and exit 2', async (_what, args, message) => {
    const r = await cli(['reconcile', ...args()], e);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(said(r.stderr).split('\n')[0]).toMatch(message);
  });

  it('says when the range was narrowed to the ledger start, in the report and on stderr', async () => {
    const r = await cli(['reconcile', '--since', String(now - 7200), '--json'], e);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.notes[0]).toMatch(/since narrowed to the ledger start/);
    expect(report.requested.since).toBe(new Date((now - 7200) * 1000).toISOString());
    expect(said(r.stderr)).toContain('note: since narrowed to the ledger start');
  });

  it('never reports calls of expired ledger hours (LEDGER_DAYS) as missing', async () => {
    const old = now - 10 * 86_400;
    await h.store.reset('rec-old', { endEpoch: old, uniqueid: '' }, true);
    const eo = { ...env, SYNC_ID: 'rec-old' };
    expect((await cli(['run'], eo)).code).toBe(0);
    // A call 9 days old the ledger cannot know (its hour expired after LEDGER_DAYS=8).
    await insertCalls(h.db, [makeCall({ end_epoch: now - 9 * 86_400 }, 7777)]);
    const r = await cli(['reconcile', '--since', String(old + 60), '--json'], eo);
    const report = JSON.parse(r.stdout);
    expect(report.notes.join(' ')).toMatch(/ledger hours before it have expired \(LEDGER_DAYS=8\)/);
    expect(report.missing).toBe(0);
  });
});

describe('status answers "is it healthy, and if not why"', () => {
  it('records a run the database refused, without touching the checkpoint, and says why in text', async () => {
    const e = { ...env, SYNC_ID: 'pw', START_FROM: String((await h.dbNow()) - 60) };
    expect((await cli(['run'], e)).code).toBe(0);
    const before = await h.store.read('pw');
    const bad = await cli(['run'], { ...e, VICIDIAL_DB_PASSWORD: 'wrong-password-value' });
    expect(bad.code).toBe(1);
    const db = new URL(h.dbUrl);
    expect(said(bad.stderr)).toContain(`did-sync: run failed: database ${db.hostname}:${db.port}:`);
    expect(bad.stderr + bad.stdout).not.toContain('wrong-password-value');
    const after = await h.store.read('pw');
    expect({ ...after, lastRun: null }).toEqual({ ...before, lastRun: null });

    const status = await cli(['status'], e);
    expect(status.code).toBe(1);
    expect(status.stdout).toContain('NEEDS A LOOK');
    expect(status.stdout).toMatch(/last run {5}failed \(database_error\) at .*Access denied/);
    expect(status.stdout).toMatch(/last success completed at /);
    expect(status.stdout).toMatch(/queued {7}0/);
  });

  it('warns when the database clock is unavailable', async () => {
    const e = { ...env, SYNC_ID: 'pw', VICIDIAL_DB_PORT: '1' };
    const status = await cli(['status', '--json'], e);
    const report = JSON.parse(status.stdout);
    expect(report.clock).toBe('host');
    expect(report.warnings.join(' ')).toMatch(/the database clock is unavailable/);
  });
});

describe('errors name the part', () => {
  let silent: Server;
  afterAll(() => silent?.close());

  it('DynamoDB, a database port that never answers, a wrong API key', async () => {
    const dynamo = await cli(['status'], { ...env, SYNC_ID: 'x', DYNAMODB_ENDPOINT: 'http://127.0.0.1:1' });
    expect(dynamo.code).toBe(1);
    expect(said(dynamo.stderr)).toMatch(
      /checkpoint table did-sync-test \(DynamoDB http:\/\/127\.0\.0\.1:1\)/,
    );

    silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const hung = await cli(['run'], {
      ...env,
      SYNC_ID: 'hung',
      VICIDIAL_DB_PORT: String(port),
      DB_QUERY_TIMEOUT_MS: '1000',
    });
    expect(hung.code).toBe(1);
    expect(said(hung.stderr)).toContain(`database 127.0.0.1:${port}`);

    const end = (await h.dbNow()) - 300;
    await insertCalls(h.db, [makeCall({ end_epoch: end }, 8100)]);
    const key = await cli(['run'], {
      ...env,
      SYNC_ID: 'key',
      START_FROM: String(end - 10),
      API_KEY: 'nope-key',
    });
    expect(key.code).toBe(1);
    expect(said(key.stderr)).toContain('API key from API_KEY refused');
    expect(key.stderr + key.stdout).not.toContain('nope-key');
  });

  it('check on a table that does not exist says how to create it; init-table creates it', async () => {
    const e = { ...env, SYNC_ID: 'fresh', CHECKPOINT_TABLE: 'fresh-table' };
    const before = await cli(['check'], e);
    expect(before.code).toBe(1);
    expect(before.stdout).toContain('did-sync init-table');
    const init = await cli(['init-table'], e);
    expect(init.code).toBe(0);
    expect(init.stdout).toMatch(/^table fresh-table: created/);
    const again = await cli(['init-table', '--json'], e);
    expect(JSON.parse(again.stdout)).toMatchObject({ created: false, ok: true });
  });
});

describe('did-sync trace <uniqueid>', () => {
  it('tells a delivered, a followed, a parked, a dead-lettered and a never-seen call apart', async () => {
    const end = (await h.dbNow()) - 600;
    const calls = {
      delivered: makeCall({ end_epoch: end, campaign_id: 'TRACE' }, 9001),
      followed: makeCall({ end_epoch: end + 1, campaign_id: 'TRACE', status: 'DISPO' }, 9002),
      parked: makeCall({ end_epoch: end + 2, campaign_id: 'TRACE' }, 9003),
      dead: makeCall({ end_epoch: end + 3, campaign_id: 'TRACEDL' }, 9004),
    };
    await insertCalls(h.db, Object.values(calls));
    // The stand-in holds one fault rule at a time: the parked call in one sync, the rejected in another.
    h.api.failWhen((b) => b.uniqueid === calls.parked.uniqueid, { status: 503 });
    const e = {
      ...env,
      SYNC_ID: 'trace',
      START_FROM: String(end - 10),
      CAMPAIGNS: 'TRACE',
      API_MAX_ATTEMPTS: '2',
    };
    await cli(['run'], e);
    h.api.failWhen((b) => b.uniqueid === calls.dead.uniqueid, { status: 422, body: REJECTION });
    const ed = { ...e, SYNC_ID: 'trace-dl', CAMPAIGNS: 'TRACEDL' };
    await cli(['run'], ed);
    h.api.failWhen(() => true, null);
    const trace = async (uid: string, on = e) => {
      const r = await cli(['trace', uid, '--json'], on);
      return { code: r.code, report: JSON.parse(r.stdout) };
    };
    const delivered = await trace(calls.delivered.uniqueid);
    expect(delivered.report.verdict).toBe('delivered');
    expect(delivered.report.ledgerHour).toBe(new Date(Math.floor(end / 3600) * 3600 * 1000).toISOString());
    expect(delivered.code).toBe(0);
    expect((await trace(calls.followed.uniqueid)).report.verdict).toBe('followed');
    const parked = await trace(calls.parked.uniqueid);
    expect(parked.report).toMatchObject({ verdict: 'parked', parked: { lastStatus: 503 } });
    const dead = await trace(calls.dead.uniqueid, ed);
    expect(dead.report.verdict).toBe('dead_lettered');
    expect(dead.report.summary).toContain('campaign RETENT is not configured');
    expect(dead.code).toBe(1);
    const never = await trace('1111111111.1');
    expect(never.report.verdict).toBe('never_seen');
    expect(never.code).toBe(1);
    const text = await cli(['trace', calls.dead.uniqueid], ed);
    expect(text.stdout.split('\n')[0]).toBe(`call ${calls.dead.uniqueid} (sync trace-dl): dead lettered`);
  });

  it('replays only the dead letters the filters name', async () => {
    await putLetters('filtered', 3, 'ONE');
    await h.store.putDeadLetter({
      syncId: 'filtered',
      uniqueid: '1796000001.1',
      reason: 'invalid row: phoneNumber is missing',
      httpStatus: null,
      responseExcerpt: null,
      payload: null,
      endEpoch: 1796000001,
      campaignId: 'TWO',
      createdAt: '2026-11-30T10:00:00.000Z',
      attempts: 1,
      expiresAt: null,
    });
    await h.store.reset('filtered', { endEpoch: (await h.dbNow()) - 60, uniqueid: '' }, true);
    const e = { ...env, SYNC_ID: 'filtered' };
    const r = await cli(['dead-letters', '--replay', '--campaign', 'TWO', '--json'], e);
    expect(JSON.parse(r.stdout)).toMatchObject({ total: 1, stillRejected: 1 });
    const listed = await cli(['dead-letters', '--json', '--reason', '422'], e);
    expect(JSON.parse(listed.stdout)).toHaveLength(3);
  });
});

describe('Node', () => {
  it('prints no AWS SDK NodeVersionSupportWarning', async () => {
    const r = await cli(['status'], { ...env, SYNC_ID: 'pw' });
    expect(r.stderr).not.toContain('NodeVersionSupportWarning');
  });
});
