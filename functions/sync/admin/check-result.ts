import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SyncSettings } from '../settings';
import type { SqlClient } from '../source/vicidial-log';

/** What every check of `did-sync check` shares: its names, its verdict, its dependencies and its time bound. */

export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  readonly status: CheckStatus;
  readonly message: string;
  readonly details?: Record<string, unknown>;
}

export const CHECK_NAMES = [
  'database',
  'grants',
  'table',
  'queryPlan',
  'timeZone',
  'apiKey',
  'apiRedirect',
  'checkpointTable',
] as const;
export type CheckName = (typeof CHECK_NAMES)[number];

/** How the CLI labels each check. */
export const CHECK_LABELS: Readonly<Record<CheckName, string>> = {
  database: 'database',
  grants: 'read-only grant',
  table: 'vicidial_log',
  queryPlan: 'query plan',
  timeZone: 'time zone',
  apiKey: 'API key',
  apiRedirect: 'API redirect',
  checkpointTable: 'checkpoint table',
};

export interface CheckDeps {
  readonly settings: SyncSettings;
  readonly db: SqlClient;
  /** The API's base URL and key; reading them (a secret) may fail, and that is the API check's failure. */
  readonly api: () => Promise<{ readonly url: string; readonly key: string }>;
  readonly userAgent: string;
  readonly dynamo: DynamoDBClient;
  readonly table: string;
}

export class CheckTimeoutError extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms / 1000} s`);
    this.name = 'CheckTimeoutError';
  }
}

/** Runs `task` with a signal that aborts, and a result that gives up, after `ms`. */
export async function bounded<T>(ms: number, task: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new CheckTimeoutError(ms));
    }, ms);
  });
  try {
    return await Promise.race([task(controller.signal), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export const pass = (message: string, details?: Record<string, unknown>): CheckResult => ({
  status: 'pass',
  message,
  ...(details ? { details } : {}),
});
export const fail = (message: string, details?: Record<string, unknown>): CheckResult => ({
  status: 'fail',
  message,
  ...(details ? { details } : {}),
});
export const skip = (message: string): CheckResult => ({ status: 'skip', message });
