import { apiChecks } from './check-api';
import { DatabaseChecks } from './check-database';
import { CHECK_LABELS, CHECK_NAMES, type CheckDeps, type CheckName, type CheckResult } from './check-result';
import { checkpointTableCheck } from './check-table';

export {
  CHECK_LABELS,
  CHECK_NAMES,
  type CheckDeps,
  type CheckName,
  type CheckResult,
  type CheckStatus,
} from './check-result';

/**
 * `did-sync check` and the Lambda's `{"action":"check"}`: tries every dependency of a run once and
 * says, one line each, what works and what to fix, before the first scheduled run finds out. It
 * writes nothing to VICIdial and never POSTs a call (each POST counts as DID usage at the API); its
 * only write is a probe item in the checkpoint table, deleted again and set to expire anyway.
 * Each check is bounded in time, so a database or API that hangs cannot hang the check.
 */

export interface CheckReport {
  readonly syncId: string;
  /** No check failed (warnings allowed). */
  readonly ok: boolean;
  readonly checks: Readonly<Record<CheckName, CheckResult>>;
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
