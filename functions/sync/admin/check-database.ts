import { CALL_COLUMNS } from '../calls/payload';
import { describeError } from '../log';
import { judgeGrants } from '../source/db-grants';
import { measureTimeZone } from '../source/time-zone-check';
import { buildScanQuery } from '../source/vicidial-log';
import {
  bounded,
  type CheckDeps,
  type CheckName,
  type CheckResult,
  type CheckStatus,
  CheckTimeoutError,
  fail,
  pass,
  skip,
} from './check-result';

/** The database's checks: login, read-only grant, vicidial_log's columns, the batch query's plan, the time zone. */

/** Time for the connection to look at and KILL a query that timed out, before the check gives up itself. */
const DB_BACKSTOP_MS = 2_000;
const CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ECONNRESET',
]);

/** A query stopped by a time limit: the connection's own, or the server's max_statement_time (MariaDB 1969, MySQL 3024). */
function isQueryTimeout(error: unknown): boolean {
  const e = error as { code?: unknown; errno?: unknown };
  return e?.code === 'DB_QUERY_TIMEOUT' || e?.errno === 1969 || e?.errno === 3024;
}

function databaseFailure(error: unknown): string {
  if (error instanceof CheckTimeoutError) return `the database gave ${error.message}`;
  const { errorName, errorCode, error: message } = describeError(error);
  // The connection names what the server was doing (a table lock) and killed the query.
  if (isQueryTimeout(error)) {
    // The server's own limit says nothing of why; a lock is the usual reason on MyISAM.
    const why =
      errorCode === 'DB_QUERY_TIMEOUT'
        ? ''
        : ' (a table lock? the nightly archive and OPTIMIZE TABLE hold one)';
    return `no answer in time: ${message}${why}`;
  }
  if (errorName === 'DatabaseAccessError' || errorCode === 'ER_ACCESS_DENIED_ERROR')
    return `login refused: ${message}`;
  if (errorCode && CONNECT_ERRORS.has(errorCode)) return `cannot reach the database: ${message}`;
  return `${errorCode ?? errorName}: ${message}`;
}

function row<T>(rows: T[]): T {
  const first = rows[0];
  if (first === undefined) throw new Error('the database returned no row');
  return first;
}

const SELECT_COLUMNS = CALL_COLUMNS.map((c) => `\`${c}\``).join(', ');

export class DatabaseChecks {
  /** Each query's own limit: the connection kills a query that overruns it (a table lock) on the server. */
  private readonly query: { timeoutMs: number };

  constructor(
    private readonly deps: CheckDeps,
    private readonly timeoutMs: number,
  ) {
    this.query = { timeoutMs };
  }

  /**
   * Each query carries the check's timeout, and the connection kills a query that overruns it and says
   * what the server was doing (a table lock); this bound, a little later, covers what the connection
   * does not (a server that never completes the handshake).
   */
  private run<T>(query: () => Promise<T>): Promise<T> {
    return bounded(this.timeoutMs + DB_BACKSTOP_MS, () => query());
  }

  async all(): Promise<
    Pick<Record<CheckName, CheckResult>, 'database' | 'grants' | 'table' | 'queryPlan' | 'timeZone'>
  > {
    const { db } = this.deps;
    let who: { user: string; schema: string; version: string };
    try {
      const r = row(
        await this.run(() =>
          db.query<{ user: string; schema: string | null; version: string }>(
            'SELECT CURRENT_USER() AS user, DATABASE() AS `schema`, VERSION() AS version',
            [],
            this.query,
          ),
        ),
      );
      who = { user: String(r.user), schema: String(r.schema ?? ''), version: String(r.version) };
    } catch (error) {
      const why = databaseFailure(error);
      const notChecked = skip('not checked: no database connection');
      return {
        database: fail(why),
        grants: notChecked,
        table: notChecked,
        queryPlan: notChecked,
        timeZone: notChecked,
      };
    }
    const database = pass(`logged in as ${who.user} to \`${who.schema}\` (${who.version})`, {
      user: who.user,
      schema: who.schema,
      version: who.version,
    });
    // One at a time on the sync's small pool; a timeout skips what follows rather than stacking waits.
    const grants = await this.guard(() => this.grants(who.schema));
    const table = grants.timedOut ? this.timedOut() : await this.guard(() => this.table());
    const readable = table.result.status === 'pass' || table.result.status === 'warn';
    const later = table.timedOut
      ? this.timedOut()
      : readable
        ? undefined
        : { result: skip('not checked: vicidial_log is not readable'), timedOut: false };
    const queryPlan = later ?? (await this.guard(() => this.queryPlan()));
    const timeZone =
      later ?? (queryPlan.timedOut ? this.timedOut() : await this.guard(() => this.timeZone()));
    return {
      database,
      grants: grants.result,
      table: table.result,
      queryPlan: queryPlan.result,
      timeZone: timeZone.result,
    };
  }

  private timedOut() {
    return { result: skip('not checked: an earlier database check got no answer in time'), timedOut: true };
  }

  private async guard(
    check: () => Promise<CheckResult>,
  ): Promise<{ result: CheckResult; timedOut: boolean }> {
    try {
      return { result: await this.run(check), timedOut: false };
    } catch (error) {
      const timedOut = error instanceof CheckTimeoutError || isQueryTimeout(error);
      return { result: fail(databaseFailure(error)), timedOut };
    }
  }

  private async grants(schema: string): Promise<CheckResult> {
    const rows = await this.deps.db.query<Record<string, unknown>>('SHOW GRANTS', [], this.query);
    const judgement = judgeGrants(
      rows.map((r) => String(Object.values(r)[0] ?? '')),
      schema,
    );
    return {
      status: judgement.status,
      message: judgement.message,
      details: {
        selectOn: judgement.selectOn,
        beyondReadOnly: judgement.beyondReadOnly,
        remarks: judgement.remarks,
      },
    };
  }

  private async table(): Promise<CheckResult> {
    try {
      // Every column the sync reads (a column-level grant missing one fails here); LIMIT 0 reads no row.
      await this.deps.db.query(`SELECT ${SELECT_COLUMNS} FROM vicidial_log LIMIT 0`, [], this.query);
      return pass(`readable: the ${CALL_COLUMNS.length} columns the sync reads`);
    } catch (error) {
      const { errorCode, error: message } = describeError(error);
      if (isQueryTimeout(error)) throw error;
      if (errorCode === 'ER_NO_SUCH_TABLE') return fail(`table missing: ${message}`);
      if (errorCode === 'ER_TABLEACCESS_DENIED_ERROR' || errorCode === 'ER_COLUMNACCESS_DENIED_ERROR')
        return fail(`not readable: ${message}`);
      return fail(databaseFailure(error));
    }
  }

  /** EXPLAIN of the engine's own batch query, as a run an hour behind would send it. */
  private async queryPlan(): Promise<CheckResult> {
    const { db, settings: s } = this.deps;
    const now = Number(
      row(await db.query<{ now: number | string }>('SELECT UNIX_TIMESTAMP() AS now', [], this.query)).now,
    );
    const { sql, values } = buildScanQuery(
      { from: { epoch: now - 3600 - s.lookbackSeconds }, toEpoch: now - s.settleSeconds, limit: s.batchSize },
      {
        minDurationSeconds: s.minDurationSeconds,
        campaigns: s.campaigns,
        excludeCampaigns: s.excludeCampaigns,
        transientStatuses: [...s.transientStatuses],
      },
    );
    type PlanRow = { table: string | null; type: string | null; key: string | null; Extra?: string | null };
    let plan: PlanRow[];
    try {
      plan = await db.query<PlanRow>(`EXPLAIN ${sql}`, values, this.query);
    } catch (error) {
      if (isQueryTimeout(error)) throw error;
      return fail(`the batch query cannot run: ${describeError(error).error}`);
    }
    const read = plan.find((p) => p.table === 'vicidial_log');
    const details = {
      type: read?.type ?? null,
      key: read?.key ?? null,
      extra: read?.Extra ?? plan[0]?.Extra ?? null,
    };
    if (!read) {
      // MyISAM with 0 or 1 rows is a "const" table: the optimizer reads it before planning.
      return {
        status: 'warn',
        message: `cannot judge the plan yet: ${details.extra ?? 'no plan row for vicidial_log'} (vicidial_log has at most one row)`,
        details,
      };
    }
    if (read.key === 'call_date' && read.type === 'range')
      return pass('the batch query reads a call_date index range', details);
    return fail(
      `the batch query would read vicidial_log with type=${read.type} key=${read.key ?? 'NULL'}, not a call_date range: ` +
        'a scan of a MyISAM table holds its lock and stalls the dialer (is the call_date index missing?)',
      details,
    );
  }

  private async timeZone(): Promise<CheckResult> {
    const report = await measureTimeZone(this.deps.db, this.query);
    const status: CheckStatus =
      report.status === 'ok' ? 'pass' : report.status === 'mismatch' ? 'fail' : 'warn';
    return { status, message: report.message, details: { ...report } };
  }
}
