import { isoOf } from './calls/time';

/**
 * Settings of a sync, read from environment-style key/value pairs (the process environment, a `.env`
 * file, or the Lambda's configuration). Every mistake is reported as one line naming the setting and why,
 * before anything connects anywhere.
 */

export type Env = Readonly<Record<string, string | undefined>>;

export class SettingError extends Error {
  constructor(
    readonly setting: string,
    readonly reason: string,
  ) {
    super(`${setting}: ${reason}`);
    this.name = 'SettingError';
  }
}

export interface SyncSettings {
  readonly syncId: string;
  readonly batchSize: number;
  readonly concurrency: number;
  readonly lookbackSeconds: number;
  /**
   * How long before its start point (a new sync, a reset) a call may have begun and still be this
   * sync's: the start-up read adopts calls that began up to this long before it and end after it.
   */
  readonly startLookbackSeconds: number;
  readonly settleSeconds: number;
  readonly minDurationSeconds: number;
  readonly campaigns: readonly string[];
  readonly excludeCampaigns: readonly string[];
  readonly transientStatuses: ReadonlySet<string>;
  readonly pendingMaxAgeSeconds: number;
  readonly pendingMax: number;
  /** Calls that failed every attempt while others were accepted, kept for later runs (PARKED_MAX). */
  readonly parkedMax: number;
  /** Runs (in which the API accepted other calls) a parked call may fail before it is dead-lettered. */
  readonly retryMaxRuns: number;
  /** Fresh calls failing in a row that mean the API is down: the run stops. */
  readonly failureStop: number;
  readonly deadLetterDays: number;
  /** Ledger items (and repair items) expire after this many days (DynamoDB TTL). */
  readonly ledgerDays: number;
  readonly leaseSeconds: number;
  readonly checkpointIntervalMs: number;
  /** Where a sync without a checkpoint starts; undefined means one hour before the first run. */
  readonly startFrom: number | undefined;
  readonly apiTimeoutMs: number;
  readonly apiMaxAttempts: number;
}

export interface ApiSettings {
  readonly url: string;
  readonly allowInsecure: boolean;
}

export interface DbSettings {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  readonly charset: string;
}

/** How the sync talks to the database, whoever supplies the credentials. */
export interface ConnectionSettings {
  readonly queryTimeoutMs: number;
  /** Session time zone (VICIDIAL_DB_TIME_ZONE): the zone VICIdial writes call_date in. */
  readonly timeZone: string | undefined;
}

export interface CheckpointSettings {
  readonly table: string;
  readonly region: string;
  /** A local DynamoDB emulator (dynalite): the table is created when missing. */
  readonly endpoint: string | undefined;
}

/** Settings, their defaults and meaning; the README's table is written from this list. */
export const SETTING_DEFAULTS = {
  SYNC_ID: 'default',
  BATCH_SIZE: '500',
  CONCURRENCY: '16',
  LOOKBACK_SECONDS: '120',
  START_LOOKBACK_SECONDS: '43200',
  SETTLE_SECONDS: '30',
  MIN_DURATION_SECONDS: '0',
  TRANSIENT_STATUSES: 'INCALL,DISPO,QUEUE',
  PENDING_MAX_AGE_SECONDS: '7200',
  PENDING_MAX: '5000',
  PARKED_MAX: '200',
  RETRY_MAX_RUNS: '3',
  DEAD_LETTER_DAYS: '30',
  LEDGER_DAYS: '8',
  DB_QUERY_TIMEOUT_MS: '15000',
  LEASE_SECONDS: '150',
  CHECKPOINT_INTERVAL_MS: '10000',
  API_TIMEOUT_MS: '10000',
  API_MAX_ATTEMPTS: '5',
} as const;

function raw(env: Env, name: string): string | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

export function intSetting(
  env: Env,
  name: string,
  fallback: string | undefined,
  min: number,
  max: number,
): number {
  const value = raw(env, name) ?? fallback;
  if (value === undefined) throw new SettingError(name, 'is required');
  if (!/^-?\d+$/.test(value)) throw new SettingError(name, `must be a whole number, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new SettingError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function boolSetting(env: Env, name: string, fallback: boolean): boolean {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  if (/^(true|1|yes)$/i.test(value)) return true;
  if (/^(false|0|no)$/i.test(value)) return false;
  throw new SettingError(name, `must be true or false, got "${value}"`);
}

export function requiredSetting(env: Env, name: string, why = 'is required'): string {
  const value = raw(env, name);
  if (value === undefined) throw new SettingError(name, why);
  return value;
}

/** VICIdial's campaign ids; the CLI, the function and the stack's settings all check against these. */
export const CAMPAIGN_ID = /^[A-Za-z0-9_-]{1,8}$/;
/** A sync id becomes part of DynamoDB keys, log fields and the schedule's name. */
export const SYNC_ID = /^[A-Za-z0-9_-]{1,64}$/;
export const SYNC_ID_RULE = 'must be 1-64 letters, digits, "_" or "-"';

/** A comma list of campaign ids: bound as query parameters, so anything but an id is refused outright. */
export function listSetting(env: Env, name: string, pattern: RegExp, what: string): string[] {
  const value = raw(env, name);
  if (value === undefined) return [];
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const item of items) {
    if (!pattern.test(item)) throw new SettingError(name, `"${item}" is not a valid ${what}`);
  }
  return [...new Set(items)];
}

/** Epoch seconds or an ISO-8601 instant (with a zone: a bare local time would depend on the host). */
export function parseInstant(value: string): number | undefined {
  const trimmed = value.trim();
  if (/^\d{1,14}$/.test(trimmed)) return Number(trimmed);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i.test(trimmed))
    return undefined;
  const ms = Date.parse(trimmed);
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000);
}

/** 2000-01-01T00:00:00Z: VICIdial has no calls before it; an earlier instant is a typo. */
export const EARLIEST_INSTANT = 946_684_800;
/** Epoch seconds stay below this until the year 5138; anything larger is milliseconds. */
export const MILLISECONDS_THRESHOLD = 1e11;

/**
 * Why an instant the cursor would move to must be refused, or undefined when it is plausible: before
 * 2000, milliseconds, or after `nowEpoch` (a cursor in the future makes every run "complete" with no
 * calls, silently). `clock` names the clock `nowEpoch` came from, for the message.
 */
export function instantProblem(
  epoch: number,
  nowEpoch?: number,
  clock = "the database's clock",
): string | undefined {
  if (epoch > MILLISECONDS_THRESHOLD) return `${epoch} looks like milliseconds; give epoch seconds`;
  if (epoch < EARLIEST_INSTANT) return `${isoOf(epoch)} is before 2000-01-01`;
  if (nowEpoch !== undefined && epoch > nowEpoch) {
    return `${isoOf(epoch)} is after ${clock} (${isoOf(nowEpoch)}): no call would ever be read`;
  }
  return undefined;
}

export function instantSetting(env: Env, name: string): number | undefined {
  const value = raw(env, name);
  if (value === undefined) return undefined;
  const epoch = parseInstant(value);
  if (epoch === undefined) {
    throw new SettingError(
      name,
      `must be epoch seconds or ISO-8601 with a zone (2026-01-31T08:00:00Z), got "${value}"`,
    );
  }
  const problem = instantProblem(epoch);
  if (problem) throw new SettingError(name, problem);
  return epoch;
}

/** A time zone as MySQL's `SET time_zone` takes it: an offset or a named zone. */
const TIME_ZONE = /^([+-](0\d|1[0-4]):[0-5]\d|SYSTEM|[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+){0,2})$/;

export function parseConnectionSettings(env: Env): ConnectionSettings {
  const timeZone = raw(env, 'VICIDIAL_DB_TIME_ZONE');
  if (timeZone !== undefined && !TIME_ZONE.test(timeZone)) {
    throw new SettingError(
      'VICIDIAL_DB_TIME_ZONE',
      `must be an offset like +08:00 or a zone name like America/New_York, got "${timeZone}"`,
    );
  }
  return {
    queryTimeoutMs: intSetting(
      env,
      'DB_QUERY_TIMEOUT_MS',
      SETTING_DEFAULTS.DB_QUERY_TIMEOUT_MS,
      1000,
      300_000,
    ),
    timeZone,
  };
}

export function parseSyncSettings(env: Env): SyncSettings {
  const d = SETTING_DEFAULTS;
  const syncId = raw(env, 'SYNC_ID') ?? d.SYNC_ID;
  if (!SYNC_ID.test(syncId)) throw new SettingError('SYNC_ID', SYNC_ID_RULE);
  const campaigns = listSetting(env, 'CAMPAIGNS', CAMPAIGN_ID, 'campaign id');
  const excludeCampaigns = listSetting(env, 'EXCLUDE_CAMPAIGNS', CAMPAIGN_ID, 'campaign id');
  const overlap = campaigns.find((c) => excludeCampaigns.includes(c));
  if (overlap) throw new SettingError('EXCLUDE_CAMPAIGNS', `"${overlap}" is also listed in CAMPAIGNS`);
  const transient = listSetting(env, 'TRANSIENT_STATUSES', /^[A-Za-z0-9_-]{1,6}$/, 'status');
  const leaseSeconds = intSetting(env, 'LEASE_SECONDS', d.LEASE_SECONDS, 30, 3600);
  const checkpointIntervalMs = intSetting(
    env,
    'CHECKPOINT_INTERVAL_MS',
    d.CHECKPOINT_INTERVAL_MS,
    100,
    60_000,
  );
  if (checkpointIntervalMs >= leaseSeconds * 1000) {
    throw new SettingError(
      'CHECKPOINT_INTERVAL_MS',
      'must be shorter than LEASE_SECONDS, or the lease lapses between writes',
    );
  }
  const concurrency = intSetting(env, 'CONCURRENCY', d.CONCURRENCY, 1, 64);
  return {
    syncId,
    batchSize: intSetting(env, 'BATCH_SIZE', d.BATCH_SIZE, 1, 5000),
    concurrency,
    lookbackSeconds: intSetting(env, 'LOOKBACK_SECONDS', d.LOOKBACK_SECONDS, 0, 86400),
    startLookbackSeconds: intSetting(env, 'START_LOOKBACK_SECONDS', d.START_LOOKBACK_SECONDS, 0, 7 * 86400),
    settleSeconds: intSetting(env, 'SETTLE_SECONDS', d.SETTLE_SECONDS, 0, 3600),
    minDurationSeconds: intSetting(env, 'MIN_DURATION_SECONDS', d.MIN_DURATION_SECONDS, -1, 86400),
    campaigns,
    excludeCampaigns,
    transientStatuses: new Set(
      (raw(env, 'TRANSIENT_STATUSES') === undefined ? d.TRANSIENT_STATUSES.split(',') : transient).map((s) =>
        s.toUpperCase(),
      ),
    ),
    pendingMaxAgeSeconds: intSetting(env, 'PENDING_MAX_AGE_SECONDS', d.PENDING_MAX_AGE_SECONDS, 0, 7 * 86400),
    // Each followed call takes ~40 bytes of the checkpoint item (DynamoDB's limit is 400 KB).
    pendingMax: intSetting(env, 'PENDING_MAX', d.PENDING_MAX, 0, 8000),
    parkedMax: intSetting(env, 'PARKED_MAX', d.PARKED_MAX, 0, 1000),
    retryMaxRuns: intSetting(env, 'RETRY_MAX_RUNS', d.RETRY_MAX_RUNS, 1, 100),
    failureStop: intSetting(env, 'FAILURE_STOP', String(2 * concurrency), 1, 1000),
    deadLetterDays: intSetting(env, 'DEAD_LETTER_DAYS', d.DEAD_LETTER_DAYS, 1, 3650),
    ledgerDays: intSetting(env, 'LEDGER_DAYS', d.LEDGER_DAYS, 1, 365),
    leaseSeconds,
    checkpointIntervalMs,
    startFrom: instantSetting(env, 'START_FROM'),
    apiTimeoutMs: intSetting(env, 'API_TIMEOUT_MS', d.API_TIMEOUT_MS, 100, 120_000),
    apiMaxAttempts: intSetting(env, 'API_MAX_ATTEMPTS', d.API_MAX_ATTEMPTS, 1, 20),
  };
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** The API base URL: https, unless it is a loopback host or insecure transport was explicitly allowed. */
export function validateApiUrl(name: string, value: string, allowInsecure: boolean): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new SettingError(name, `is not a URL: "${value}"`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new SettingError(name, `must be an https:// URL, got ${url.protocol}`);
  }
  if (url.username || url.password) throw new SettingError(name, 'must not carry credentials; use API_KEY');
  if (url.protocol === 'http:' && !allowInsecure && !LOOPBACK_HOSTS.has(url.hostname)) {
    throw new SettingError(
      name,
      'must use https:// (plain http is only allowed for loopback hosts or with ALLOW_INSECURE_API=true)',
    );
  }
  return value.replace(/\/+$/, '');
}

export function parseApiSettings(env: Env): ApiSettings {
  const allowInsecure = boolSetting(env, 'ALLOW_INSECURE_API', false);
  const url = requiredSetting(
    env,
    'DID_OPTIMIZER_API_URL',
    'is required (the DID Optimizer base URL, e.g. https://dids.example.com)',
  );
  return { url: validateApiUrl('DID_OPTIMIZER_API_URL', url, allowInsecure), allowInsecure };
}

export function parseCheckpointSettings(env: Env): CheckpointSettings {
  const table = requiredSetting(
    env,
    'CHECKPOINT_TABLE',
    'is required (the DynamoDB table holding checkpoints)',
  );
  if (!/^[A-Za-z0-9_.-]{3,255}$/.test(table)) {
    throw new SettingError('CHECKPOINT_TABLE', 'must be 3-255 letters, digits, "_", "-" or "."');
  }
  const endpoint = raw(env, 'DYNAMODB_ENDPOINT');
  if (endpoint !== undefined) {
    try {
      new URL(endpoint);
    } catch {
      throw new SettingError('DYNAMODB_ENDPOINT', `is not a URL: "${endpoint}"`);
    }
  }
  const region =
    raw(env, 'AWS_REGION') ?? raw(env, 'AWS_DEFAULT_REGION') ?? (endpoint ? 'us-east-1' : undefined);
  if (!region) throw new SettingError('AWS_REGION', 'is required (the region of CHECKPOINT_TABLE)');
  return { table, region, endpoint };
}
