/**
 * CloudWatch Logs Insights queries over the function's JSON log lines: saved in the console by the stack
 * (lib/saved-queries.ts), run by the dashboard and quoted by the README's runbook. Plain strings with no
 * imports, so a test can check every field they read against log lines the engine really writes.
 *
 * `call-history` needs a call's uniqueid: replace UNIQUEID before running it.
 */
export const LOG_QUERIES = {
  /** Runs per sync and outcome over time, with what they did. */
  'run-summaries': `filter event = "run_end"
| stats count() as runs, sum(delivered) as delivered, sum(deadLettered) as deadLettered,
    sum(retried) as retried, sum(ambiguous) as ambiguous, sum(parked) as parked,
    max(pending) as pending, max(lagSeconds) as maxLagSeconds by bin(15m), syncId, outcome`,

  /** Everything that happened to one call, oldest first. */
  'call-history': `fields @timestamp, syncId, event, campaignId, disposition, httpStatus, attempt, reason, source, durationMs
| filter uniqueid = "UNIQUEID"
| sort @timestamp asc`,

  /** Calls that did not simply arrive, by outcome and why. */
  'calls-by-outcome': `filter event in ["call_dead_lettered", "call_parked", "call_recovered", "call_ambiguous"]
| stats count() as calls, latest(uniqueid) as lastUniqueid by syncId, event, reason, httpStatus
| sort calls desc`,

  /** How far behind the database clock, and how long runs take. */
  'lag-and-duration': `filter event = "run_end" and outcome != "skipped"
| stats max(lagSeconds) as maxLagSeconds, avg(lagSeconds) as avgLagSeconds, max(durationMs) as maxDurationMs,
    avg(durationMs) as avgDurationMs, max(concurrency) as concurrency by bin(5m), syncId`,

  /** Runs that found another run holding the lease, and runs that lost theirs. */
  'lease-contention': `filter event in ["lease_skipped", "lease_lost"] or (event = "run_end" and outcome = "skipped")
| fields @timestamp, syncId, event, holder, reason
| sort @timestamp desc
| limit 200`,

  /** Failures by kind: API down or refusing, database, rate limits, lost leases, failed runs. */
  'errors-by-event': `filter event in ["api_unavailable", "api_misconfigured", "api_auth_failed", "database_error", "rate_limited", "lease_lost"]
    or (event = "run_end" and outcome = "failed")
| stats count() as count, latest(reason) as lastReason, max(@timestamp) as last by syncId, event
| sort count desc`,

  /** The latest failed runs and why (the dashboard's log widget). */
  'failed-runs': `filter event = "run_end" and outcome = "failed"
| fields @timestamp, syncId, reason, detail, delivered, deadLettered, lagSeconds, durationMs
| sort @timestamp desc
| limit 20`,

  /** Calls the reconcile found in vicidial_log but not delivered. */
  'missing-calls': `filter event = "call_missing"
| fields @timestamp, syncId, uniqueid, hour
| sort @timestamp desc
| limit 200`,
} as const satisfies Record<string, string>;

export type LogQueryName = keyof typeof LOG_QUERIES;
