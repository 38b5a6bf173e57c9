import * as z from 'zod/mini';
import {
  boolSetting,
  type Env,
  intSetting,
  parseCheckpointSettings,
  parseSyncSettings,
  requiredSetting,
  SettingError,
  SYNC_ID,
  SYNC_ID_RULE,
  type SyncSettings,
} from '../sync';
import './zod-messages';

/**
 * The function's configuration, set by the stack: secret ARNs (never values) and the syncs it serves.
 * Tunables shared by all syncs (LOOKBACK_SECONDS, SETTLE_SECONDS, ...) are plain environment variables
 * with the same names and defaults as the CLI's.
 */
const syncEntry = z.object({
  id: z.string().check(z.regex(SYNC_ID, SYNC_ID_RULE)),
  apiSecretArn: z.string().check(z.minLength(1)),
  apiUrl: z.optional(z.string()),
  campaigns: z.optional(z.array(z.string())),
  excludeCampaigns: z.optional(z.array(z.string())),
  batchSize: z.optional(z.int()),
  concurrency: z.optional(z.int()),
  startFrom: z.optional(z.string()),
});
export type SyncEntry = z.infer<typeof syncEntry>;

export interface LambdaSettings {
  readonly dbSecretArn: string;
  readonly syncs: ReadonlyMap<string, SyncEntry>;
  readonly checkpointTable: string;
  readonly region: string;
  readonly endpoint: string | undefined;
  readonly secretsTtlMs: number;
  /** ALLOW_INSECURE_API: plain http to a non-loopback API (a VPN or private link), for every sync. */
  readonly allowInsecureApi: boolean;
  readonly env: Env;
}

export function parseLambdaSettings(env: Env): LambdaSettings {
  const checkpoint = parseCheckpointSettings(env);
  const dbSecretArn = requiredSetting(env, 'DB_SECRET_ARN', 'is required (ARN of the database secret)');
  const raw = requiredSetting(env, 'SYNCS', 'is required (JSON list of syncs)');
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new SettingError('SYNCS', 'is not valid JSON');
  }
  const result = z.array(syncEntry).check(z.minLength(1)).safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new SettingError(
      `SYNCS${issue?.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('') ?? ''}`,
      issue?.message ?? 'is invalid',
    );
  }
  const syncs = new Map<string, SyncEntry>();
  for (const entry of result.data) {
    if (syncs.has(entry.id)) throw new SettingError('SYNCS', `sync id "${entry.id}" appears twice`);
    syncs.set(entry.id, entry);
    try {
      syncSettings({ env, syncs }, entry.id);
    } catch (error) {
      if (error instanceof SettingError)
        throw new SettingError(`${error.setting} (sync "${entry.id}")`, error.reason);
      throw error;
    }
  }
  return {
    dbSecretArn,
    syncs,
    checkpointTable: checkpoint.table,
    region: checkpoint.region,
    endpoint: checkpoint.endpoint,
    secretsTtlMs: intSetting(env, 'SECRETS_CACHE_TTL_SECONDS', '300', 0, 86400) * 1000,
    allowInsecureApi: boolSetting(env, 'ALLOW_INSECURE_API', false),
    env,
  };
}

/** One sync's engine settings: the shared tunables with the sync's own overrides. */
export function syncSettings(settings: Pick<LambdaSettings, 'env' | 'syncs'>, syncId: string): SyncSettings {
  const entry = settings.syncs.get(syncId);
  if (!entry)
    throw new SettingError(
      'syncId',
      `unknown sync "${syncId}" (configured: ${[...settings.syncs.keys()].join(', ')})`,
    );
  return parseSyncSettings({
    ...settings.env,
    SYNC_ID: entry.id,
    ...(entry.campaigns ? { CAMPAIGNS: entry.campaigns.join(',') } : {}),
    ...(entry.excludeCampaigns ? { EXCLUDE_CAMPAIGNS: entry.excludeCampaigns.join(',') } : {}),
    ...(entry.batchSize !== undefined ? { BATCH_SIZE: String(entry.batchSize) } : {}),
    ...(entry.concurrency !== undefined ? { CONCURRENCY: String(entry.concurrency) } : {}),
    ...(entry.startFrom !== undefined ? { START_FROM: entry.startFrom } : {}),
  });
}
