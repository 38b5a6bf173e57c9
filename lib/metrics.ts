import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/**
 * The metrics the function emits in CloudWatch embedded metric format, one set per sync with the single
 * dimension `syncId`, in the namespace the stack passes as POWERTOOLS_METRICS_NAMESPACE.
 */
export const SYNC_METRICS = [
  'CallsDelivered',
  'CallsDeadLettered',
  'CallsRetried',
  'CallsAmbiguous',
  'CallsParked',
  'CallsPending',
  'CallsMissing',
  'CallsQueued',
  /** Database clock minus cursor, seconds; negative when the cursor is ahead of the clock. */
  'SyncLagSeconds',
  'Concurrency',
  'RunDurationMs',
  'RunsCompleted',
  'RunsPartial',
  'RunsFailed',
  'RunsSkipped',
  'ApiAuthFailures',
] as const;
export type SyncMetricName = (typeof SYNC_METRICS)[number];

/** Not emitted by the function: counted by the stack from `call_recovered` log lines (RecoveredCallsMetric). */
export const RECOVERED_METRIC = 'CallsRecovered';

export function syncMetric(
  namespace: string,
  syncId: string,
  metricName: SyncMetricName | typeof RECOVERED_METRIC,
  statistic: string,
  period: Duration,
): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace,
    metricName,
    dimensionsMap: { syncId },
    statistic,
    period,
    label: syncId,
  });
}

export interface RecoveredCallsMetricProps {
  readonly logGroup: logs.ILogGroup;
  readonly namespace: string;
}

/**
 * A parked call delivered later is logged (`call_recovered`) but not counted by the function: a metric
 * filter turns those lines into CallsRecovered per syncId, for the dashboard.
 */
export class RecoveredCallsMetric extends Construct {
  constructor(scope: Construct, id: string, props: RecoveredCallsMetricProps) {
    super(scope, id);
    new logs.MetricFilter(this, 'Filter', {
      logGroup: props.logGroup,
      filterPattern: logs.FilterPattern.stringValue('$.event', '=', 'call_recovered'),
      metricNamespace: props.namespace,
      metricName: RECOVERED_METRIC,
      metricValue: '1',
      dimensions: { syncId: '$.syncId' },
      unit: cloudwatch.Unit.COUNT,
    });
  }
}

export const ONE_MINUTE = Duration.minutes(1);
export const FIVE_MINUTES = Duration.minutes(5);
