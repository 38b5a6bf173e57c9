import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import {
  CheckpointStore,
  type CheckReport,
  createApiClient,
  createDynamoClient,
  createSync,
  type DidOptimizerClient,
  type Env,
  FINAL_WRITE_MS,
  failureBeforeRun,
  flushLogLines,
  LeaseHeldError,
  PowertoolsSyncLog,
  parseConnectionSettings,
  parseInstant,
  type ReconcileReport,
  RunHistory,
  type RunSummary,
  recordOf,
  runSync,
  SettingError,
  type Sync,
  USER_AGENT,
  VicidialDbConnection,
  validateApiUrl,
  worthRecording,
} from '../sync';
import { type Invocation, parseInvocation } from './invocation';
import { type LambdaSettings, parseLambdaSettings, syncSettings } from './lambda-settings';
import { recordReconcileMetrics, recordRunMetrics } from './run-metrics';
import { InvalidInvocationError, isScheduledEvent, parseScheduledEvent, refusal } from './scheduled-event';
import { SecretCache } from './secret-cache';
import { type ApiSecret, readApiSecret, SecretDbCredentials, secretApiKey } from './secret-credentials';

/*
 * A scheduled run loads only what it runs: the operator commands, reconcile and check are imported when
 * an operator asks for them (a cold start pays for the code it evaluates). The manual events' schemas
 * stay static: imported lazily, their `zod/mini` namespace would drag zod's locale index into the bundle
 * (test/unit/bundle.test.ts); a scheduled event is checked without them.
 */
const admin = () => import('../sync/admin');

/** Errors that refuse what a manual caller asked for, as opposed to failures of a part. */
function isRefusal(error: unknown): error is Error {
  return (
    error instanceof InvalidInvocationError ||
    // By name: the operator commands' modules are loaded only when one runs.
    (error instanceof Error &&
      (error.name === 'ResetRefusedError' || error.name === 'ReconcileRangeError')) ||
    error instanceof LeaseHeldError
  );
}

/** A scheduled run that failed: thrown so the function's Errors metric (and its alarm) shows it. */
export class SyncFailedError extends Error {
  constructor(readonly summary: RunSummary) {
    super(
      `sync "${summary.syncId}" failed: ${summary.reason ?? 'unknown'}${summary.detail ? ` (${summary.detail})` : ''}`,
    );
    this.name = 'SyncFailedError';
  }
}

export interface RuntimeDeps {
  readonly logger: Logger;
  readonly secrets?: SecretsManagerClient;
  /** Where run metrics go (published by the handler's logMetrics middleware); none: not recorded. */
  readonly metrics?: Metrics;
}

/** Time kept after the run's deadline: the last checkpoint and lease release, and 3 s to spare. */
const LAMBDA_RESERVE_MS = FINAL_WRITE_MS + 3_500;

/** When every wait of the run must be over: requests and queries are cut there. */
function deadlineOf(context: Pick<Context, 'getRemainingTimeInMillis'>): number {
  return Date.now() + Math.max(0, context.getRemainingTimeInMillis() - LAMBDA_RESERVE_MS);
}

/**
 * What a warm container keeps between invocations: settings, the secret cache, the DynamoDB client and
 * one database connection, so a run every minute reuses sockets and cached secrets.
 */
export class SyncRuntime {
  private readonly settings: LambdaSettings;
  private readonly cache: SecretCache;
  private readonly dynamo: DynamoDBClient;
  private readonly store: CheckpointStore;
  private readonly history: RunHistory;
  private readonly connection: VicidialDbConnection;
  private readonly log: PowertoolsSyncLog;
  /** One pooled API client per sync and URL, kept warm across invocations. */
  private readonly apiClients = new Map<string, DidOptimizerClient>();

  constructor(
    env: Env,
    private readonly deps: RuntimeDeps,
  ) {
    this.settings = parseLambdaSettings(env);
    this.cache = new SecretCache(
      deps.secrets ??
        new SecretsManagerClient({
          region: this.settings.region,
          endpoint: env.SECRETS_MANAGER_ENDPOINT || undefined,
        }),
      this.settings.secretsTtlMs,
    );
    this.dynamo = createDynamoClient({
      table: this.settings.checkpointTable,
      region: this.settings.region,
      endpoint: this.settings.endpoint,
    });
    this.store = new CheckpointStore(this.dynamo, this.settings.checkpointTable);
    this.history = new RunHistory(this.dynamo, this.settings.checkpointTable);
    const connection = parseConnectionSettings(env);
    this.connection = new VicidialDbConnection(
      new SecretDbCredentials(this.cache, this.settings.dbSecretArn),
      {
        queryTimeoutMs: connection.queryTimeoutMs,
        timeZone: connection.timeZone,
      },
    );
    this.log = new PowertoolsSyncLog(deps.logger);
  }

  async handle(
    event: unknown,
    context: Pick<Context, 'getRemainingTimeInMillis' | 'awsRequestId' | 'functionVersion'>,
  ): Promise<unknown> {
    try {
      return await this.dispatch(event, context);
    } catch (error) {
      // A person's typo, or a request the operation refuses as asked, must not count in the function's
      // Errors metric and page the on-call: the person sees the answer. A bad scheduled event is a
      // deployment bug and does count.
      if (!isRefusal(error) || isScheduledEvent(event)) throw error;
      this.log.log('warn', 'invalid_invocation', { errorType: error.name, error: error.message });
      return refusal(error);
    } finally {
      // Before Lambda may freeze the process: the invocation's last lines go out with it.
      flushLogLines();
    }
  }

  private async dispatch(
    event: unknown,
    context: Pick<Context, 'getRemainingTimeInMillis' | 'awsRequestId' | 'functionVersion'>,
  ): Promise<unknown> {
    const invocation: Invocation = isScheduledEvent(event)
      ? parseScheduledEvent(event as object)
      : parseInvocation(event);
    if (!this.settings.syncs.has(invocation.syncId)) {
      throw new InvalidInvocationError(
        `invalid invocation: syncId: unknown sync "${invocation.syncId}" (configured: ${[...this.settings.syncs.keys()].join(', ')})`,
      );
    }
    this.deps.logger.appendKeys({ functionVersion: context.functionVersion, action: invocation.action });
    switch (invocation.action) {
      case 'scheduled':
      case 'sync':
        return this.sync(invocation, context);
      case 'status':
        return (await admin()).readStatus(
          this.store,
          invocation.syncId,
          () =>
            this.connection
              .query<{ now: number }>('SELECT UNIX_TIMESTAMP() AS now', [], { timeoutMs: 5_000 })
              .then((rows) => Number(rows[0]?.now)),
          this.history,
        );
      case 'check':
        return this.check(invocation.syncId);
      case 'reset': {
        const to = typeof invocation.to === 'number' ? invocation.to : parseInstant(invocation.to);
        if (to === undefined) {
          throw new InvalidInvocationError(
            `invalid invocation: to: "${invocation.to}" is not epoch seconds or ISO-8601 with a zone`,
          );
        }
        const sync = await this.createSync(invocation.syncId);
        return (await admin()).resetCheckpoint(
          this.store,
          sync.calls,
          invocation.syncId,
          to,
          {
            force: invocation.force ?? false,
            withoutDatabase: invocation.withoutDatabase ?? false,
            resend: invocation.resend ?? false,
            skipUndelivered: invocation.skipUndelivered ?? false,
          },
          this.log,
          sync.settings,
        );
      }
      case 'reconcile':
        return this.reconcile(invocation, context);
      case 'dead-letters': {
        if (invocation.replay) {
          const sync = await this.createSync(invocation.syncId);
          return (await admin()).replayDeadLetters(sync, {
            owner: `lambda:${context.awsRequestId}`,
            deadline: deadlineOf(context),
          });
        }
        const letters = await (await admin()).listDeadLetters(this.store, invocation.syncId);
        // A Lambda response is capped at 6 MB: show the oldest letters and the total.
        return { syncId: invocation.syncId, total: letters.length, deadLetters: letters.slice(0, 200) };
      }
    }
  }

  private async reconcile(
    invocation: Extract<Invocation, { action: 'reconcile' }>,
    context: Pick<Context, 'getRemainingTimeInMillis'>,
  ): Promise<ReconcileReport> {
    const instant = (field: string, value: string | number | undefined): number | undefined => {
      if (value === undefined) return undefined;
      const epoch = typeof value === 'number' ? value : parseInstant(value);
      if (epoch === undefined) {
        throw new InvalidInvocationError(
          `invalid invocation: ${field}: "${value}" is not epoch seconds or ISO-8601 with a zone`,
        );
      }
      return epoch;
    };
    let since = instant('since', invocation.since);
    const until = instant('until', invocation.until);
    if (since === undefined) {
      if (invocation.hours === undefined) {
        throw new InvalidInvocationError(
          'invalid invocation: since: give "since" (or "hours" before the cursor)',
        );
      }
      const state = await this.store.read(invocation.syncId);
      since = (until ?? state?.cursor.endEpoch ?? Math.floor(Date.now() / 1000)) - invocation.hours * 3600;
    }
    const sync = await this.createSync(invocation.syncId);
    const { reconcile } = await admin();
    const report = await reconcile(sync, {
      since,
      ...(until === undefined ? {} : { until }),
      repair: invocation.repair ?? false,
      deadline: deadlineOf(context),
    });
    if (this.deps.metrics) recordReconcileMetrics(this.deps.metrics, report);
    return report;
  }

  private async sync(
    invocation: Extract<Invocation, { action: 'scheduled' | 'sync' }>,
    context: Pick<Context, 'getRemainingTimeInMillis' | 'awsRequestId'>,
  ): Promise<RunSummary> {
    let sync: Sync;
    try {
      sync = await this.createSync(invocation.syncId);
    } catch (error) {
      // The run never started (its API secret could not be read): status must still show it.
      if (!(error instanceof InvalidInvocationError)) {
        const secret = this.settings.syncs.get(invocation.syncId)?.apiSecretArn;
        await this.record(
          invocation.syncId,
          failureBeforeRun(
            'secret_unreadable',
            `API secret ${secret}: ${(error as Error).message}`,
            'lambda',
          ),
        );
      }
      throw error;
    }
    const summary = await runSync(sync, {
      owner: `lambda:${context.awsRequestId}`,
      deadline: deadlineOf(context),
      ...(invocation.action === 'sync' && invocation.dryRun ? { dryRun: true } : {}),
      ...(invocation.action === 'sync' && invocation.maxBatches ? { maxBatches: invocation.maxBatches } : {}),
    });
    // A dry run delivered nothing: its would-be counts must not show up as deliveries.
    if (this.deps.metrics && !summary.dryRun) recordRunMetrics(this.deps.metrics, summary);
    if (worthRecording(summary)) await this.record(invocation.syncId, recordOf(summary, 'lambda'));
    if (invocation.action === 'scheduled' && summary.outcome === 'failed') throw new SyncFailedError(summary);
    return summary;
  }

  /** The run's record for status; a record that cannot be written must not fail the run it describes. */
  private async record(syncId: string, record: Parameters<RunHistory['record']>[1]): Promise<void> {
    await this.history
      .record(syncId, record)
      .catch((error) =>
        this.log.log('warn', 'run_record_failed', { syncId, error: (error as Error).message }),
      );
  }

  /** The sync's API URL: from its secret, its SYNCS entry, or the function's DID_OPTIMIZER_API_URL. */
  private apiUrl(syncId: string, secret: ApiSecret): string {
    const entry = this.settings.syncs.get(syncId);
    const url = secret.apiUrl ?? entry?.apiUrl ?? this.settings.env.DID_OPTIMIZER_API_URL;
    if (!url)
      throw new SettingError(
        `apiUrl (sync "${syncId}")`,
        `is missing: put "apiUrl" in secret ${entry?.apiSecretArn ?? '?'}`,
      );
    return validateApiUrl(`apiUrl (sync "${syncId}")`, url, this.settings.allowInsecureApi);
  }

  /** The manual `check` action: the same checks as `did-sync check`, answered as JSON. */
  private async check(syncId: string): Promise<CheckReport> {
    const entry = this.settings.syncs.get(syncId);
    if (!entry) throw new InvalidInvocationError(`invalid invocation: syncId: unknown sync "${syncId}"`);
    const { runChecks } = await admin();
    return runChecks({
      settings: syncSettings(this.settings, syncId),
      db: this.connection,
      api: async () => {
        // Fresh: a check right after a key rotation must not judge the cached old key.
        const secret = await readApiSecret(this.cache, entry.apiSecretArn, true);
        return { url: this.apiUrl(syncId, secret), key: secret.apiKey };
      },
      userAgent: USER_AGENT,
      dynamo: this.dynamo,
      table: this.settings.checkpointTable,
    });
  }

  private async createSync(syncId: string): Promise<Sync> {
    const entry = this.settings.syncs.get(syncId);
    if (!entry) throw new InvalidInvocationError(`invalid invocation: syncId: unknown sync "${syncId}"`);
    const secret = await readApiSecret(this.cache, entry.apiSecretArn);
    const settings = syncSettings(this.settings, syncId);
    const api = {
      url: this.apiUrl(syncId, secret),
      allowInsecure: this.settings.allowInsecureApi,
    };
    const clientKey = `${syncId} ${api.url}`;
    let apiClient = this.apiClients.get(clientKey);
    if (!apiClient) {
      for (const [k, c] of this.apiClients) if (k.startsWith(`${syncId} `)) c.close();
      apiClient = createApiClient(api, settings);
      this.apiClients.set(clientKey, apiClient);
    }
    return createSync({
      settings,
      api,
      apiClient,
      keys: secretApiKey(this.cache, entry.apiSecretArn),
      checkpoints: this.store,
      log: this.log,
      connection: this.connection,
    });
  }
}
