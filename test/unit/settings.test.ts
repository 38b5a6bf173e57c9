import { describe, expect, it } from 'vitest';
import {
  parseApiSettings,
  parseCheckpointSettings,
  parseInstant,
  parseSyncSettings,
  SettingError,
} from '../../functions/sync/settings';
import { parseAstguiclientConf, parseDbSettings } from '../../functions/sync/source/db-settings';

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(SettingError);
    return (error as Error).message;
  }
  throw new Error('expected a SettingError');
}

describe('parseSyncSettings', () => {
  it('has the documented defaults', () => {
    const s = parseSyncSettings({});
    expect(s).toMatchObject({
      syncId: 'default',
      batchSize: 500,
      concurrency: 16,
      lookbackSeconds: 120,
      settleSeconds: 30,
      minDurationSeconds: 0,
      campaigns: [],
      excludeCampaigns: [],
      pendingMaxAgeSeconds: 7200,
      leaseSeconds: 150,
      checkpointIntervalMs: 10000,
      ledgerDays: 8,
      apiTimeoutMs: 10000,
      parkedMax: 200,
      retryMaxRuns: 3,
      failureStop: 32,
      deadLetterDays: 30,
      startFrom: undefined,
    });
    expect([...s.transientStatuses]).toEqual(['INCALL', 'DISPO', 'QUEUE']);
    expect(parseSyncSettings({ CONCURRENCY: '4' }).failureStop).toBe(8);
  });

  it('reads campaign lists as ids, never as SQL', () => {
    expect(parseSyncSettings({ CAMPAIGNS: 'SALESA, SALESB,,SALESA' }).campaigns).toEqual([
      'SALESA',
      'SALESB',
    ]);
    expect(errorOf(() => parseSyncSettings({ CAMPAIGNS: "A' OR 1=1 --" }))).toBe(
      'CAMPAIGNS: "A\' OR 1=1 --" is not a valid campaign id',
    );
    expect(errorOf(() => parseSyncSettings({ CAMPAIGNS: 'A', EXCLUDE_CAMPAIGNS: 'A' }))).toMatch(
      /^EXCLUDE_CAMPAIGNS:/,
    );
  });

  it.each([
    [{ BATCH_SIZE: 'abc' }, 'BATCH_SIZE: must be a whole number, got "abc"'],
    [{ BATCH_SIZE: '0' }, 'BATCH_SIZE: must be between 1 and 5000, got 0'],
    [{ CONCURRENCY: '1000' }, 'CONCURRENCY: must be between 1 and 64, got 1000'],
    [{ SYNC_ID: 'a b' }, 'SYNC_ID: must be 1-64 letters, digits, "_" or "-"'],
    [{ START_FROM: 'yesterday' }, /^START_FROM: must be epoch seconds or ISO-8601/],
    [{ START_FROM: '2026-01-01 08:00:00' }, /^START_FROM: must be epoch seconds or ISO-8601 with a zone/],
    [{ LEASE_SECONDS: '30', CHECKPOINT_INTERVAL_MS: '40000' }, /^CHECKPOINT_INTERVAL_MS: must be shorter/],
  ])('refuses %o with one line naming the setting', (env, message) => {
    const text = errorOf(() => parseSyncSettings(env as Record<string, string>));
    expect(text).not.toContain('\n');
    if (typeof message === 'string') expect(text).toBe(message);
    else expect(text).toMatch(message);
  });

  it('reads START_FROM as epoch or zoned ISO-8601', () => {
    expect(parseInstant('1729771234')).toBe(1729771234);
    expect(parseInstant('2024-10-24T12:00:34Z')).toBe(1729771234);
    expect(parseInstant('2024-10-24T08:00:34-04:00')).toBe(1729771234);
  });
});

describe('parseApiSettings', () => {
  it('requires https except on loopback', () => {
    expect(parseApiSettings({ DID_OPTIMIZER_API_URL: 'https://dids.example.com/' }).url).toBe(
      'https://dids.example.com',
    );
    expect(parseApiSettings({ DID_OPTIMIZER_API_URL: 'http://127.0.0.1:5000' }).url).toBe(
      'http://127.0.0.1:5000',
    );
    expect(parseApiSettings({ DID_OPTIMIZER_API_URL: 'http://localhost:5000' }).url).toBe(
      'http://localhost:5000',
    );
    expect(errorOf(() => parseApiSettings({ DID_OPTIMIZER_API_URL: 'http://dids.example.com' }))).toMatch(
      /^DID_OPTIMIZER_API_URL: must use https:\/\//,
    );
    expect(
      parseApiSettings({ DID_OPTIMIZER_API_URL: 'http://10.0.0.9:5000', ALLOW_INSECURE_API: 'true' }).url,
    ).toBe('http://10.0.0.9:5000');
    expect(errorOf(() => parseApiSettings({}))).toMatch(/^DID_OPTIMIZER_API_URL: is required/);
    expect(errorOf(() => parseApiSettings({ DID_OPTIMIZER_API_URL: 'dids' }))).toMatch(/is not a URL/);
  });
});

describe('parseCheckpointSettings', () => {
  it('needs a table and a region, except against a local emulator', () => {
    expect(errorOf(() => parseCheckpointSettings({}))).toMatch(/^CHECKPOINT_TABLE: is required/);
    expect(errorOf(() => parseCheckpointSettings({ CHECKPOINT_TABLE: 'did-sync' }))).toMatch(
      /^AWS_REGION: is required/,
    );
    expect(
      parseCheckpointSettings({ CHECKPOINT_TABLE: 'did-sync', DYNAMODB_ENDPOINT: 'http://127.0.0.1:8000' }),
    ).toEqual({
      table: 'did-sync',
      region: 'us-east-1',
      endpoint: 'http://127.0.0.1:8000',
    });
  });
});

describe('database settings', () => {
  const conf = `
# comment
VARDB_server => 10.0.0.5
VARDB_database => asterisk
VARDB_user => cron
VARDB_pass => s3cret pass
VARDB_port => 3307
`;

  it("parses VICIdial's astguiclient.conf", () => {
    expect(parseAstguiclientConf(conf)).toMatchObject({
      VARDB_server: '10.0.0.5',
      VARDB_pass: 's3cret pass',
    });
  });

  it('falls back to astguiclient.conf when no VICIDIAL_DB_* is set', () => {
    expect(parseDbSettings({}, () => conf)).toEqual({
      host: '10.0.0.5',
      port: 3307,
      user: 'cron',
      password: 's3cret pass',
      database: 'asterisk',
      charset: 'utf8mb4',
    });
  });

  it('has no default credentials', () => {
    expect(errorOf(() => parseDbSettings({ VICIDIAL_DB_HOST: 'db' }, () => undefined))).toMatch(
      /^VICIDIAL_DB_USER: is required/,
    );
    expect(errorOf(() => parseDbSettings({}, () => undefined))).toMatch(/^VICIDIAL_DB_HOST: is required/);
    expect(errorOf(() => parseDbSettings({}, () => 'VARDB_server => x\n'))).toBe(
      'VICIDIAL_DB_USER: is missing from /etc/astguiclient.conf (VARDB_user)',
    );
  });

  it('never puts the password in an error', () => {
    const text = errorOf(() =>
      parseDbSettings({
        VICIDIAL_DB_HOST: 'db',
        VICIDIAL_DB_USER: 'u',
        VICIDIAL_DB_PASSWORD: 'hunter2',
        VICIDIAL_DB_PORT: 'x',
      }),
    );
    expect(text).not.toContain('hunter2');
  });
});
