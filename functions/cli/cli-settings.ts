import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { parseLambdaSettings, type SyncEntry, syncSettings } from '../lambda/lambda-settings';
import { SecretCache } from '../lambda/secret-cache';
import { readApiSecret, SecretDbCredentials, secretApiKey } from '../lambda/secret-credentials';
import {
  type ApiKeyProvider,
  type ApiSettings,
  type CheckpointStore,
  type DbCredentialSource,
  type DbSettings,
  type Env,
  parseApiSettings,
  parseDbSettings,
  parseSyncSettings,
  SettingError,
  SYNC_ID,
  SYNC_ID_RULE,
  type SyncSettings,
  staticApiKey,
  staticCredentials,
  validateApiUrl,
} from '../sync';
import { labelErrors } from './parts';

/**
 * Which sync the command acts on, and where its database credentials and API key come from, read the
 * way the Lambda reads them when the function's environment is given (SYNCS, DB_SECRET_ARN), or from
 * plain settings (SYNC_ID, VICIDIAL_DB_*, API_KEY). Never a silent `default`: the one case that falls
 * back to it is an existing `default` checkpoint, and then a notice names SYNC_ID=default.
 */

const DB_VARS = ['VICIDIAL_DB_HOST', 'VICIDIAL_DB_USER', 'VICIDIAL_DB_PASSWORD', 'VICIDIAL_DB_NAME'];

export interface ChosenSync {
  readonly settings: SyncSettings;
  /** The SYNCS entry when the function's environment was given. */
  readonly entry: SyncEntry | undefined;
  /** Said on stderr before the command's answer (a fallback the operator should know about). */
  readonly notice: string | undefined;
}

function lambdaSyncs(env: Env): ReturnType<typeof parseLambdaSettings> | undefined {
  if (!env.SYNCS?.trim()) return undefined;
  // The function's parser checks SYNCS exactly as the Lambda does; DB_SECRET_ARN is checked where it is
  // used, since a cron host may give VICIDIAL_DB_* instead.
  return parseLambdaSettings({ DB_SECRET_ARN: 'unused', ...env });
}

export async function chooseSync(
  env: Env,
  flag: string | undefined,
  store: Pick<CheckpointStore, 'read'>,
): Promise<ChosenSync> {
  const asked = flag?.trim() || env.SYNC_ID?.trim() || undefined;
  const source = flag?.trim() ? '--sync' : 'SYNC_ID';
  if (asked !== undefined && !SYNC_ID.test(asked)) throw new SettingError(source, SYNC_ID_RULE);
  const lambda = lambdaSyncs(env);
  if (lambda) {
    const ids = [...lambda.syncs.keys()];
    let id = asked;
    if (id === undefined) {
      if (ids.length > 1) {
        throw new SettingError(
          'SYNC_ID',
          `is required: SYNCS lists ${ids.length} syncs (${ids.join(', ')}); choose one with SYNC_ID=<id> or --sync <id>`,
        );
      }
      id = ids[0] as string;
    }
    if (!lambda.syncs.has(id))
      throw new SettingError(source, `"${id}" is not in SYNCS (configured: ${ids.join(', ')})`);
    return { settings: syncSettings(lambda, id), entry: lambda.syncs.get(id), notice: undefined };
  }
  if (asked !== undefined) {
    return { settings: parseSyncSettings({ ...env, SYNC_ID: asked }), entry: undefined, notice: undefined };
  }
  // Settings are checked before the table is asked, so a typo is reported as such.
  const settings = parseSyncSettings({ ...env, SYNC_ID: 'default' });
  if (await store.read('default')) {
    return {
      settings,
      entry: undefined,
      notice:
        'did-sync: notice: SYNC_ID is not set; acting on the existing checkpoint of sync "default" (set SYNC_ID=default to say so)',
    };
  }
  throw new SettingError(
    'SYNC_ID',
    "is required (the sync this command acts on, e.g. the id in the function's SYNCS; or give SYNCS itself)",
  );
}

/** The database's credentials and a label naming it in errors (host:port, once known). */
export interface DatabaseSource {
  readonly credentials: DbCredentialSource;
  label(): string;
}

let secretCache: SecretCache | undefined;
function secrets(env: Env, region: string): SecretCache {
  if (!secretCache) {
    const endpoint = env.SECRETS_MANAGER_ENDPOINT?.trim() || undefined;
    const client = new SecretsManagerClient({ region, endpoint });
    labelErrors(
      client as unknown as Parameters<typeof labelErrors>[0],
      `Secrets Manager (${endpoint ?? `secretsmanager.${region}.amazonaws.com`})`,
    );
    secretCache = new SecretCache(client, 5 * 60_000);
  }
  return secretCache;
}

/**
 * VICIDIAL_DB_* (or /etc/astguiclient.conf) as before; DB_SECRET_ARN, as in the function, when none of
 * VICIDIAL_DB_* is set. Undefined when neither is there (status and reset then do without the database).
 */
export function databaseSource(env: Env, region: string, required: boolean): DatabaseSource | undefined {
  const secretArn = env.DB_SECRET_ARN?.trim();
  if (secretArn && !DB_VARS.some((k) => env[k]?.trim())) {
    let last: DbSettings | undefined;
    const inner = new SecretDbCredentials(secrets(env, region), secretArn);
    const remember = async (p: Promise<DbSettings>) => {
      last = await p;
      return last;
    };
    return {
      credentials: {
        current: () => remember(inner.current()),
        refresh: () => remember(inner.refresh()),
        pending: () => inner.pending(),
      },
      label: () =>
        last ? `${last.host}:${last.port}` : `the database of secret ${secretArn} (DB_SECRET_ARN)`,
    };
  }
  let db: DbSettings;
  try {
    db = parseDbSettings(env);
  } catch (error) {
    if (required) throw error;
    return undefined;
  }
  return { credentials: staticCredentials(db), label: () => `${db.host}:${db.port}` };
}

export interface ApiSource {
  readonly api: ApiSettings;
  readonly keys: ApiKeyProvider;
  /** Where the key comes from, for an error about it: never the key. */
  readonly keySource: string;
}

/** API_KEY and DID_OPTIMIZER_API_URL; or, in the function's environment, the sync's API secret. */
export async function apiSource(env: Env, chosen: ChosenSync, region: string): Promise<ApiSource> {
  const key = env.API_KEY?.trim();
  const entry = chosen.entry;
  if (key || !entry) {
    const api = parseApiSettings(env);
    if (!key) throw new SettingError('API_KEY', 'is required (the DID Optimizer API key)');
    return { api, keys: staticApiKey(key), keySource: 'API_KEY' };
  }
  const cache = secrets(env, region);
  const secret = await readApiSecret(cache, entry.apiSecretArn);
  const allowInsecure = /^(true|1|yes)$/i.test(env.ALLOW_INSECURE_API?.trim() ?? '');
  const url = env.DID_OPTIMIZER_API_URL?.trim() || secret.apiUrl || entry.apiUrl;
  if (!url)
    throw new SettingError(
      'DID_OPTIMIZER_API_URL',
      `is required (or "apiUrl" in secret ${entry.apiSecretArn} or in the SYNCS entry)`,
    );
  return {
    api: { url: validateApiUrl('DID_OPTIMIZER_API_URL', url, allowInsecure), allowInsecure },
    keys: secretApiKey(cache, entry.apiSecretArn),
    keySource: `secret ${entry.apiSecretArn} (apiSecretArn of sync "${entry.id}" in SYNCS)`,
  };
}
