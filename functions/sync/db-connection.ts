import mysql from 'mysql2/promise';
import type { DbSettings } from './settings';
import type { SqlClient } from './vicidial-log';

/**
 * Where database credentials come from. The static source serves the CLI's settings; the Lambda's
 * source reads Secrets Manager and can fetch again after a rotation.
 */
export interface DbCredentialSource {
  current(): Promise<DbSettings>;
  /** Fetch the credentials again, bypassing any cache (after the database refused them). */
  refresh?(): Promise<DbSettings>;
  /** Credentials still being rotated in (Secrets Manager's AWSPENDING), tried once as a last resort. */
  pending?(): Promise<DbSettings | undefined>;
}

export function staticCredentials(settings: DbSettings): DbCredentialSource {
  return { current: async () => settings };
}

export class DatabaseAccessError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatabaseAccessError';
  }
}

const ACCESS_DENIED = new Set(['ER_ACCESS_DENIED_ERROR', 'ER_DBACCESS_DENIED_ERROR', 'ER_DBACCESS_DENIED']);

function isAccessDenied(error: unknown): boolean {
  const e = error as { code?: string; errno?: number };
  return (e?.code !== undefined && ACCESS_DENIED.has(e.code)) || e?.errno === 1045 || e?.errno === 1044;
}

function sameCredentials(a: DbSettings, b: DbSettings): boolean {
  return a.host === b.host && a.port === b.port && a.user === b.user && a.password === b.password;
}

/**
 * A small mysql2 pool that survives a password rotation: when the server refuses the credentials it
 * asks the source for fresh ones, then for the pending ones, before giving up with a clear error.
 */
export class VicidialDbConnection implements SqlClient {
  private pool: mysql.Pool | undefined;
  private settings: DbSettings | undefined;

  constructor(
    private readonly source: DbCredentialSource,
    private readonly options: { connectTimeoutMs?: number; poolSize?: number } = {},
  ) {}

  async query<T>(sql: string, values: readonly unknown[]): Promise<T[]> {
    try {
      return await this.run<T>(await this.currentPool(), sql, values);
    } catch (error) {
      if (!isAccessDenied(error)) throw error;
      return this.retryWithFreshCredentials<T>(sql, values, error);
    }
  }

  private async retryWithFreshCredentials<T>(
    sql: string,
    values: readonly unknown[],
    first: unknown,
  ): Promise<T[]> {
    const tried: DbSettings[] = this.settings ? [this.settings] : [];
    const candidates: (() => Promise<DbSettings | undefined>)[] = [];
    if (this.source.refresh) candidates.push(this.source.refresh.bind(this.source));
    if (this.source.pending) candidates.push(this.source.pending.bind(this.source));
    let last = first;
    for (const next of candidates) {
      const settings = await next();
      if (!settings || tried.some((t) => sameCredentials(t, settings))) continue;
      tried.push(settings);
      await this.replacePool(settings);
      try {
        return await this.run<T>(this.pool as mysql.Pool, sql, values);
      } catch (error) {
        if (!isAccessDenied(error)) throw error;
        last = error;
      }
    }
    const s = this.settings;
    throw new DatabaseAccessError(
      `database refused the credentials of user ${s?.user ?? '?'} at ${s?.host ?? '?'}:${s?.port ?? '?'}: ${(last as Error).message}`,
      { cause: last },
    );
  }

  private async run<T>(pool: mysql.Pool, sql: string, values: readonly unknown[]): Promise<T[]> {
    const [rows] = await pool.query(sql, values as unknown[]);
    return rows as T[];
  }

  private async currentPool(): Promise<mysql.Pool> {
    if (!this.pool) await this.replacePool(await this.source.current());
    return this.pool as mysql.Pool;
  }

  private async replacePool(settings: DbSettings): Promise<void> {
    const old = this.pool;
    this.settings = settings;
    this.pool = mysql.createPool({
      host: settings.host,
      port: settings.port,
      user: settings.user,
      password: settings.password,
      database: settings.database,
      charset: settings.charset,
      // call_date stays the database's own string: no conversion through the host's time zone.
      dateStrings: true,
      supportBigNumbers: true,
      connectionLimit: this.options.poolSize ?? 2,
      connectTimeout: this.options.connectTimeoutMs ?? 10_000,
      enableKeepAlive: true,
    });
    if (old) await old.end().catch(() => undefined);
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    if (pool) await pool.end();
  }
}
