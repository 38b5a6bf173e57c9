import { type Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { LOG_QUERIES } from './log-queries';
import { FIVE_MINUTES, ONE_MINUTE, RECOVERED_METRIC, type SyncMetricName, syncMetric } from './metrics';

export interface SyncDashboardProps {
  /** Namespace of the function's embedded metrics. */
  readonly namespace: string;
  /** One line per sync on every graph. */
  readonly syncIds: readonly string[];
  /** The functions (one, or one per sync). */
  readonly functions: readonly lambda.IFunction[];
  /** Their log groups, for the failed-runs widget. */
  readonly logGroups: readonly logs.ILogGroup[];
  /** The functions' timeout, drawn on the run-duration graph. */
  readonly timeout: Duration;
}

/**
 * One dashboard for the stack: per sync, what was delivered and how far behind, what needed retries,
 * parking or a dead letter, run durations against the timeout, and the last failed runs from the logs.
 */
export class SyncDashboard extends Construct {
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: SyncDashboardProps) {
    super(scope, id);
    const perSync = (
      name: SyncMetricName | typeof RECOVERED_METRIC,
      statistic: string,
      period = ONE_MINUTE,
    ) => props.syncIds.map((syncId) => syncMetric(props.namespace, syncId, name, statistic, period));
    const graph = (
      title: string,
      metrics: cloudwatch.IMetric[],
      extra: Partial<cloudwatch.GraphWidgetProps> = {},
    ) => new cloudwatch.GraphWidget({ title, left: metrics, width: 8, height: 6, ...extra });

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { dashboardName: Stack.of(this).stackName });
    this.dashboard.addWidgets(
      graph('Calls delivered per minute', perSync('CallsDelivered', 'Sum')),
      graph('Sync lag (s, database clock minus cursor)', perSync('SyncLagSeconds', 'Maximum')),
      graph('Run duration (ms) against the timeout', perSync('RunDurationMs', 'Maximum'), {
        leftAnnotations: [{ value: props.timeout.toMilliseconds(), label: 'function timeout' }],
      }),
    );
    this.dashboard.addWidgets(
      graph('Retries per minute', perSync('CallsRetried', 'Sum')),
      graph('Parked per minute', perSync('CallsParked', 'Sum')),
      graph('Recovered (parked, then delivered) per minute', perSync(RECOVERED_METRIC, 'Sum')),
    );
    this.dashboard.addWidgets(
      graph('Dead letters per 5 minutes', perSync('CallsDeadLettered', 'Sum', FIVE_MINUTES)),
      graph(
        'Runs by outcome per 5 minutes',
        (['RunsCompleted', 'RunsPartial', 'RunsFailed', 'RunsSkipped'] as const).flatMap((outcome) =>
          props.syncIds.map((syncId) =>
            syncMetric(props.namespace, syncId, outcome, 'Sum', FIVE_MINUTES).with({
              label: `${syncId} ${outcome.slice(4).toLowerCase()}`,
            }),
          ),
        ),
        { stacked: true },
      ),
      graph(
        'Lambda errors, throttles, dropped events',
        props.functions.flatMap((fn) => [
          fn.metricErrors({ period: FIVE_MINUTES, statistic: 'Sum' }),
          fn.metricThrottles({ period: FIVE_MINUTES, statistic: 'Sum' }),
          fn.metric('AsyncEventsDropped', { period: FIVE_MINUTES, statistic: 'Sum' }),
        ]),
      ),
    );
    this.dashboard.addWidgets(
      new cloudwatch.LogQueryWidget({
        title: 'Last failed runs',
        logGroupNames: props.logGroups.map((g) => g.logGroupName),
        queryString: LOG_QUERIES['failed-runs'],
        view: cloudwatch.LogQueryVisualizationType.TABLE,
        width: 24,
        height: 6,
      }),
    );
  }
}
