import { Duration, Stack, Tags } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import type { SyncConfig } from './settings';

export interface ScheduledSync {
  readonly sync: SyncConfig;
  /** The function that runs it. */
  readonly function: lambda.IFunction;
  /** Hours the hourly reconcile covers up to the cursor; 0: no reconcile schedule. */
  readonly reconcileHours: number;
  /** Seconds between two ticks (60 for a cron schedule): the scheduler retries a tick within it. */
  readonly intervalSeconds: number;
}

export interface SyncSchedulesProps {
  /** The enabled syncs. */
  readonly syncs: readonly ScheduledSync[];
  /**
   * The group and dead-letter queue of the shared stack, for a tenant stack's schedules.
   * @default - created here
   */
  readonly shared?: { readonly group: scheduler.IScheduleGroup; readonly deadLetterQueue: sqs.IQueue };
}

/** Scheduler retries of a tick Lambda did not accept, all within the schedule's period. */
export const SCHEDULER_RETRIES = 2;

/**
 * One EventBridge Scheduler schedule per enabled sync, in a group of their own (so the scheduler's
 * metrics can be alarmed on for exactly these), each with its own role, and a dead-letter queue for ticks
 * the scheduler could not hand to Lambda.
 */
export class SyncSchedules extends Construct {
  readonly group: scheduler.IScheduleGroup;
  readonly deadLetterQueue: sqs.IQueue;

  constructor(scope: Construct, id: string, props: SyncSchedulesProps) {
    super(scope, id);

    if (props.shared) {
      this.group = props.shared.group;
      this.deadLetterQueue = props.shared.deadLetterQueue;
    } else {
      const queue = new sqs.Queue(this, 'DeadLetters', {
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        retentionPeriod: Duration.days(14),
        // Marks it as a dead-letter queue (Control Tower's CT.SQS.PR.1 remediation for one): ticks are
        // sent here by the scheduler, which is not a queue that a byQueue list could name.
        redriveAllowPolicy: { redrivePermission: sqs.RedrivePermission.ALLOW_ALL },
      });
      const isTheDlq =
        'This queue is itself the dead-letter queue of the schedules; a dead-letter queue of its own would hold nothing.';
      NagSuppressions.addResourceSuppressions(queue, [
        { id: 'AwsSolutions-SQS3', reason: isTheDlq },
        { id: 'Serverless-SQSRedrivePolicy', reason: isTheDlq },
      ]);
      this.deadLetterQueue = queue;
      this.group = new scheduler.ScheduleGroup(this, 'Group', {});
    }

    for (const scheduled of props.syncs) this.add(scheduled);
  }

  /** Schedules one enabled sync (and its hourly reconcile), with a role of its own. */
  add({ sync, function: fn, reconcileHours, intervalSeconds }: ScheduledSync): void {
    {
      const role = new iam.Role(this, `Role-${sync.id}`, {
        assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
          conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
        }),
        description: `EventBridge Scheduler: invoke did-sync for sync ${sync.id}`,
      });
      Tags.of(role).add('sync', sync.id);
      new scheduler.Schedule(this, `Schedule-${sync.id}`, {
        description: `did-sync ${sync.id}`,
        scheduleGroup: this.group,
        schedule: scheduler.ScheduleExpression.expression(sync.schedule),
        target: new targets.LambdaInvoke(fn, {
          role,
          input: scheduler.ScheduleTargetInput.fromObject({ syncId: sync.id }),
          // A tick Lambda did not accept is retried until the next one is due, never beyond: the next
          // tick resumes from the checkpoint, so one lost tick is no incident.
          retryAttempts: SCHEDULER_RETRIES,
          maxEventAge: Duration.seconds(Math.min(Math.max(intervalSeconds, 60), 86_400)),
          deadLetterQueue: this.deadLetterQueue,
        }),
      });
      if (reconcileHours > 0) {
        // The safety net: every hour, the last hours up to the cursor are checked against the ledger,
        // and calls found missing are queued for the next run.
        new scheduler.Schedule(this, `Reconcile-${sync.id}`, {
          description: `did-sync ${sync.id}: reconcile the last ${reconcileHours} h and repair`,
          scheduleGroup: this.group,
          schedule: scheduler.ScheduleExpression.expression('rate(1 hour)'),
          target: new targets.LambdaInvoke(fn, {
            role,
            input: scheduler.ScheduleTargetInput.fromObject({
              action: 'reconcile',
              syncId: sync.id,
              hours: reconcileHours,
              repair: true,
            }),
            retryAttempts: SCHEDULER_RETRIES,
            maxEventAge: Duration.minutes(5),
            deadLetterQueue: this.deadLetterQueue,
          }),
        });
      }
      NagSuppressions.addResourceSuppressions(
        role,
        [
          {
            id: 'AwsSolutions-IAM5',
            reason:
              'LambdaInvoke grants lambda:InvokeFunction on the function and its versions (ARN:*); it is confined to this one function.',
            appliesTo: [{ regex: '/^Resource::<Sync.*Function[0-9A-F]+\\.Arn>:\\*$/' }],
          },
        ],
        true,
      );
    }
  }
}
