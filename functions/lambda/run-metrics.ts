import type { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Env, RunSummary } from '../sync';

/**
 * A run's numbers as CloudWatch metrics, in Embedded Metric Format: one JSON blob on stdout per run
 * (not per call), which CloudWatch Logs turns into metrics without an API call or a network path from
 * the VPC. Dimension `syncId` only, so alarms and dashboards name one metric per sync.
 */

/** What the mapping reads; fields the engine adds later (reconcile, adaptive concurrency) count as 0 until then. */
export type RunMetricsInput = Pick<
  RunSummary,
  | 'syncId'
  | 'outcome'
  | 'reason'
  | 'delivered'
  | 'deadLettered'
  | 'retried'
  | 'pending'
  | 'lagSeconds'
  | 'durationMs'
> &
  Partial<Record<'parked' | 'ambiguous' | 'concurrency' | 'missing' | 'queued', number>>;

export type RunMetricUnit = (typeof MetricUnit)[keyof typeof MetricUnit];

export interface RunMetric {
  readonly name: string;
  readonly unit: RunMetricUnit;
  readonly value: number;
}

export const DEFAULT_METRICS_NAMESPACE = 'DidSync';

const OUTCOME_METRICS = {
  completed: 'RunsCompleted',
  partial: 'RunsPartial',
  failed: 'RunsFailed',
  skipped: 'RunsSkipped',
} as const satisfies Record<RunSummary['outcome'], string>;

/**
 * The metrics of one run. Every outcome metric is present (1 for this run's, 0 for the others) so a
 * sum over time is a count of runs and a missing datapoint means no run at all. SyncLagSeconds is
 * left out when the run never read the database clock, and may be negative (cursor ahead of it).
 */
export function runMetrics(summary: RunMetricsInput): RunMetric[] {
  const count = (name: string, value: number | undefined): RunMetric => ({
    name,
    unit: MetricUnit.Count,
    value: value ?? 0,
  });
  const metrics: RunMetric[] = [
    count('CallsDelivered', summary.delivered),
    count('CallsDeadLettered', summary.deadLettered),
    count('CallsRetried', summary.retried),
    count('CallsAmbiguous', summary.ambiguous),
    count('CallsParked', summary.parked),
    count('CallsPending', summary.pending),
    count('CallsMissing', summary.missing),
    count('CallsQueued', summary.queued),
  ];
  if (summary.lagSeconds !== null && summary.lagSeconds !== undefined) {
    metrics.push({ name: 'SyncLagSeconds', unit: MetricUnit.Seconds, value: summary.lagSeconds });
  }
  if (summary.concurrency !== undefined) metrics.push(count('Concurrency', summary.concurrency));
  metrics.push({ name: 'RunDurationMs', unit: MetricUnit.Milliseconds, value: summary.durationMs });
  for (const [outcome, name] of Object.entries(OUTCOME_METRICS)) {
    metrics.push(count(name, summary.outcome === outcome ? 1 : 0));
  }
  metrics.push(count('ApiAuthFailures', summary.reason === 'api_auth' ? 1 : 0));
  return metrics;
}

/**
 * Powertools warns "No application metrics to publish" after every invocation that added none: a
 * status, reset or check action legitimately has none, so that one warning is dropped. Everything
 * else goes to the function's logger.
 */
function quietLogger(logger: Logger | undefined) {
  const target = logger ?? console;
  return {
    debug: (...args: unknown[]) => target.debug(...(args as [string])),
    info: (...args: unknown[]) => target.info(...(args as [string])),
    warn: (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].startsWith('No application metrics to publish')) return;
      target.warn(...(args as [string]));
    },
    error: (...args: unknown[]) => target.error(...(args as [string])),
  };
}

export function createRunMetrics(env: Env, logger?: Logger): Metrics {
  const metrics = new Metrics({
    namespace: env.POWERTOOLS_METRICS_NAMESPACE?.trim() || DEFAULT_METRICS_NAMESPACE,
    serviceName: env.POWERTOOLS_SERVICE_NAME ?? 'did-sync',
    logger: quietLogger(logger),
  });
  // Powertools adds `service` as a default dimension; metrics keyed by syncId alone are simpler to alarm on.
  metrics.clearDefaultDimensions();
  return metrics;
}

/** Stores one run's metrics under its syncId; the logMetrics middleware prints them once the invocation ends. */
export function recordRunMetrics(metrics: Metrics, summary: RunMetricsInput): void {
  metrics.addDimension('syncId', summary.syncId);
  for (const m of runMetrics(summary)) metrics.addMetric(m.name, m.unit, m.value);
}

/** A reconcile's findings: calls missing and queued for repair, under its syncId (not a run). */
export function recordReconcileMetrics(
  metrics: Metrics,
  report: { syncId: string; missing: number; queued: number },
): void {
  metrics.addDimension('syncId', report.syncId);
  metrics.addMetric('CallsMissing', MetricUnit.Count, report.missing);
  metrics.addMetric('CallsQueued', MetricUnit.Count, report.queued);
}
