import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as logs from 'aws-cdk-lib/aws-logs';
import { NagSuppressions } from 'cdk-nag';
import type { Construct } from 'constructs';
import { AlarmTopic, FunctionAlarms, ScheduleAlarms, SyncAlarms } from './alarms';
import { SyncDashboard } from './dashboard';
import { DbSecretRotation } from './db-rotation';
import { RecoveredCallsMetric } from './metrics';
import { SyncNetwork } from './network';
import { SavedQueries } from './saved-queries';
import { SyncSchedules } from './schedules';
import { alarmThresholdsFor, rateSeconds, type StackSettings, type SyncConfig } from './settings';
import { SyncFunction, secretResource } from './sync-function';
import { SyncVpcEndpoints } from './vpc-endpoints';

export interface DidSyncStackProps extends StackProps {
  /** Validated settings (see lib/settings.ts and the README's deploy section). */
  readonly settings: StackSettings;
}

/**
 * vicidial-did-sync in one stack: the checkpoint table, the sync Lambda (one, or one per sync) in the
 * VICIdial VPC, one EventBridge Scheduler schedule per enabled sync, and what it takes to operate it:
 * alarms, a dashboard, saved log queries and, optionally, database secret rotation.
 */
export class DidSyncStack extends Stack {
  readonly table: dynamodb.Table;
  /** One function for every sync, or one per sync (`functionPerSync`). */
  readonly functions: SyncFunction[];

  constructor(scope: Construct, id: string, props: DidSyncStackProps) {
    super(scope, id, props);
    const s = props.settings;

    const vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
      vpcId: s.vpcId,
      availabilityZones: s.availabilityZones,
      privateSubnetIds: s.privateSubnetIds,
      ...(s.routeTableIds ? { privateSubnetRouteTableIds: s.routeTableIds } : {}),
    });
    const subnets = s.privateSubnetIds.map((subnetId, i) =>
      ec2.Subnet.fromSubnetAttributes(this, `Subnet${i}`, {
        subnetId,
        availabilityZone: s.availabilityZones[i] as string,
        ...(s.routeTableIds ? { routeTableId: s.routeTableIds[i] } : {}),
      }),
    );

    this.table = new dynamodb.Table(this, 'Checkpoints', {
      ...(s.tableName ? { tableName: s.tableName } : {}),
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      // Dead letters (after DEAD_LETTER_DAYS) and ledger items (after LEDGER_DAYS) expire by themselves;
      // the checkpoint item has no expiresAt and stays.
      timeToLiveAttribute: 'expiresAt',
      // The checkpoint and dead letters outlive the stack: losing them means re-sending or losing calls.
      removalPolicy: RemovalPolicy.RETAIN,
      deletionProtection: true,
    });

    const network = new SyncNetwork(this, 'Network', {
      vpc,
      dbSecurityGroupId: s.dbSecurityGroupId,
      manageDbIngress: s.manageDbIngress,
      dbPort: s.dbPort,
      apiPort: s.apiPort,
    });
    const secretArns = [s.dbSecretArn, ...s.syncs.map((x) => x.apiSecretArn)].map(secretResource);
    const endpoints = new SyncVpcEndpoints(this, 'Endpoints', {
      vpc,
      subnets,
      create: s.createVpcEndpoints,
      secretsManagerEndpointId: s.secretsManagerEndpointId,
      secretsManagerEndpointSecurityGroupId: s.secretsManagerEndpointSecurityGroupId,
      secretsManagerEndpointDns: s.secretsManagerEndpointDns,
      dynamoDbEndpointId: s.dynamoDbEndpointId,
      secretArns,
    });
    if (endpoints.secretsManager) {
      SyncNetwork.allowHttpsTo(network.securityGroup, endpoints.secretsManager, 'Secrets Manager endpoint');
    }

    const timeout = Duration.seconds(s.timeoutSeconds);
    const groups: { id: string; syncs: SyncConfig[] }[] = s.functionPerSync
      ? s.syncs.map((sync) => ({ id: `Sync-${sync.id}`, syncs: [sync] }))
      : [{ id: 'Sync', syncs: s.syncs }];
    this.functions = groups.map(
      (group) =>
        new SyncFunction(this, group.id, {
          vpc,
          subnets,
          securityGroup: network.securityGroup,
          table: this.table,
          dbSecretArn: s.dbSecretArn,
          syncs: group.syncs,
          memoryMb: s.memoryMb,
          timeout,
          logRetention: s.logRetentionDays as logs.RetentionDays,
          logKmsKeyArn: s.logKmsKeyArn,
          secretsKmsKeyArn: s.secretsKmsKeyArn,
          allowInsecureApi: s.apiAllowInsecure,
          metricsNamespace: s.metricsNamespace,
          deadLetterDays: s.deadLetterDays,
          ledgerDays: s.ledgerDays,
          secretsManagerUrl: endpoints.secretsManagerUrl,
          sourceMaps: s.sourceMaps,
        }),
    );
    const functionOf = (syncId: string) =>
      this.functions.find((f) => f.syncs.some((x) => x.id === syncId)) as SyncFunction;

    const enabled = s.syncs.filter((x) => x.enabled);
    const notify = new AlarmTopic(this, 'Alarms', { email: s.alarmEmail });
    if (enabled.length > 0) {
      const schedules = new SyncSchedules(this, 'Schedules', {
        syncs: enabled.map((sync) => ({
          sync,
          function: functionOf(sync.id).function,
          reconcileHours: sync.reconcileHours ?? s.reconcileHours,
        })),
      });
      new ScheduleAlarms(this, 'ScheduleAlarms', { notify, group: schedules.group });
      new CfnOutput(this, 'ScheduleGroupName', {
        description:
          'EventBridge Scheduler group of the schedules (aws scheduler list-schedules --group-name)',
        value: schedules.group.scheduleGroupName,
      });
      new CfnOutput(this, 'ScheduleDeadLetterQueueUrl', {
        description: 'Ticks the scheduler could not deliver, with the error (kept 14 days)',
        value: schedules.deadLetterQueue.queueUrl,
      });
    }
    for (const sync of enabled) {
      new SyncAlarms(this, `Alarms-${sync.id}`, {
        notify,
        namespace: s.metricsNamespace,
        syncId: sync.id,
        thresholds: alarmThresholdsFor(s, sync),
        runCadence: Duration.seconds((rateSeconds(sync.schedule) ?? 60) + s.timeoutSeconds),
      });
    }
    for (const fn of this.functions) {
      new FunctionAlarms(fn, 'Alarms', {
        notify,
        function: fn.function,
        namePrefix: s.functionPerSync ? `${this.stackName}-${fn.syncs[0]?.id}` : this.stackName,
      });
      new RecoveredCallsMetric(fn, 'RecoveredCalls', {
        logGroup: fn.logGroup,
        namespace: s.metricsNamespace,
      });
      this.suppressFunctionFindings(fn);
    }

    const logGroups = this.functions.map((f) => f.logGroup);
    new SavedQueries(this, 'Queries', { logGroups });
    new SyncDashboard(this, 'Dashboard', {
      namespace: s.metricsNamespace,
      syncIds: s.syncs.map((x) => x.id),
      functions: this.functions.map((f) => f.function),
      logGroups,
      timeout,
    });

    if (s.rotation) {
      new DbSecretRotation(this, 'DbSecretRotation', {
        vpc,
        subnets,
        network,
        dbSecretArn: s.dbSecretArn,
        rotation: s.rotation,
        secretsKmsKeyArn: s.secretsKmsKeyArn,
        ...(endpoints.secretsManagerPrivateDns && endpoints.secretsManager
          ? { privateDnsEndpoint: endpoints.secretsManager }
          : {}),
      });
    }

    const first = s.syncs[0]?.id ?? 'default';
    // Output ids are letters and digits only: with one function per sync they are numbered in sync order.
    this.functions.forEach((fn, i) => {
      const n = s.functionPerSync ? String(i + 1) : '';
      const of = s.functionPerSync ? ` of sync "${fn.syncs[0]?.id}"` : '';
      new CfnOutput(this, `FunctionName${n}`, {
        description: `Function${of}`,
        value: fn.function.functionName,
      });
      new CfnOutput(this, `LogGroupName${n}`, {
        description: `Log group${of} (aws logs tail <name> --follow)`,
        value: fn.logGroup.logGroupName,
      });
    });
    new CfnOutput(this, 'TableName', { value: this.table.tableName });
    new CfnOutput(this, 'InvokeExample', {
      description: `Show the status of sync "${first}" (--cli-read-timeout 0: the CLI would re-invoke a long action after 60 s)`,
      value: `aws lambda invoke --function-name ${functionOf(first).function.functionName} --cli-read-timeout 0 --cli-binary-format raw-in-base64-out --payload '{"action":"status","syncId":"${first}"}' /dev/stdout`,
    });
  }

  private suppressFunctionFindings(fn: SyncFunction): void {
    NagSuppressions.addResourceSuppressions(
      fn,
      [
        {
          id: 'AwsSolutions-IAM4',
          reason:
            'AWSLambdaVPCAccessExecutionRole is the AWS-maintained minimum for a Lambda in a VPC (ENIs and its logs).',
          appliesTo: [
            'Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole',
          ],
        },
        {
          id: 'Serverless-LambdaDLQ',
          reason:
            'A failed tick needs no replay: its event is only {syncId}, and the next tick resumes from the checkpoint. Failures alarm (Errors, FailedRuns) and are logged with their reason.',
        },
        {
          id: 'Serverless-LambdaAsyncFailureDestination',
          reason:
            'A failed tick needs no replay: its event is only {syncId}, and the next tick resumes from the checkpoint. Failures alarm (Errors, FailedRuns) and are logged with their reason.',
        },
        {
          id: 'Serverless-LambdaTracing',
          reason:
            'The code has no X-Ray instrumentation; a run is traced by its structured log lines and metrics, and active tracing would add xray:Put* on * to the role for one segment per tick.',
        },
      ],
      true,
    );
  }
}
