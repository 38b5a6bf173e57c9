/**
 * `npm run demo`: the real Lambda handler, end to end, on this machine and with no AWS account.
 * A throwaway MariaDB holds realistic VICIdial calls, dynalite plays DynamoDB, a loopback server plays
 * the DID Optimizer API and Secrets Manager. Everything is removed again at the end, also on Ctrl-C.
 */
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import mysql from 'mysql2/promise';
import { createHandler } from '../functions/handler';
import type { StatusReport } from '../functions/sync/admin/status';
import type { RunSummary } from '../functions/sync/run/engine';
import { CheckpointStore } from '../functions/sync/state/checkpoint-store';
import { createDynamoClient } from '../functions/sync/wiring';
import { type FakeDidApi, startFakeDidApi } from '../test/support/fake-did-api';
import { type LocalDynamoDb, startLocalDynamoDb } from '../test/support/local-dynamodb';
import { createVicidialDatabase, type LocalMariaDb, startLocalMariaDb } from '../test/support/local-mariadb';
import { type LocalSecretsManager, startLocalSecretsManager } from '../test/support/local-secrets-manager';
import { AWKWARD_COMMENTS, generateCalls, insertCalls, makeCall } from '../test/support/sample-calls';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const CALLS = Number(process.env.DEMO_CALLS ?? 4000);
const cleanups: (() => Promise<unknown>)[] = [];
const out = (line = '') => process.stdout.write(`${line}\n`);
const step = (text: string) => out(`\n▸ ${text}`);

async function cleanup() {
  for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
  cleanups.length = 0;
}

process.on('SIGINT', () => {
  out('\ninterrupted: cleaning up');
  void cleanup().then(() => process.exit(130));
});

function context(): Context {
  const deadline = Date.now() + 120_000;
  return {
    awsRequestId: `demo-${Math.random().toString(16).slice(2, 10)}`,
    functionVersion: '$LATEST',
    functionName: 'did-sync-demo',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:did-sync-demo',
    memoryLimitInMB: '512',
    getRemainingTimeInMillis: () => deadline - Date.now(),
  } as unknown as Context;
}

/** Prints delivered calls and lag while a run is under way. */
function progress(api: FakeDidApi, store: CheckpointStore, total: number): () => void {
  const started = Date.now();
  const before = api.calls.length;
  // A terminal gets one line redrawn in place; a log file gets a line a second.
  const tty = process.stdout.isTTY;
  const timer = setInterval(
    async () => {
      const state = await store.read('demo').catch(() => undefined);
      const lag = state ? Math.max(0, Math.floor(Date.now() / 1000) - state.cursor.endEpoch) : '-';
      const rate = (api.calls.length - before) / Math.max(0.001, (Date.now() - started) / 1000);
      const line = `  delivered ${String(api.stored.size).padStart(5)} / ~${total}   checkpoint lag ${String(lag).padStart(5)} s   ${rate.toFixed(0)} calls/s`;
      process.stdout.write(tty ? `\r${line}   ` : `${line}\n`);
    },
    tty ? 250 : 1000,
  );
  return () => {
    clearInterval(timer);
    if (tty) process.stdout.write('\n');
  };
}

async function dbNow(db: mysql.Pool): Promise<number> {
  const [rows] = await db.query('SELECT UNIX_TIMESTAMP() AS now');
  return Number((rows as { now: number }[])[0]?.now);
}

async function main() {
  out('vicidial-did-sync demo: the Lambda handler against local stand-ins (nothing leaves this machine)');
  step('starting a throwaway MariaDB, dynalite (DynamoDB), the DID Optimizer stand-in and Secrets Manager');
  const maria: LocalMariaDb = await startLocalMariaDb();
  cleanups.push(() => maria.stop());
  const dbUrl = await createVicidialDatabase(maria.url, 'asterisk');
  const db = mysql.createPool({ uri: dbUrl, connectionLimit: 2 });
  cleanups.push(() => db.end());
  const dynamo: LocalDynamoDb = await startLocalDynamoDb();
  cleanups.push(() => dynamo.close());
  const api = await startFakeDidApi({ validKeys: ['demo-api-key'], latencyMs: 20 });
  cleanups.push(() => api.close());
  const secretsServer: LocalSecretsManager = await startLocalSecretsManager();
  cleanups.push(() => secretsServer.close());

  // A read-only user, as the README asks for in production.
  await db.query("CREATE USER IF NOT EXISTS 'did_sync_ro'@'%' IDENTIFIED BY 'demo-ro-password'");
  await db.query("GRANT SELECT ON asterisk.vicidial_log TO 'did_sync_ro'@'%'");
  const url = new URL(dbUrl);
  const dbArn = 'arn:aws:secretsmanager:us-east-1:000000000000:secret:did-sync/db-demo';
  const apiArn = 'arn:aws:secretsmanager:us-east-1:000000000000:secret:did-sync/api-demo';
  secretsServer.put(
    dbArn,
    JSON.stringify({
      engine: 'mariadb',
      host: url.hostname,
      port: Number(url.port),
      username: 'did_sync_ro',
      password: 'demo-ro-password',
      dbname: 'asterisk',
    }),
  );
  secretsServer.put(apiArn, JSON.stringify({ apiKey: 'demo-api-key', apiUrl: api.url }));

  step(`loading ${CALLS} calls of the last 50 minutes into vicidial_log`);
  const now = await dbNow(db);
  const rows = generateCalls({
    count: CALLS,
    // Calls that ended in the last 45 minutes: all started after the sync's start point (an hour ago).
    fromEpoch: now - 2700,
    toEpoch: now - 20,
    seed: 2026,
    tiesPerSecond: 20,
    incallFraction: 0.12,
    awkwardFraction: 0.01,
  });
  rows.push(
    makeCall({ end_epoch: now - 600, comments: AWKWARD_COMMENTS, uniqueid: `${now - 700}.9999` }, 99_999),
  );
  // An agent call still going, answered 40 minutes ago: VICIdial inserted it at connect (INCALL, no end).
  const longCall = makeCall(
    { end_epoch: now - 2400, length_in_sec: 0, status: 'INCALL', uniqueid: `${now - 2400}.7777` },
    99_998,
  );
  rows.push(longCall);
  await insertCalls(db, rows, { chunkSize: 2000 });
  await db.query('UPDATE vicidial_log SET end_epoch = NULL WHERE uniqueid = ?', [longCall.uniqueid]);
  const [mix] = await db.query(
    'SELECT status, COUNT(*) AS n FROM vicidial_log GROUP BY status ORDER BY n DESC',
  );
  out(
    `  status mix: ${(mix as { status: string; n: number }[]).map((r) => `${r.status} ${r.n}`).join(', ')}`,
  );
  const [[tie]] = (await db.query(
    'SELECT end_epoch, COUNT(*) AS n FROM vicidial_log GROUP BY end_epoch ORDER BY n DESC LIMIT 1',
  )) as unknown as [{ n: number }[]];
  out(`  busiest second: ${tie?.n} calls ending in the same second`);

  const table = 'did-sync-demo';
  const dynamoClient = createDynamoClient({ table, region: 'us-east-1', endpoint: dynamo.endpoint });
  cleanups.push(async () => dynamoClient.destroy());
  const store = new CheckpointStore(dynamoClient, table);
  await store.ensureTable();

  const secrets = new SecretsManagerClient({
    region: 'us-east-1',
    endpoint: secretsServer.endpoint,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  cleanups.push(async () => secrets.destroy());
  // The run metrics' EMF blob is for CloudWatch; here it would be a JSON line amid the story.
  process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
  const handler = createHandler(
    {
      CHECKPOINT_TABLE: table,
      AWS_REGION: 'us-east-1',
      DYNAMODB_ENDPOINT: dynamo.endpoint,
      DB_SECRET_ARN: dbArn,
      SYNCS: JSON.stringify([{ id: 'demo', apiSecretArn: apiArn, startFrom: String(now - 3600) }]),
      POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL ?? 'ERROR',
      BATCH_SIZE: '500',
      CONCURRENCY: '16',
    },
    { secrets },
  );

  step('scheduled invocation {"syncId":"demo"} (EventBridge Scheduler sends this every minute)');
  let stop = progress(api, store, CALLS);
  const first = (await handler({ syncId: 'demo' }, context())) as RunSummary;
  stop();
  out(
    `  ${first.outcome}: delivered ${first.delivered}, dead-lettered ${first.deadLettered}, pending ${first.pending} (INCALL, awaiting dispositions), ${first.batches} batches in ${(first.durationMs / 1000).toFixed(1)} s`,
  );

  step('agents submit their dispositions; new calls end; the next tick runs');
  const [incall] = await db.query("SELECT uniqueid FROM vicidial_log WHERE status = 'INCALL'");
  const finals = ['SALE', 'NI', 'CALLBK', 'NI', 'XFER'];
  let i = 0;
  for (const { uniqueid } of incall as { uniqueid: string }[]) {
    await db.query('UPDATE vicidial_log SET status = ? WHERE uniqueid = ?', [
      finals[i++ % finals.length],
      uniqueid,
    ]);
  }
  out(`  ${i} INCALL calls got their disposition`);
  // New calls end after the first tick's checkpoint; the next tick takes them once they are older than
  // SETTLE_SECONDS (30 s), as a real tick a minute later would.
  const from = first.cursor?.endEpoch ?? (await dbNow(db));
  while ((await dbNow(db)) < from + 30 + 8) await new Promise((r) => setTimeout(r, 250));
  const later = await dbNow(db);
  // The 40-minute call ends now: the agent hangs up and submits SALE.
  await db.query(
    "UPDATE vicidial_log SET end_epoch = ?, length_in_sec = ? - start_epoch, status = 'SALE' WHERE uniqueid = ?",
    [from + 1, from + 1, longCall.uniqueid],
  );
  out(`  the call answered 40 minutes ago (${longCall.uniqueid}) ended as SALE`);
  const fresh = generateCalls({
    count: 150,
    fromEpoch: from,
    toEpoch: later - 31,
    seed: 7,
    tiesPerSecond: 30,
  });
  for (const row of fresh) {
    // Short calls: longer ones were inserted at connect and are followed like the one above.
    row.length_in_sec = Math.min(row.length_in_sec ?? 0, 60);
    row.start_epoch = (row.end_epoch ?? 0) - (row.length_in_sec ?? 0);
  }
  await insertCalls(db, fresh);
  stop = progress(api, store, CALLS + 150);
  const second = (await handler({ syncId: 'demo' }, context())) as RunSummary;
  stop();
  out(
    `  ${second.outcome}: delivered ${second.delivered} (of which ${second.pendingResolved} late dispositions), pending ${second.pending}`,
  );

  step('manual invocation {"action":"status","syncId":"demo"}');
  const status = (await handler({ action: 'status', syncId: 'demo' }, context())) as StatusReport;
  out(
    JSON.stringify(status, null, 2)
      .split('\n')
      .map((l) => `  ${l}`)
      .join('\n'),
  );

  step('manual invocation {"action":"dead-letters","syncId":"demo"}');
  const letters = (await handler({ action: 'dead-letters', syncId: 'demo' }, context())) as {
    total: number;
    deadLetters: { uniqueid: string; reason: string }[];
  };
  for (const l of letters.deadLetters.slice(0, 5)) out(`  ${l.uniqueid.padEnd(20)} ${l.reason}`);
  if (letters.total > 5) out(`  ... ${letters.total - 5} more`);

  const [[eligible]] = (await db.query(
    "SELECT COUNT(*) AS n FROM vicidial_log WHERE status <> '' AND length_in_sec > 0 AND end_epoch >= ? AND end_epoch <= ?",
    [now - 3600, (second.cursor?.endEpoch ?? later) - 1],
  )) as unknown as [{ n: number }[]];
  const [[total]] = (await db.query('SELECT COUNT(*) AS n FROM vicidial_log')) as unknown as [
    { n: number }[],
  ];
  const awkward = [...api.stored.values()].find((b) => b.comments === AWKWARD_COMMENTS);
  step('summary');
  const table_ = [
    ['calls in vicidial_log', String(total?.n)],
    ['eligible (finished, status, duration > 0)', String(eligible?.n)],
    ['delivered to the API', String(api.stored.size)],
    ['posted twice', String(api.duplicates())],
    ['dead letters (rejected rows, kept with reason)', String(letters.total)],
    ['still pending', String(status.pending)],
    ['lag behind the database clock', `${status.lagSeconds} s`],
    ['quotes/backslash/emoji comment byte-exact', awkward ? 'yes' : 'NO'],
    ['secret reads (cached across invocations)', String(secretsServer.reads)],
  ];
  const width = Math.max(...table_.map(([k]) => (k ?? '').length));
  for (const [k, v] of table_) out(`  ${(k ?? '').padEnd(width)}  ${v}`);
  const ok =
    api.stored.size + letters.total === eligible?.n && api.duplicates() === 0 && awkward !== undefined;
  out(
    ok
      ? '\n✔ every eligible call was delivered or dead-lettered, none twice'
      : '\n✘ numbers do not add up: see above',
  );
  process.exitCode = ok ? 0 : 1;
}

main()
  .catch((error: unknown) => {
    out(`\ndemo failed: ${(error as Error).stack ?? error}`);
    process.exitCode = 1;
  })
  .finally(cleanup);
