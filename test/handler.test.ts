import {
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it, vi } from 'vitest';
import { createHandler } from '../functions/handler';
import type { RunSummary } from '../functions/sync/run/engine';
import { CheckpointStore } from '../functions/sync/state/checkpoint-store';
import { createDynamoClient } from '../functions/sync/wiring';
import { insertCalls, makeCall } from './support/sample-calls';
import { type Harness, startHarness } from './support/sync-harness';

const DB_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:did-sync/db-AbCdEf';
const API_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:did-sync/api-main-AbCdEf';
const OTHER_API_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:did-sync/api-other-AbCdEf';
const DB_USER = 'did_sync_ro';

let h: Harness;
let dbName: string;
let dbPassword = 'first-Passw0rd-value';
const secrets = mockClient(SecretsManagerClient);
const secretValues = new Map<string, string>();
let output = '';
let table = '';
let store: CheckpointStore;
let tables = 0;

function context(remainingMs = 60_000): Context {
  return {
    awsRequestId: `req-${Math.random().toString(16).slice(2)}`,
    functionVersion: '7',
    functionName: 'did-sync',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:did-sync',
    memoryLimitInMB: '512',
    getRemainingTimeInMillis: () => remainingMs,
  } as unknown as Context;
}

function dbSecret(password: string): string {
  const url = new URL(h.dbUrl);
  return JSON.stringify({
    engine: 'mariadb',
    host: url.hostname,
    port: Number(url.port),
    username: DB_USER,
    password,
    dbname: dbName,
  });
}

function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    CHECKPOINT_TABLE: table,
    AWS_REGION: 'us-east-1',
    DYNAMODB_ENDPOINT: h.dynamo.endpoint,
    DB_SECRET_ARN: DB_ARN,
    SYNCS: JSON.stringify([
      { id: 'main', apiSecretArn: API_ARN, startFrom: String(Math.floor(Date.now() / 1000) - 3600) },
      { id: 'other', apiSecretArn: OTHER_API_ARN, campaigns: ['RETENT'] },
    ]),
    POWERTOOLS_LOG_LEVEL: 'INFO',
    ...extra,
  };
}

beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'handler');
  dbName = new URL(h.dbUrl).pathname.slice(1);
  // The read-only user the README documents: SELECT on vicidial_log and nothing else.
  await h.db.query(`DROP USER IF EXISTS '${DB_USER}'@'%'`);
  await h.db.query(`CREATE USER '${DB_USER}'@'%' IDENTIFIED BY ?`, [dbPassword]);
  await h.db.query(`GRANT SELECT ON \`${dbName}\`.vicidial_log TO '${DB_USER}'@'%'`);
});
afterAll(async () => {
  await h?.db.query(`DROP USER IF EXISTS '${DB_USER}'@'%'`);
  await h?.close();
  secrets.restore();
});
beforeEach(async () => {
  // A table per test: each starts without checkpoints.
  table = `handler-${++tables}`;
  store = new CheckpointStore(
    createDynamoClient({ table, region: 'us-east-1', endpoint: h.dynamo.endpoint }),
    table,
  );
  await store.ensureTable();
  secretValues.clear();
  secretValues.set(`AWSCURRENT:${DB_ARN}`, dbSecret(dbPassword));
  secretValues.set(`AWSCURRENT:${API_ARN}`, JSON.stringify({ apiKey: 'test-key', apiUrl: h.api.url }));
  secretValues.set(`AWSCURRENT:${OTHER_API_ARN}`, JSON.stringify({ apiKey: 'test-key', apiUrl: h.api.url }));
  secrets.reset();
  secrets.on(GetSecretValueCommand).callsFake((input: { SecretId: string; VersionStage?: string }) => {
    const value = secretValues.get(`${input.VersionStage ?? 'AWSCURRENT'}:${input.SecretId}`);
    if (value === undefined) {
      throw new ResourceNotFoundException({
        message: "Secrets Manager can't find the specified secret value",
        $metadata: {},
      });
    }
    return { SecretString: value };
  });
  output = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    output += String(chunk);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    output += String(chunk);
    return true;
  });
});
afterEach(async () => {
  vi.restoreAllMocks();
  await h.db.query('TRUNCATE vicidial_log');
  h.api.reset();
});

async function someCalls(n: number, campaign = 'SALESA') {
  const end = (await h.dbNow()) - 120;
  await insertCalls(
    h.db,
    Array.from({ length: n }, (_, i) =>
      makeCall({ end_epoch: end + (i % 5), campaign_id: campaign }, i + (campaign === 'SALESA' ? 0 : 1000)),
    ),
  );
}

/**
 * Calls that end just after the last run's checkpoint: at its cursor, which SETTLE_SECONDS (30, the
 * default) keeps that far behind the database clock, so the next run reads them without waiting.
 */
async function endNow(n: number, seq = 500, syncId = 'main') {
  await new Promise((r) => setTimeout(r, 1100));
  const cursor = (await store.read(syncId))?.cursor;
  const end = cursor ? cursor.endEpoch + (cursor.uniqueid === '' ? 0 : 1) : (await h.dbNow()) - 60;
  await insertCalls(
    h.db,
    Array.from({ length: n }, (_, i) => makeCall({ end_epoch: end }, seq + 100 + i)),
  );
}

function secretsNeverIn(text: string) {
  expect(text).not.toContain(dbPassword);
  expect(text).not.toContain('first-Passw0rd');
  expect(text).not.toContain('rotated-Passw0rd');
  expect(text).not.toContain('test-key');
  expect(text).not.toContain('new-api-key');
}

describe('scheduled runs', () => {
  it('runs the sync named by the schedule and logs with the request id and version', async () => {
    await someCalls(25);
    const handler = createHandler(env());
    const summary = (await handler({ syncId: 'main' }, context())) as RunSummary;
    expect(summary).toMatchObject({ syncId: 'main', outcome: 'completed', delivered: 25 });
    expect(h.api.stored.size).toBe(25);
    const lines = output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l));
    const runEnd = lines.find((l) => l.event === 'run_end');
    expect(runEnd).toMatchObject({ syncId: 'main', functionVersion: '7', outcome: 'completed' });
    expect(runEnd.function_request_id).toMatch(/^req-/);
    secretsNeverIn(output + JSON.stringify(summary));
  });

  it("applies the sync's own campaign list", async () => {
    await someCalls(5, 'SALESA');
    await someCalls(3, 'RETENT');
    const handler = createHandler(env());
    const summary = (await handler({ syncId: 'other' }, context())) as RunSummary;
    expect(summary.delivered).toBe(3);
  });

  it('fails a scheduled invocation whose run failed, so the Errors alarm sees it', async () => {
    await someCalls(3);
    h.api.failWhen(() => true, { status: 503 });
    const handler = createHandler(env({ API_MAX_ATTEMPTS: '1' }));
    await expect(handler({ syncId: 'main' }, context())).rejects.toThrow(
      /sync "main" failed: api_unavailable/,
    );
  });
});

/** The CloudWatch Embedded Metric Format blobs printed to stdout. */
function emfBlobs(): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => '_aws' in l);
}

describe('run metrics', () => {
  interface Emf {
    _aws: {
      CloudWatchMetrics: {
        Namespace: string;
        Dimensions: string[][];
        Metrics: { Name: string; Unit: string }[];
      }[];
    };
    [key: string]: unknown;
  }

  it('prints one EMF blob per run with the syncId dimension and the run counts', async () => {
    await someCalls(25);
    await insertCalls(h.db, [
      makeCall({ end_epoch: (await h.dbNow()) - 100, phone_number: null, uniqueid: '1700000200.1' }, 88),
    ]);
    const handler = createHandler(env());
    const summary = (await handler({ syncId: 'main' }, context())) as RunSummary;
    expect(summary).toMatchObject({ delivered: 25, deadLettered: 1 });
    const blobs = emfBlobs() as unknown as Emf[];
    expect(blobs).toHaveLength(1);
    const blob = blobs[0] as Emf;
    const [directive] = blob._aws.CloudWatchMetrics;
    expect(directive?.Namespace).toBe('DidSync');
    expect(directive?.Dimensions).toEqual([['syncId']]);
    expect(blob.syncId).toBe('main');
    expect(directive?.Metrics.map((m) => m.Name).sort()).toEqual(
      [
        'CallsDelivered',
        'CallsDeadLettered',
        'CallsRetried',
        'CallsAmbiguous',
        'CallsParked',
        'CallsPending',
        'CallsMissing',
        'CallsQueued',
        'SyncLagSeconds',
        'RunDurationMs',
        'RunsCompleted',
        'RunsPartial',
        'RunsFailed',
        'RunsSkipped',
        'ApiAuthFailures',
        ...('concurrency' in summary ? ['Concurrency'] : []),
      ].sort(),
    );
    expect(directive?.Metrics).toContainEqual({ Name: 'SyncLagSeconds', Unit: 'Seconds' });
    expect(directive?.Metrics).toContainEqual({ Name: 'RunDurationMs', Unit: 'Milliseconds' });
    expect(blob).toMatchObject({
      CallsDelivered: 25,
      CallsDeadLettered: 1,
      CallsRetried: 0,
      CallsPending: 0,
      RunsCompleted: 1,
      RunsPartial: 0,
      RunsFailed: 0,
      RunsSkipped: 0,
      ApiAuthFailures: 0,
      SyncLagSeconds: summary.lagSeconds,
      RunDurationMs: summary.durationMs,
    });
    expect(blob).not.toHaveProperty('service');

    // The next run of the warm container is a blob of its own, and nothing else prints one.
    output = '';
    await handler({ action: 'status', syncId: 'main' }, context());
    expect(emfBlobs()).toHaveLength(0);
    expect(output).not.toContain('No application metrics');
  });

  it('counts a failed scheduled run and a refused key, under POWERTOOLS_METRICS_NAMESPACE', async () => {
    await someCalls(3);
    h.api.setValidKeys(['another-key']);
    const handler = createHandler(env({ POWERTOOLS_METRICS_NAMESPACE: 'DidSyncTest' }));
    await expect(handler({ syncId: 'main' }, context())).rejects.toThrow(/failed: api_auth/);
    const [blob] = emfBlobs() as unknown as Emf[];
    expect(blob?._aws.CloudWatchMetrics[0]?.Namespace).toBe('DidSyncTest');
    expect(blob).toMatchObject({
      syncId: 'main',
      RunsFailed: 1,
      RunsCompleted: 0,
      ApiAuthFailures: 1,
      CallsDelivered: 0,
    });
  });

  it('records no metrics for a dry run, which delivers nothing', async () => {
    await someCalls(4);
    const handler = createHandler(env());
    await handler({ action: 'sync', syncId: 'main', dryRun: true }, context());
    expect(emfBlobs()).toHaveLength(0);
  });
});

describe('the function timeout', () => {
  it('ends a run with at least 3 s left when the API never answers', async () => {
    await someCalls(20);
    h.api.failWhen(() => true, { hang: true });
    const handler = createHandler(env());
    const remainingMs = 9_000;
    const ctx = context(remainingMs);
    const started = Date.now();
    const summary = (await handler({ action: 'sync', syncId: 'main' }, ctx)) as RunSummary;
    const left = remainingMs - (Date.now() - started);
    expect(summary).toMatchObject({ outcome: 'partial', reason: 'time_budget', delivered: 0 });
    expect(left).toBeGreaterThanOrEqual(3_000);
    expect((await store.read('main'))?.lease).toBeNull();
  }, 30_000);

  it('refuses a reset into the future with an answer naming the field, not a failed invocation', async () => {
    await someCalls(1);
    const handler = createHandler(env());
    const answer = await handler({ action: 'reset', syncId: 'main', to: '2099-01-01T00:00:00Z' }, context());
    expect(answer).toEqual({
      error: expect.stringMatching(/to: 2099-01-01T00:00:00.000Z is after the database's clock/),
      errorType: 'ResetRefusedError',
    });
    expect(await store.read('main')).toBeUndefined();
  });

  it('answers a reset refused while a run holds the lease, naming the holder', async () => {
    await store.acquire('main', 'lambda:other-request', 60_000, { endEpoch: 1_700_000_000, uniqueid: '' });
    const handler = createHandler(env());
    const answer = await handler({ action: 'reset', syncId: 'main', to: '2026-01-01T00:00:00Z' }, context());
    expect(answer).toEqual({
      error: expect.stringMatching(/lease held by lambda:other-request/),
      errorType: 'LeaseHeldError',
    });
  });
});

describe('manual invocations', () => {
  it('answers sync, status, reset and dead-letters with JSON results', async () => {
    await someCalls(4);
    await insertCalls(h.db, [
      makeCall({ end_epoch: (await h.dbNow()) - 100, phone_number: null, uniqueid: '1700000100.1' }, 77),
    ]);
    const handler = createHandler(env());

    const dry = (await handler({ action: 'sync', syncId: 'main', dryRun: true }, context())) as RunSummary;
    expect(dry).toMatchObject({ dryRun: true, delivered: 4, deadLettered: 1 });
    expect(h.api.requestCount).toBe(0);

    const run = (await handler({ action: 'sync', syncId: 'main', maxBatches: 5 }, context())) as RunSummary;
    expect(run).toMatchObject({ outcome: 'completed', delivered: 4, deadLettered: 1 });

    const status = (await handler({ action: 'status', syncId: 'main' }, context())) as Record<
      string,
      unknown
    >;
    expect(status).toMatchObject({ syncId: 'main', lease: null, pending: 0, deadLetters: 1 });

    const letters = (await handler({ action: 'dead-letters', syncId: 'main' }, context())) as {
      total: number;
      deadLetters: { uniqueid: string }[];
    };
    expect(letters.total).toBe(1);
    expect(letters.deadLetters[0]?.uniqueid).toBe('1700000100.1');

    await h.db.query("UPDATE vicidial_log SET phone_number = '5551112222' WHERE uniqueid = '1700000100.1'");
    const replay = await handler({ action: 'dead-letters', syncId: 'main', replay: true }, context());
    expect(replay).toMatchObject({ total: 1, delivered: 1 });

    const reset = (await handler(
      { action: 'reset', syncId: 'main', to: '2026-01-01T00:00:00Z' },
      context(),
    )) as Record<string, unknown>;
    expect(reset).toMatchObject({ cursor: { endEpoch: 1767225600, uniqueid: '' } });
  });

  it('answers the check action with one field per dependency, and posts nothing', async () => {
    await someCalls(5);
    const handler = createHandler(env());
    const report = (await handler({ action: 'check', syncId: 'main' }, context())) as {
      ok: boolean;
      checks: Record<string, { status: string; message: string }>;
    };
    expect(Object.entries(report.checks).map(([name, r]) => `${name}: ${r.status}`)).toEqual([
      'database: pass',
      'grants: pass',
      'table: pass',
      'queryPlan: pass',
      'timeZone: pass',
      'apiKey: pass',
      'apiRedirect: pass',
      'checkpointTable: pass',
    ]);
    expect(report.ok).toBe(true);
    expect(h.api.requests.filter((r) => r.method === 'POST')).toEqual([]);

    // A key refused by the API: the check reads the secret afresh, and reports the refusal.
    secretValues.set(`AWSCURRENT:${API_ARN}`, JSON.stringify({ apiKey: 'old-api-key', apiUrl: h.api.url }));
    const refused = (await handler({ action: 'check', syncId: 'main' }, context())) as typeof report;
    expect(refused.ok).toBe(false);
    expect(refused.checks.apiKey).toEqual({ status: 'fail', message: 'API key rejected (HTTP 401)' });
    secretsNeverIn(output + JSON.stringify(report) + JSON.stringify(refused));
    expect(JSON.stringify(refused)).not.toContain('old-api-key');
  });

  it.each([
    [{}, /syncId/],
    [{ syncId: 'main', extra: 1 }, /invalid invocation/],
    [{ syncId: 'nope' }, /invalid invocation: syncId: unknown sync "nope"/],
  ])('fails an invalid scheduled event %o (a deployment bug: it alarms)', async (event, message) => {
    await someCalls(2);
    const handler = createHandler(env());
    await expect(handler(event, context())).rejects.toThrow(message);
    expect(h.api.requestCount).toBe(0);
    expect(await store.read('main')).toBeUndefined();
  });

  it.each([
    [{ action: 'explode', syncId: 'main' }, /invalid invocation: action/],
    [{ action: 'sync' }, /invalid invocation: syncId/],
    [{ action: 'sync', syncId: 'main', maxBatches: -1 }, /invalid invocation: maxBatches/],
    [{ action: 'reset', syncId: 'main' }, /invalid invocation: to/],
    [{ action: 'reset', syncId: 'main', to: 'last tuesday' }, /invalid invocation: to: "last tuesday"/],
    [{ action: 'status', syncId: 'nope' }, /unknown sync "nope"/],
    ['just a string', /invalid invocation/],
  ])(
    'answers an invalid manual event %o with an error object, not a failed invocation',
    async (event, message) => {
      await someCalls(2);
      const handler = createHandler(env());
      const answer = (await handler(event, context())) as { error: string; errorType: string };
      expect(answer).toEqual({ error: expect.stringMatching(message), errorType: 'InvalidInvocationError' });
      expect(h.api.requestCount).toBe(0);
      expect(await store.read('main')).toBeUndefined();
      const logged = output
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l));
      expect(logged.find((l) => l.event === 'invalid_invocation')).toMatchObject({ level: 'WARN' });
    },
  );

  it('names the setting when the function is misconfigured', async () => {
    const handler = createHandler(env({ SYNCS: '[{"id":"main"}]' }));
    await expect(handler({ syncId: 'main' }, context())).rejects.toThrow(/^SYNCS\[0\]\.apiSecretArn: /);
    const bad = createHandler(env({ BATCH_SIZE: 'lots' }));
    await expect(bad({ syncId: 'main' }, context())).rejects.toThrow(
      'BATCH_SIZE (sync "main"): must be a whole number, got "lots"',
    );
  });
});

describe('secret rotation without a redeploy', () => {
  it('recovers when the database password is rotated between two warm invocations', async () => {
    const handler = createHandler(env());
    await someCalls(10);
    expect(((await handler({ syncId: 'main' }, context())) as RunSummary).delivered).toBe(10);

    // Rotation: the database gets the new password, then the secret; the warm container still caches the old one.
    dbPassword = 'rotated-Passw0rd-value';
    await h.db.query(`ALTER USER '${DB_USER}'@'%' IDENTIFIED BY ?`, [dbPassword]);
    await h.db
      .query(`SELECT CONCAT('KILL ', id) FROM information_schema.processlist WHERE user = '${DB_USER}'`)
      .then(async ([rows]) => {
        for (const row of rows as Record<string, string>[])
          await h.db.query(Object.values(row)[0] as string).catch(() => undefined);
      });
    secretValues.set(`AWSCURRENT:${DB_ARN}`, dbSecret(dbPassword));
    await endNow(7);

    const second = (await handler({ syncId: 'main' }, context())) as RunSummary;
    expect(second).toMatchObject({ outcome: 'completed', delivered: 7 });
    // The cached password was refused once, and the secret read again rather than waiting out the TTL.
    const dbReads = secrets
      .commandCalls(GetSecretValueCommand)
      .filter((c) => c.args[0].input.SecretId === DB_ARN);
    expect(dbReads.length).toBe(2);
    expect(h.api.stored.size).toBe(17);
    expect(h.api.duplicates()).toBe(0);
    secretsNeverIn(output);
  });

  it('tries AWSPENDING once during a single-user rotation, then fails clearly', async () => {
    const handler = createHandler(env());
    await someCalls(3);
    const old = dbPassword;
    dbPassword = 'pending-Passw0rd-value';
    await h.db.query(`ALTER USER '${DB_USER}'@'%' IDENTIFIED BY ?`, [dbPassword]);
    // The database already has the new password, but it is still only AWSPENDING.
    secretValues.set(`AWSCURRENT:${DB_ARN}`, dbSecret(old));
    secretValues.set(`AWSPENDING:${DB_ARN}`, dbSecret(dbPassword));
    const summary = (await handler({ action: 'sync', syncId: 'main' }, context())) as RunSummary;
    expect(summary).toMatchObject({ outcome: 'completed', delivered: 3 });

    secretValues.delete(`AWSPENDING:${DB_ARN}`);
    const cold = createHandler(env());
    const failed = (await cold({ action: 'sync', syncId: 'main' }, context())) as RunSummary;
    expect(failed).toMatchObject({ outcome: 'failed', reason: 'database_error' });
    expect(failed.detail).toMatch(/database refused the credentials of user did_sync_ro/);
    expect(JSON.stringify(failed)).not.toContain(old);
    secretValues.set(`AWSCURRENT:${DB_ARN}`, dbSecret(dbPassword));
  });

  it('fetches the API key again after a 401 and succeeds', async () => {
    const handler = createHandler(env());
    await someCalls(6);
    expect(((await handler({ syncId: 'main' }, context())) as RunSummary).delivered).toBe(6);
    h.api.setValidKeys(['new-api-key']);
    secretValues.set(`AWSCURRENT:${API_ARN}`, JSON.stringify({ apiKey: 'new-api-key', apiUrl: h.api.url }));
    await endNow(1, 900);
    const second = (await handler({ syncId: 'main' }, context())) as RunSummary;
    expect(second).toMatchObject({ outcome: 'completed', delivered: 1 });
    const apiSecretReads = secrets
      .commandCalls(GetSecretValueCommand)
      .filter((c) => c.args[0].input.SecretId === API_ARN);
    // Once cached at first use, once again after the 401: not once per call.
    expect(apiSecretReads.length).toBe(2);
    secretsNeverIn(output);
  });
});
