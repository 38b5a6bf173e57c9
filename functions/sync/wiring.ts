import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { type ApiKeyProvider, DidOptimizerClient } from './api-client';
import type { CheckpointStore } from './checkpoint-store';
import { type DbCredentialSource, VicidialDbConnection } from './db-connection';
import type { SyncDeps } from './engine';
import type { SyncLog } from './log';
import type { ApiSettings, CheckpointSettings, SyncSettings } from './settings';
import { USER_AGENT } from './version';
import { VicidialLog } from './vicidial-log';

/** Builds the engine's parts from settings: the one place the CLI, the handler, the demo and the tests share. */
export type SyncParts = {
  readonly settings: SyncSettings;
  readonly api: ApiSettings;
  readonly keys: ApiKeyProvider;
  readonly checkpoints: CheckpointStore;
  readonly log: SyncLog;
} & (
  | { readonly db: DbCredentialSource; readonly connection?: undefined }
  /** A connection kept across warm Lambda invocations, closed by its owner. */
  | { readonly connection: VicidialDbConnection; readonly db?: undefined }
);

export interface Sync extends SyncDeps {
  readonly connection: VicidialDbConnection;
  close(): Promise<void>;
}

export function createSync(parts: SyncParts): Sync {
  const connection = parts.connection ?? new VicidialDbConnection(parts.db);
  const s = parts.settings;
  return {
    settings: s,
    calls: new VicidialLog(connection, {
      minDurationSeconds: s.minDurationSeconds,
      campaigns: s.campaigns,
      excludeCampaigns: s.excludeCampaigns,
    }),
    checkpoints: parts.checkpoints,
    api: new DidOptimizerClient({ baseUrl: parts.api.url, timeoutMs: s.apiTimeoutMs, userAgent: USER_AGENT }),
    keys: parts.keys,
    log: parts.log,
    connection,
    // A shared connection outlives this sync; its owner closes it.
    close: () => (parts.connection ? Promise.resolve() : connection.close()),
  };
}

export function createDynamoClient(settings: CheckpointSettings): DynamoDBClient {
  return new DynamoDBClient({
    region: settings.region,
    ...(settings.endpoint
      ? {
          endpoint: settings.endpoint,
          // A local emulator accepts any signature; real credentials are never needed or sent there.
          credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
        }
      : {}),
  });
}
