import { randomBytes } from 'node:crypto';
import {
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { CALL_COLUMNS } from '../calls/payload';
import { type HealthVerdict, judgeHealth, probeHealth } from '../delivery/api-health';
import { describeError } from '../log';
import type { SyncSettings } from '../settings';
import { judgeGrants } from '../source/db-grants';
import { measureTimeZone } from '../source/time-zone-check';
import { buildScanQuery, type SqlClient } from '../source/vicidial-log';
import { checkSk, itemKey } from '../state/keys';

/**
 * `did-sync check` and the Lambda's `{"action":"check"}`: tries every dependency of a run once and
 * says, one line each, what works and what to fix, before the first scheduled run finds out. It
 * writes nothing to VICIdial and never POSTs a call (each POST counts as DID usage at the API); its
 * only write is a probe item in the checkpoint table, deleted again and set to expire anyway.
 * Each check is bounded in time, so a database or API that hangs cannot hang the check.
 */

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

export interface CheckReport {
  readonly syncId: string;
  /** No check failed (warnings allowed). */
  readonly ok: boolean;
  readonly checks: Readonly<Record<CheckName, CheckResult>>;
}

export interface CheckDeps {
  readonly settings: SyncSettings;
  readonly db: SqlClient;
  /** The API's base URL and key; reading them (a secret) may fail, and that is the API check's failure. */
  readonly api: () => Promise<{ readonly url: string; readonly key: string }>;
  readonly userAgent: string;
  readonly dynamo: DynamoDBClient;
  readonly table: string;
}

export interface CheckOptions {
  /** Longest any one check may take, default 7.5 s (and 2 s more for the database to kill a query). */
  readonly timeoutMs?: number;
  readonly now?: () => number;
}

/**
 * Not a whole second on purpose: the connection also sets the server's max_statement_time, rounded up to
 * whole seconds; with the client's limit first, the connection can still look at the server thread and
 * report what it waited for (a table lock) instead of losing that race to the server's interruption.
 */
export const CHECK_TIMEOUT_MS = 7_500;
/** Time for the connection to look at and KILL a query that timed out, before the check gives up itself. */
const DB_BACKSTOP_MS = 2_000;
/** The probe item's TTL: gone even if the delete never happened. */
const PROBE_TTL_SECONDS = 3600;

class CheckTimeoutError extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms / 1000} s`);
    this.name = 'CheckTimeoutError';
  }
}

/** Runs `task` with a signal that aborts, and a result that gives up, after `ms`. */
async function bounded<T>(ms: number, task: (signal: AbortSignal) => Promise<T>): Promise<T> {
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

const pass = (message: string, details?: Record<string, unknown>): CheckResult => ({
  status: 'pass',
  message,
  ...(details ? { details } : {}),
});
const fail = (message: string, details?: Record<string, unknown>): CheckResult => ({
  status: 'fail',
  message,
  ...(details ? { details } : {}),
});
const skip = (message: string): CheckResult => ({ status: 'skip', message });

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

class DatabaseChecks {
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

async function apiChecks(deps: CheckDeps, timeoutMs: number): Promise<HealthVerdict> {
  let target: { url: string; key: string };
  try {
    target = await bounded(timeoutMs, () => deps.api());
  } catch (error) {
    return {
      key: { status: 'fail', message: `cannot read the API settings: ${(error as Error).message}` },
      redirect: { status: 'skip', message: 'not checked: no API settings' },
    };
  }
  // The signal ends both requests at the check's deadline; probeHealth reports that as "no answer".
  const probes = await bounded(timeoutMs + 1_000, (signal) =>
    probeHealth({
      baseUrl: target.url,
      key: target.key,
      userAgent: deps.userAgent,
      signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
    }),
  );
  return judgeHealth(probes);
}

async function checkpointTableCheck(
  deps: CheckDeps,
  timeoutMs: number,
  now: () => number,
): Promise<CheckResult> {
  const { dynamo, table } = deps;
  const key = itemKey(
    deps.settings.syncId,
    checkSk(new Date(now()).toISOString(), randomBytes(4).toString('hex')),
  );
  let step = 'write';
  try {
    await bounded(timeoutMs, async (abortSignal) => {
      await dynamo.send(
        new PutItemCommand({
          TableName: table,
          Item: {
            ...key,
            // DynamoDB's TTL removes the probe even if the delete below never runs.
            expiresAt: { N: String(Math.floor(now() / 1000) + PROBE_TTL_SECONDS) },
            purpose: { S: 'did-sync check probe' },
          },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
        { abortSignal },
      );
      step = 'read';
      const read = await dynamo.send(
        new GetItemCommand({ TableName: table, Key: key, ConsistentRead: true }),
        { abortSignal },
      );
      if (!read.Item) throw new Error('the probe item just written was not found');
      step = 'delete';
      await dynamo.send(new DeleteItemCommand({ TableName: table, Key: key }), { abortSignal });
    });
  } catch (error) {
    const { errorName, error: message } = describeError(error);
    if (errorName === 'ResourceNotFoundException')
      return fail(
        `table ${table} not found: ${message} (create it with did-sync init-table, or deploy the stack; README: Cron-only use)`,
      );
    if (errorName === 'CheckTimeoutError') return fail(`table ${table}: ${message} (${step})`);
    return fail(`table ${table}: ${step} failed: ${errorName}: ${message}`);
  }
  return pass(`table ${table} readable and writable (probe item written, read and deleted)`);
}

export async function runChecks(deps: CheckDeps, options: CheckOptions = {}): Promise<CheckReport> {
  const timeoutMs = options.timeoutMs ?? CHECK_TIMEOUT_MS;
  const now = options.now ?? Date.now;
  // Three independent chains at once: the slowest, not their sum, bounds the check.
  const [database, api, checkpointTable] = await Promise.all([
    new DatabaseChecks(deps, timeoutMs).all(),
    apiChecks(deps, timeoutMs),
    checkpointTableCheck(deps, timeoutMs, now),
  ]);
  const checks: Record<CheckName, CheckResult> = {
    ...database,
    apiKey: api.key,
    apiRedirect: api.redirect,
    checkpointTable,
  };
  const ordered = Object.fromEntries(CHECK_NAMES.map((name) => [name, checks[name]])) as Record<
    CheckName,
    CheckResult
  >;
  return {
    syncId: deps.settings.syncId,
    ok: CHECK_NAMES.every((name) => ordered[name].status === 'pass' || ordered[name].status === 'warn'),
    checks: ordered,
  };
}

/** The CLI's text: one line per check, then a verdict. */
export function formatCheckReport(report: CheckReport): string {
  const width = Math.max(...CHECK_NAMES.map((n) => CHECK_LABELS[n].length));
  const lines = [`did-sync check: sync ${report.syncId}`];
  for (const name of CHECK_NAMES) {
    const result = report.checks[name];
    lines.push(`  ${result.status.padEnd(4)}  ${CHECK_LABELS[name].padEnd(width)}  ${result.message}`);
  }
  const failed = CHECK_NAMES.filter((n) => report.checks[n].status === 'fail');
  const warned = CHECK_NAMES.filter((n) => report.checks[n].status === 'warn');
  lines.push(
    failed.length > 0
      ? `${failed.length} check(s) failed: ${failed.map((n) => CHECK_LABELS[n]).join(', ')}`
      : `all checks passed${warned.length > 0 ? ` (${warned.length} warning(s))` : ''}`,
  );
  return `${lines.join('\n')}\n`;
}
