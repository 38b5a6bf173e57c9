import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import mysql from 'mysql2/promise';
import { type ApiKeyProvider, staticApiKey } from '../../functions/sync/delivery/api-client';
import type { RetryPolicy } from '../../functions/sync/delivery/retry-policy';
import { MemorySyncLog } from '../../functions/sync/log';
import { type RunOptions, type RunSummary, runSync } from '../../functions/sync/run/engine';
import {
  type Env,
  parseConnectionSettings,
  parseSyncSettings,
  type SyncSettings,
} from '../../functions/sync/settings';
import { type DbCredentialSource, staticCredentials } from '../../functions/sync/source/db-connection';
import { CheckpointStore } from '../../functions/sync/state/checkpoint-store';
import { itemKey, SORT_KEYS } from '../../functions/sync/state/keys';
import { createDynamoClient, createSync, type Sync } from '../../functions/sync/wiring';
import { type FakeDidApi, startFakeDidApi } from './fake-did-api';
import { type LocalDynamoDb, startLocalDynamoDb } from './local-dynamodb';
import { createVicidialDatabase, dbSettingsOf } from './local-mariadb';

/**
 * Real parts for engine tests: a fresh database on the shared MariaDB server, a dynalite DynamoDB, and
 * the DID Optimizer stand-in on loopback. Nothing of ours is replaced.
 */
export interface Harness {
  readonly dbUrl: string;
  /** Root connection to the test database, for inserting and changing calls. */
  readonly db: mysql.Pool;
  readonly api: FakeDidApi;
  readonly dynamo: LocalDynamoDb;
  readonly store: CheckpointStore;
  readonly table: string;
  settings(env?: Env): SyncSettings;
  /** Settings for the `did-sync` command pointed at this harness's database, API and DynamoDB. */
  cliEnv(): Record<string, string>;
  dbSource(): DbCredentialSource;
  createSync(
    env?: Env,
    options?: { keys?: ApiKeyProvider; apiUrl?: string; db?: DbCredentialSource; log?: MemorySyncLog },
  ): Sync;
  run(
    env?: Env,
    options?: Partial<RunOptions> & {
      keys?: ApiKeyProvider;
      log?: MemorySyncLog;
      /** The production backoff (250 ms base, 8 s cap) instead of the quick one most tests use. */
      retryPolicy?: RetryPolicy;
    },
  ): Promise<{ summary: RunSummary; log: MemorySyncLog }>;
  dbNow(): Promise<number>;
  /**
   * `did-sync run` in a process of its own, killed without warning (SIGKILL) once the API has received
   * `posts` calls; resolves when it is dead and the requests it had sent in full have been answered.
   */
  killRunAfter(env: Env, posts: number): Promise<void>;
  /** A run's lease runs out (it crashed or froze), without waiting LEASE_SECONDS. */
  expireLease(syncId: string): Promise<void>;
  close(): Promise<void>;
}

export const TEST_KEY = 'test-key';
/** Backoff short enough for tests that are not about waiting; fault tests pass DEFAULT_RETRY_POLICY. */
export const QUICK_RETRIES: RetryPolicy = { maxAttempts: 5, baseDelayMs: 5, maxDelayMs: 20 };

export async function startHarness(serverUrl: string, name = 'h'): Promise<Harness> {
  const dbName = `asterisk_${name}_${randomBytes(4).toString('hex')}`;
  const dbUrl = await createVicidialDatabase(serverUrl, dbName);
  const db = mysql.createPool({ uri: dbUrl, dateStrings: true, connectionLimit: 4, charset: 'utf8mb4' });
  const api = await startFakeDidApi({ validKeys: [TEST_KEY] });
  const dynamo = await startLocalDynamoDb();
  const table = 'did-sync-test';
  const client = createDynamoClient({ table, region: 'us-east-1', endpoint: dynamo.endpoint });
  const store = new CheckpointStore(client, table);
  await store.ensureTable();
  const dbSettings = dbSettingsOf(dbUrl);
  const syncs: Sync[] = [];

  const harness: Harness = {
    dbUrl,
    db,
    api,
    dynamo,
    store,
    table,
    // The defaults users run with: a test that needs another value says why where it passes it.
    settings: (env = {}) => parseSyncSettings(env),
    dbSource: () => staticCredentials(dbSettings),
    cliEnv: () => ({
      VICIDIAL_DB_HOST: dbSettings.host,
      VICIDIAL_DB_PORT: String(dbSettings.port),
      VICIDIAL_DB_USER: dbSettings.user,
      VICIDIAL_DB_PASSWORD: dbSettings.password,
      VICIDIAL_DB_NAME: dbSettings.database,
      DID_OPTIMIZER_API_URL: api.url,
      API_KEY: TEST_KEY,
      CHECKPOINT_TABLE: table,
      DYNAMODB_ENDPOINT: dynamo.endpoint,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    }),
    createSync(env = {}, options = {}) {
      const sync = createSync({
        settings: harness.settings(env),
        api: { url: options.apiUrl ?? api.url, allowInsecure: false },
        db: options.db ?? staticCredentials(dbSettings),
        dbConnection: parseConnectionSettings(env),
        keys: options.keys ?? staticApiKey(TEST_KEY),
        checkpoints: store,
        // Through createSync, as in production: it adds the sync's keys to every line.
        log: options.log ?? new MemorySyncLog(),
      });
      syncs.push(sync);
      return sync;
    },
    async run(env = {}, options = {}) {
      const log = options.log ?? new MemorySyncLog();
      const sync = harness.createSync(env, { ...(options.keys ? { keys: options.keys } : {}), log });
      const summary = await runSync(
        {
          ...sync,
          retryPolicy: options.retryPolicy ?? QUICK_RETRIES,
        },
        { owner: options.owner ?? `test-${randomBytes(3).toString('hex')}`, ...options },
      );
      return { summary, log };
    },
    async killRunAfter(env, posts) {
      const child = spawn(
        process.execPath,
        [join(import.meta.dirname, '..', '..', 'bin', 'did-sync.js'), 'run'],
        {
          env: { PATH: process.env.PATH, ...harness.cliEnv(), ...env, POWERTOOLS_LOG_LEVEL: 'SILENT' },
          stdio: 'ignore',
        },
      );
      await new Promise<void>((resolve, reject) => {
        const timer = setInterval(() => {
          if (api.calls.length >= posts) {
            clearInterval(timer);
            child.kill('SIGKILL');
            resolve();
          }
        }, 2);
        child.on('exit', () => {
          clearInterval(timer);
          if (api.calls.length < posts) reject(new Error('the run ended before it could be killed'));
        });
      });
      await new Promise((r) =>
        child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r),
      );
      await new Promise((r) => setTimeout(r, 200));
    },
    async expireLease(syncId) {
      await client.send(
        new UpdateItemCommand({
          TableName: table,
          Key: itemKey(syncId, SORT_KEYS.checkpoint),
          UpdateExpression: 'SET leaseExpiresAt = :past',
          ExpressionAttributeValues: { ':past': { N: String(Date.now() - 1) } },
        }),
      );
    },
    async dbNow() {
      const [rows] = await db.query('SELECT UNIX_TIMESTAMP() AS now');
      return Number((rows as { now: number }[])[0]?.now);
    },
    async close() {
      await Promise.all(syncs.map((s) => s.close().catch(() => undefined)));
      await db.query(`DROP DATABASE IF EXISTS \`${dbName}\``).catch(() => undefined);
      await db.end();
      await api.close();
      client.destroy();
      await dynamo.close();
    },
  };
  return harness;
}
