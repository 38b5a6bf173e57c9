import mysql from 'mysql2/promise';
import { type DbSettings, SettingError } from '../settings';
import type { QueryOptions, SqlClient } from './vicidial-log';

/**
 * The connection to VICIdial's database: a small mysql2 pool that
 * - bounds every query by its own timeout (DB_QUERY_TIMEOUT_MS, never beyond the caller's time left),
 *   and on timeout destroys the connection and `KILL QUERY`s its thread on the server (a client-side
 *   timeout alone leaves the query running, e.g. waiting on a MyISAM table lock, and the slot taken);
 * - retries a query once on a new connection when the old one is dead (closed by `wait_timeout` while a
 *   Lambda was frozen, or a flow a NAT dropped without a word);
 * - sets the session `time_zone` (VICIDIAL_DB_TIME_ZONE) on every connection it opens;
 * - survives a password rotation: when the server refuses the credentials it asks the source for fresh
 *   ones, then for the pending ones, before giving up with a clear error.
 */

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

/** A query that did not finish in time; `serverState` says what its thread was doing (a lock wait...). */
export class DatabaseTimeoutError extends Error {
  readonly code = 'DB_QUERY_TIMEOUT';
  constructor(
    readonly timeoutMs: number,
    readonly serverState: string | null,
  ) {
    super(
      `query did not finish within ${timeoutMs} ms${serverState ? ` (server: ${serverState}; query killed)` : ' (connection dead or unreachable)'}`,
    );
    this.name = 'DatabaseTimeoutError';
  }
}

export interface ConnectionOptions {
  readonly connectTimeoutMs?: number;
  readonly poolSize?: number;
  /** Per-query timeout, default 15 000 ms. */
  readonly queryTimeoutMs?: number;
  /** Session time zone for every connection (`+08:00`, `America/New_York`); default: the server's. */
  readonly timeZone?: string | undefined;
}

export const DEFAULT_QUERY_TIMEOUT_MS = 15_000;
/** How long the look at a timed-out query's thread (and its KILL) may take. */
const DIAGNOSE_MS = 1_500;

const ACCESS_DENIED = new Set(['ER_ACCESS_DENIED_ERROR', 'ER_DBACCESS_DENIED_ERROR', 'ER_DBACCESS_DENIED']);

function isAccessDenied(error: unknown): boolean {
  const e = error as { code?: string; errno?: number };
  return (e?.code !== undefined && ACCESS_DENIED.has(e.code)) || e?.errno === 1045 || e?.errno === 1044;
}

const CONNECTION_CODES = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ER_CLIENT_INTERACTION_TIMEOUT',
  'ER_SERVER_SHUTDOWN',
  'ER_CONNECTION_KILLED',
]);

/** A failure of the connection, not of the query: worth one try on a new connection. */
export function isConnectionError(error: unknown): boolean {
  const e = error as { code?: string; message?: string; fatal?: boolean };
  if (e?.code && CONNECTION_CODES.has(e.code)) return true;
  if (error instanceof DatabaseTimeoutError) return error.serverState === null;
  return /closed state|connection lost|server has gone away|lost connection/i.test(e?.message ?? '');
}

function sameCredentials(a: DbSettings, b: DbSettings): boolean {
  return a.host === b.host && a.port === b.port && a.user === b.user && a.password === b.password;
}

type Prepared = WeakSet<object>;

export class VicidialDbConnection implements SqlClient {
  private pool: mysql.Pool | undefined;
  private settings: DbSettings | undefined;
  private prepared: Prepared = new WeakSet();
  /** `SET STATEMENT max_statement_time=... FOR` (MariaDB) or a MAX_EXECUTION_TIME hint (MySQL). */
  private flavor: 'mariadb' | 'mysql' | undefined;
  private readonly queryTimeoutMs: number;

  constructor(
    private readonly source: DbCredentialSource,
    private readonly options: ConnectionOptions = {},
  ) {
    this.queryTimeoutMs = options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
  }

  async query<T>(sql: string, values: readonly unknown[], options: QueryOptions = {}): Promise<T[]> {
    const started = Date.now();
    const budget = () =>
      Math.min(this.queryTimeoutMs, (options.timeoutMs ?? Number.POSITIVE_INFINITY) - (Date.now() - started));
    try {
      return await this.attempt<T>(await this.currentPool(), sql, values, budget());
    } catch (error) {
      if (isAccessDenied(error)) return this.retryWithFreshCredentials<T>(sql, values, error, budget);
      if (!isConnectionError(error) || budget() < 100) throw error;
      // A dead pooled connection (the server's wait_timeout, a NAT's idle timeout): start afresh once.
      await this.replacePool(this.settings ?? (await this.source.current()));
      return this.attempt<T>(this.pool as mysql.Pool, sql, values, budget());
    }
  }

  private async retryWithFreshCredentials<T>(
    sql: string,
    values: readonly unknown[],
    first: unknown,
    budget: () => number,
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
        return await this.attempt<T>(this.pool as mysql.Pool, sql, values, budget());
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

  /** One try of one query on one pooled connection, within `timeoutMs`. */
  private async attempt<T>(
    pool: mysql.Pool,
    sql: string,
    values: readonly unknown[],
    timeoutMs: number,
  ): Promise<T[]> {
    const ms = Math.max(1, Math.floor(timeoutMs));
    const conn = await withTimeout(pool.getConnection(), ms, (late) => late.release());
    if (conn === undefined) throw new DatabaseTimeoutError(ms, null);
    let timedOut = false;
    try {
      await this.prepare(conn);
      const statement = this.bounded(sql, ms);
      const result = await withTimeout(
        conn.query(statement, values as unknown[]),
        ms,
        () => undefined,
        () => {
          timedOut = true;
        },
      );
      if (result === undefined) throw await this.afterTimeout(conn, ms);
      return result[0] as T[];
    } finally {
      if (!timedOut) conn.release();
    }
  }

  /**
   * The connection is destroyed; a look at its server thread tells a query still running (a table lock
   * held by a report, the nightly archive) from a connection that died on the way. The first is killed
   * and not retried; the second is worth a new connection.
   */
  private async afterTimeout(conn: mysql.PoolConnection, ms: number): Promise<DatabaseTimeoutError> {
    const threadId = conn.threadId;
    conn.destroy();
    const s = this.settings;
    if (!s) return new DatabaseTimeoutError(ms, null);
    let side: mysql.Connection | undefined;
    const look = (async () => {
      side = await mysql.createConnection({ ...connectionConfig(s), connectTimeout: DIAGNOSE_MS });
      const [rows] = await side.query(
        'SELECT COMMAND AS command, STATE AS state, TIME AS time FROM information_schema.PROCESSLIST WHERE ID = ?',
        [threadId],
      );
      const thread = (rows as { command: string; state: string | null; time: number }[])[0];
      if (!thread || thread.command === 'Sleep') return new DatabaseTimeoutError(ms, null);
      await side.query(`KILL QUERY ${Number(threadId)}`);
      return new DatabaseTimeoutError(
        ms,
        `${thread.command}${thread.state ? `, ${thread.state}` : ''} for ${thread.time} s`,
      );
    })();
    try {
      const diagnosed = await withTimeout(look, DIAGNOSE_MS, () => undefined);
      return diagnosed ?? new DatabaseTimeoutError(ms, null);
    } catch {
      return new DatabaseTimeoutError(ms, null);
    } finally {
      look.finally(() => side?.destroy()).catch(() => undefined);
    }
  }

  /** Wraps a SELECT in the server's own statement time limit, a second line of defence. */
  private bounded(sql: string, ms: number): string {
    if (!/^\s*SELECT\b/i.test(sql)) return sql;
    const seconds = Math.max(1, Math.ceil(ms / 1000));
    if (this.flavor === 'mariadb') return `SET STATEMENT max_statement_time=${seconds} FOR ${sql}`;
    if (this.flavor === 'mysql')
      return sql.replace(/^\s*SELECT\b/i, `SELECT /*+ MAX_EXECUTION_TIME(${seconds * 1000}) */`);
    return sql;
  }

  /** Once per new connection: the session time zone (checked), and which server this is. */
  private async prepare(conn: mysql.PoolConnection): Promise<void> {
    const raw = conn.connection as unknown as object;
    if (this.prepared.has(raw)) return;
    const zone = this.options.timeZone;
    if (zone) {
      try {
        await conn.query('SET time_zone = ?', [zone]);
      } catch (error) {
        if ((error as { errno?: number }).errno === 1298) {
          throw new SettingError(
            'VICIDIAL_DB_TIME_ZONE',
            `the database does not know the time zone "${zone}": a named zone needs the server's time-zone tables (mariadb-tzinfo-to-sql /usr/share/zoneinfo | mariadb mysql); an offset like +08:00 always works`,
          );
        }
        throw error;
      }
    }
    if (!this.flavor) {
      const [rows] = await conn.query('SELECT VERSION() AS version');
      this.flavor = /mariadb/i.test(String((rows as { version: string }[])[0]?.version))
        ? 'mariadb'
        : 'mysql';
    }
    this.prepared.add(raw);
  }

  private async currentPool(): Promise<mysql.Pool> {
    if (!this.pool) await this.replacePool(await this.source.current());
    return this.pool as mysql.Pool;
  }

  private async replacePool(settings: DbSettings): Promise<void> {
    const old = this.pool;
    this.settings = settings;
    this.prepared = new WeakSet();
    this.pool = mysql.createPool({
      ...connectionConfig(settings),
      connectTimeout: this.options.connectTimeoutMs ?? 10_000,
      connectionLimit: this.options.poolSize ?? 2,
      enableKeepAlive: true,
    });
    if (old)
      await withTimeout(
        old.end().catch(() => undefined),
        1_000,
        () => undefined,
      );
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    if (pool)
      await withTimeout(
        pool.end().catch(() => undefined),
        2_000,
        () => undefined,
      );
  }
}

function connectionConfig(settings: DbSettings) {
  return {
    host: settings.host,
    port: settings.port,
    user: settings.user,
    password: settings.password,
    database: settings.database,
    charset: settings.charset,
    // call_date stays the database's own string: no conversion through the host's time zone.
    dateStrings: true,
    supportBigNumbers: true,
    // Statements go as text (query, never execute), so the per-connection cache of prepared ones stays
    // empty; mysql2 still allocates its 16,000 slots up front, ~0.5 MB for each connection.
    maxPreparedStatements: 1,
  } as const;
}

/**
 * mysql2 compiles a row parser per result shape and caches them process-wide, in a cache sized and
 * allocated for 15,000 (~0.5 MB). The sync's queries have a handful of shapes; a few dozen slots keep
 * every one compiled.
 */
const ROW_PARSERS = 64;
mysql.setMaxParserCache(ROW_PARSERS);

/**
 * The promise's value, or undefined once `ms` passed; `late` receives a value that arrives after that
 * (a connection to hand back), `onTimeout` runs when the time is up.
 */
function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  late: (value: T) => void,
  onTimeout?: () => void,
): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      onTimeout?.();
      resolve(undefined);
    }, ms);
    promise.then(
      (value) => {
        if (done) return late(value);
        clearTimeout(timer);
        resolve(value);
      },
      (error) => {
        if (done) return;
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
