import { Logger } from '@aws-lambda-powertools/logger';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SyncRuntime } from '../functions/lambda/sync-runtime';
import { checkRange } from '../functions/sync/admin/reconcile';
import { type LocalSecretsManager, startLocalSecretsManager } from './support/local-secrets-manager';
import { type Harness, startHarness, TEST_KEY } from './support/sync-harness';

/**
 * The function's manual actions an operator meets in issue 17: reconcile ranges that cannot be meant
 * are refused as answers (not failed invocations), and status shows runs that failed before the scan.
 * Secrets come from the Secrets Manager stand-in over its real wire protocol.
 */

let h: Harness;
let secrets: LocalSecretsManager;
const USER = 'did_sync_actions';
const PASSWORD = 'actions-Passw0rd-value';

beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'actions');
  secrets = await startLocalSecretsManager();
  const schema = new URL(h.dbUrl).pathname.slice(1);
  await h.db.query(`DROP USER IF EXISTS '${USER}'@'%'`);
  await h.db.query(`CREATE USER '${USER}'@'%' IDENTIFIED BY ?`, [PASSWORD]);
  await h.db.query(`GRANT SELECT ON \`${schema}\`.vicidial_log TO '${USER}'@'%'`);
  // The Secrets Manager client reads credentials from the standard chain; the stand-in ignores them.
  process.env.AWS_ACCESS_KEY_ID = 'local';
  process.env.AWS_SECRET_ACCESS_KEY = 'local';
});
afterAll(async () => {
  await h?.db.query(`DROP USER IF EXISTS '${USER}'@'%'`);
  await secrets?.close();
  await h?.close();
});

const context = { getRemainingTimeInMillis: () => 60_000, awsRequestId: 'req-1', functionVersion: '1' };

function runtime(syncId: string, dbPassword = PASSWORD): SyncRuntime {
  const env = h.cliEnv();
  secrets.put(
    `db-${syncId}`,
    JSON.stringify({
      host: env.VICIDIAL_DB_HOST,
      port: Number(env.VICIDIAL_DB_PORT),
      username: USER,
      password: dbPassword,
      dbname: env.VICIDIAL_DB_NAME,
    }),
  );
  return new SyncRuntime(
    {
      CHECKPOINT_TABLE: h.table,
      AWS_REGION: 'us-east-1',
      DYNAMODB_ENDPOINT: h.dynamo.endpoint,
      SECRETS_MANAGER_ENDPOINT: secrets.endpoint,
      DB_SECRET_ARN: `db-${syncId}`,
      SYNCS: JSON.stringify([{ id: syncId, apiSecretArn: `api-${syncId}` }]),
      SETTLE_SECONDS: '0',
      SECRETS_CACHE_TTL_SECONDS: '0',
    },
    { logger: new Logger({ serviceName: 'did-sync-test' }) },
  );
}

describe('the reconcile action', () => {
  it.each([
    ['milliseconds', (now: number) => ({ since: now * 1000 }), /since: \d+ looks like milliseconds/],
    ['the future', (now: number) => ({ since: now + 3600 }), /is after the database's clock/],
    ['an inverted range', (now: number) => ({ since: now - 600, until: now - 1200 }), /must be before until/],
  ])('answers %s with a refusal, not a failed invocation', async (_what, range, message) => {
    secrets.put('api-rec', JSON.stringify({ apiKey: TEST_KEY, apiUrl: h.api.url }));
    const rt = runtime('rec');
    const now = await h.dbNow();
    await h.store.reset('rec', { endEpoch: now - 60, uniqueid: '' }, true);
    const answer = await rt.handle({ action: 'reconcile', syncId: 'rec', ...range(now) }, context);
    expect(answer).toMatchObject({ errorType: 'ReconcileRangeError' });
    expect((answer as { error: string }).error).toMatch(message);
  });
});

describe('status through the function', () => {
  it('shows a run that failed before the scan: the API secret unreadable, then the database refusing', async () => {
    const now = await h.dbNow();
    await h.store.reset('early', { endEpoch: now - 60, uniqueid: '' }, true);
    const before = await h.store.read('early');
    // No API secret at all: the run cannot start.
    await expect(runtime('early').handle({ syncId: 'early' }, context)).rejects.toThrow(/can't find/);
    let status = (await runtime('early').handle({ action: 'status', syncId: 'early' }, context)) as Record<
      string,
      unknown
    >;
    expect(status).toMatchObject({
      healthy: false,
      lastRun: { outcome: 'failed', reason: 'secret_unreadable' },
    });

    secrets.put('api-early', JSON.stringify({ apiKey: TEST_KEY, apiUrl: h.api.url }));
    await expect(runtime('early', 'wrong-password').handle({ syncId: 'early' }, context)).rejects.toThrow(
      /database_error/,
    );
    status = (await runtime('early').handle({ action: 'status', syncId: 'early' }, context)) as Record<
      string,
      unknown
    >;
    expect(status).toMatchObject({ lastRun: { outcome: 'failed', reason: 'database_error' } });
    expect(JSON.stringify(status)).not.toContain('wrong-password');
    // Neither attempt took or disturbed the lease, the fence or the cursor.
    expect(await h.store.read('early')).toEqual(before);

    await runtime('early').handle({ syncId: 'early' }, context);
    status = (await runtime('early').handle({ action: 'status', syncId: 'early' }, context)) as Record<
      string,
      unknown
    >;
    expect(status).toMatchObject({
      healthy: true,
      lastRun: { outcome: 'completed' },
      lastSuccess: { by: 'lambda' },
    });
  });
});

describe('checkRange', () => {
  const ctx = { now: 1_800_000_000, cursor: 1_799_999_000, ledgerSince: 1_799_800_000, ledgerDays: 8 };
  it('narrows to the ledger start and to unexpired ledger hours, with a note each', () => {
    expect(checkRange({ since: 1_799_700_000 }, ctx)).toEqual({
      since: 1_799_800_000,
      until: 1_799_999_000,
      notes: [expect.stringMatching(/ledger start/)],
    });
    const old = { ...ctx, ledgerSince: 1_700_000_000 };
    const r = checkRange({ since: 1_700_000_000 }, old);
    expect(r.since).toBe(Math.floor((ctx.now - 8 * 86_400) / 3600) * 3600 + 3600);
    expect(r.notes.join(' ')).toMatch(/LEDGER_DAYS=8/);
  });
  it('refuses a start at or after the cursor', () => {
    expect(() => checkRange({ since: ctx.cursor }, ctx)).toThrow(/at or after the sync's cursor/);
  });
});
