import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { type ApiKeyProvider, DidOptimizerClient } from './delivery/api-client';
import { DynamoRateLimitState } from './delivery/rate-limit-state';
import { type SyncLog, withKeys } from './log';
import type { SyncDeps } from './run/engine';
import type { ApiSettings, CheckpointSettings, ConnectionSettings, SyncSettings } from './settings';
import { type DbCredentialSource, VicidialDbConnection } from './source/db-connection';
import { VicidialLog } from './source/vicidial-log';
import type { CheckpointStore } from './state/checkpoint-store';
import { USER_AGENT } from './version';

/** Builds the engine's parts from settings: the one place the CLI, the handler, the demo and the tests share. */
export type SyncParts = {
  readonly settings: SyncSettings;
  readonly api: ApiSettings;
  readonly keys: ApiKeyProvider;
  readonly checkpoints: CheckpointStore;
  readonly log: SyncLog;
  /** A pooled API client kept across warm Lambda invocations; otherwise one is made and closed with the sync. */
  readonly apiClient?: DidOptimizerClient;
} & (
  | {
      readonly db: DbCredentialSource;
      readonly dbConnection: ConnectionSettings;
      readonly connection?: undefined;
    }
  /** A connection kept across warm Lambda invocations, closed by its owner. */
  | { readonly connection: VicidialDbConnection; readonly db?: undefined }
);

export interface Sync extends SyncDeps {
  readonly connection: VicidialDbConnection;
  close(): Promise<void>;
}

export function createSync(parts: SyncParts): Sync {
  const connection =
    parts.connection ??
    new VicidialDbConnection(parts.db, {
      queryTimeoutMs: parts.dbConnection.queryTimeoutMs,
      timeZone: parts.dbConnection.timeZone,
    });
  const s = parts.settings;
  const api = parts.apiClient ?? createApiClient(parts.api, s);
  // The API's spent windows live beside the checkpoints: every sync of the table shares them.
  api.rateLimitState ??= new DynamoRateLimitState(parts.checkpoints.client, parts.checkpoints.tableName);
  return {
    settings: s,
    calls: new VicidialLog(
      connection,
      {
        minDurationSeconds: s.minDurationSeconds,
        campaigns: s.campaigns,
        excludeCampaigns: s.excludeCampaigns,
        transientStatuses: [...s.transientStatuses],
      },
      s.lookbackSeconds,
    ),
    checkpoints: parts.checkpoints,
    api,
    keys: parts.keys,
    log: withKeys(parts.log, { syncId: s.syncId }),
    connection,
    // A shared connection or client outlives this sync; its owner closes it.
    close: async () => {
      if (!parts.apiClient) api.close();
      if (!parts.connection) await connection.close();
    },
  };
}

export function createApiClient(
  api: ApiSettings,
  settings: Pick<SyncSettings, 'concurrency'>,
): DidOptimizerClient {
  return new DidOptimizerClient({
    baseUrl: api.url,
    userAgent: USER_AGENT,
    maxSockets: settings.concurrency,
  });
}

export function createDynamoClient(settings: CheckpointSettings): DynamoDBClient {
  return new DynamoDBClient({
    region: settings.region,
    // The SDK's own default waits without limit on a request; every run must end by its deadline.
    requestHandler: { requestTimeout: 5_000, connectionTimeout: 3_000 },
    ...(settings.endpoint
      ? {
          endpoint: settings.endpoint,
          // A local emulator accepts any signature; real credentials are never needed or sent there.
          credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
        }
      : {}),
  });
}
