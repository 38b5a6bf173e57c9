import { Aws, CfnOutput, Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { FIVE_MINUTES, ONE_MINUTE, syncMetric } from './metrics';
import type { AlarmThresholds } from './settings';
import { requireInteger } from './validation';

const RUNBOOK = 'see the README\'s "Operating it"';

export interface AlarmTopicProps {
  /**
   * Subscribed by email when set (the address must confirm the subscription).
   * @default - no subscription: subscribe endpoints to the topic
   */
  readonly email?: string;
}

/**
 * The SNS topic every alarm notifies, on ALARM and on OK, so a page is followed by its all-clear. Always
 * created (its ARN is an output) so other subscribers, such as a chat or paging integration, can be added
 * without an email address.
 */
export class AlarmTopic extends Construct {
  readonly topic: sns.Topic;
  private readonly action: actions.SnsAction;

  constructor(scope: Construct, id: string, props: AlarmTopicProps = {}) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'Topic', { displayName: 'did-sync alarms', enforceSSL: true });
    this.action = new actions.SnsAction(this.topic);
    // A topic policy replaces SNS's default one: without these Allows, enforceSSL's deny is all there is
    // and no alarm could publish.
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: {
          StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
          ArnLike: {
            'aws:SourceArn': `arn:${Aws.PARTITION}:cloudwatch:${Aws.REGION}:${Aws.ACCOUNT_ID}:alarm:*`,
          },
        },
      }),
    );
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'EventRulesPublish',
        principals: [new iam.ServicePrincipal('events.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: {
          StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
          ArnLike: { 'aws:SourceArn': `arn:${Aws.PARTITION}:events:${Aws.REGION}:${Aws.ACCOUNT_ID}:rule/*` },
        },
      }),
    );
    NagSuppressions.addResourceSuppressions(this.topic, [
      {
        id: 'AwsSolutions-SNS2',
        reason:
          'Alarm notifications carry no call data; a KMS key would need a key policy for CloudWatch for no gain.',
      },
    ]);
    if (props.email) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(props.email));
      NagSuppressions.addResourceSuppressions(
        this.topic,
        [
          {
            id: 'Serverless-SNSRedrivePolicy',
            reason:
              'SNS retries email deliveries itself; a dead-letter queue for alarm emails would be read by no one, and the alarm state stays in CloudWatch.',
          },
        ],
        true,
      );
    }
    new CfnOutput(Stack.of(this), 'AlarmTopicArn', {
      description: 'SNS topic of every did-sync alarm (ALARM and OK): subscribe more endpoints here',
      value: this.topic.topicArn,
    });
  }

  /** Notifies the topic when `alarm` fires and when it clears. */
  watch(alarm: cloudwatch.Alarm): cloudwatch.Alarm {
    alarm.addAlarmAction(this.action);
    alarm.addOkAction(this.action);
    return alarm;
  }
}

interface AlarmSpec {
  readonly description: string;
  readonly metric: cloudwatch.IMetric;
  readonly threshold: number;
  readonly comparison: cloudwatch.ComparisonOperator;
  readonly periods?: number;
  readonly missing?: cloudwatch.TreatMissingData;
}

function alarm(scope: Construct, notify: AlarmTopic, name: string, prefix: string, spec: AlarmSpec) {
  const periods = spec.periods ?? 1;
  return notify.watch(
    new cloudwatch.Alarm(scope, name, {
      alarmName: `${prefix}-${name}`,
      alarmDescription: `${spec.description} (${RUNBOOK}, alarm ${name})`,
      metric: spec.metric,
      threshold: spec.threshold,
      comparisonOperator: spec.comparison,
      evaluationPeriods: periods,
      datapointsToAlarm: periods,
      treatMissingData: spec.missing ?? cloudwatch.TreatMissingData.NOT_BREACHING,
    }),
  );
}

const GTE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD;

export interface SyncAlarmsProps {
  readonly notify: AlarmTopic;
  /** Namespace of the function's embedded metrics. */
  readonly namespace: string;
  readonly syncId: string;
  readonly thresholds: AlarmThresholds;
  /**
   * The longest time between two run ends while ticks keep coming: the schedule's interval plus the
   * function's timeout. Every period this long holds at least one run's result.
   */
  readonly runCadence: Duration;
}

/** The alarms on one sync's own metrics (namespace, dimension syncId). */
export class SyncAlarms extends Construct {
  readonly alarms: cloudwatch.Alarm[];

  constructor(scope: Construct, id: string, props: SyncAlarmsProps) {
    super(scope, id);
    const { namespace, syncId, thresholds: t, notify } = props;
    // Periods × evaluation periods must fit CloudWatch's one-day window.
    requireInteger(this, 'thresholds.noRunMinutes', t.noRunMinutes, 2, 1440);
    requireInteger(this, 'thresholds.failedRunsInARow', t.failedRunsInARow, 1, 20);
    const prefix = `${Stack.of(this).stackName}-${syncId}`;
    const metric = (name: Parameters<typeof syncMetric>[2], statistic: string, period = FIVE_MINUTES) =>
      syncMetric(namespace, syncId, name, statistic, period);

    // A streak of n failures spans n run cadences; CloudWatch caps an alarm's window at one day.
    const cadenceMinutes = Math.min(
      Math.max(1, Math.ceil(props.runCadence.toSeconds() / 60)),
      Math.floor(1440 / t.failedRunsInARow),
    );

    this.alarms = [
      alarm(this, notify, 'SyncLag', prefix, {
        description: `Sync ${syncId}: every run in 5 minutes ended more than ${t.lagSeconds} s behind the database clock`,
        metric: metric('SyncLagSeconds', 'Minimum'),
        threshold: t.lagSeconds,
        comparison: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      }),
      alarm(this, notify, 'CursorAhead', prefix, {
        description: `Sync ${syncId}: the cursor is more than ${t.cursorAheadSeconds} s ahead of the database clock`,
        metric: metric('SyncLagSeconds', 'Minimum'),
        threshold: -t.cursorAheadSeconds,
        comparison: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      }),
      alarm(this, notify, 'NoRun', prefix, {
        description: `Sync ${syncId}: no run ended (completed, partial or failed) for ${t.noRunMinutes} minutes: ticks do not arrive, or runs crash or time out`,
        // SUM over the list adds what is there: a backlog drained by partial runs alone still counts. Failed
        // runs count as runs: their streak pages once, as FailedRuns, not a second time here.
        metric: new cloudwatch.MathExpression({
          expression: 'SUM([completed, partial, failed])',
          usingMetrics: {
            completed: metric('RunsCompleted', 'Sum', ONE_MINUTE),
            partial: metric('RunsPartial', 'Sum', ONE_MINUTE),
            failed: metric('RunsFailed', 'Sum', ONE_MINUTE),
          },
          period: ONE_MINUTE,
          label: 'runs ended',
        }),
        threshold: 1,
        comparison: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        periods: t.noRunMinutes,
        // No data at all is exactly the silence this alarm exists for.
        missing: cloudwatch.TreatMissingData.BREACHING,
      }),
      alarm(this, notify, 'DeadLetters', prefix, {
        description: `Sync ${syncId}: ${t.deadLetters} or more calls became dead letters in 5 minutes`,
        metric: metric('CallsDeadLettered', 'Sum'),
        threshold: t.deadLetters,
        comparison: GTE,
      }),
      alarm(this, notify, 'MissingCalls', prefix, {
        description: `Sync ${syncId}: the reconcile found ${t.missingCalls} or more finished calls that were never delivered`,
        metric: metric('CallsMissing', 'Sum'),
        threshold: t.missingCalls,
        comparison: GTE,
      }),
      alarm(this, notify, 'FailedRuns', prefix, {
        description: `Sync ${syncId}: runs failed in ${t.failedRunsInARow} consecutive ${cadenceMinutes}-minute periods (each long enough for one run)`,
        metric: metric('RunsFailed', 'Sum', Duration.minutes(cadenceMinutes)),
        threshold: 1,
        comparison: GTE,
        periods: t.failedRunsInARow,
      }),
      alarm(this, notify, 'ApiAuthFailures', prefix, {
        description: `Sync ${syncId}: the DID Optimizer refused the API key (401/403) even after re-reading the secret`,
        metric: metric('ApiAuthFailures', 'Sum'),
        threshold: t.authFailures,
        comparison: GTE,
      }),
    ];
  }
}

export interface ScheduleAlarmsProps {
  readonly notify: AlarmTopic;
  readonly group: scheduler.IScheduleGroup;
  /** Five-minute periods in a row before paging (the stack's failedRunsInARow). */
  readonly inARow: number;
}

/**
 * The scheduler's view: ticks it could not hand to Lambda even after its retries. A single lost tick does
 * not page (the next one resumes from the checkpoint); a streak does.
 */
export class ScheduleAlarms extends Construct {
  readonly alarms: cloudwatch.Alarm[];

  constructor(scope: Construct, id: string, props: ScheduleAlarmsProps) {
    super(scope, id);
    const { group, notify } = props;
    const prefix = Stack.of(this).stackName;
    const sum = { period: FIVE_MINUTES, statistic: 'Sum' };
    const periods = props.inARow;
    this.alarms = [
      alarm(this, notify, 'SchedulerTargetErrors', prefix, {
        description: `EventBridge Scheduler could not invoke the did-sync function in ${periods} consecutive 5-minute periods (permissions, function missing)`,
        periods,
        metric: group.metricTargetErrors(sum),
        threshold: 1,
        comparison: GTE,
      }),
      alarm(this, notify, 'SchedulerTicksLost', prefix, {
        description: `EventBridge Scheduler dropped did-sync ticks after its retries, or sent them to the dead-letter queue, in ${periods} consecutive 5-minute periods: those runs never started`,
        periods,
        metric: new cloudwatch.MathExpression({
          expression: 'SUM([dropped, dlq, dlqFailed])',
          usingMetrics: {
            dropped: group.metricDropped(sum),
            dlq: group.metricSentToDLQ(sum),
            dlqFailed: group.metricFailedToBeSentToDLQ(undefined, sum),
          },
          period: FIVE_MINUTES,
          label: 'ticks lost',
        }),
        threshold: 1,
        comparison: GTE,
      }),
    ];
  }
}
