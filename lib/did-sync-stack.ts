import { CfnOutput, Duration, Fn, RemovalPolicy, Stack, type StackProps, Tags, Token } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import type { Construct } from 'constructs';
import { AlarmTopic, ScheduleAlarms, SyncAlarms } from './alarms';
import { SyncDashboard } from './dashboard';
import { DbSecretRotation } from './db-rotation';
import { RecoveredCallsMetric } from './metrics';
import { SyncNetwork } from './network';
import { SavedQueries } from './saved-queries';
import { SyncSchedules } from './schedules';
import {
  ALARM_DEFAULTS,
  alarmThresholdsFor,
  checkRegion,
  rateSeconds,
  runCadenceSeconds,
  type StackSettings,
  type SyncConfig,
  syncsPerStack,
} from './settings';
import { SyncFunction, secretResource } from './sync-function';
import { SyncVpcEndpoints } from './vpc-endpoints';

export interface DidSyncStackProps extends StackProps {
  /** Validated settings (see lib/settings.ts and the README's deploy section). */
  readonly settings: StackSettings;
  /**
   * The syncs this stack runs; the rest go to tenant stacks (see `createStacks`).
   * @default - every sync
   */
  readonly syncs?: readonly SyncConfig[];
}

/** What the shared stack lends its tenant stacks. */
interface SharedParts {
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.ISubnet[];
  readonly table: dynamodb.ITable;
  readonly securityGroup: ec2.ISecurityGroup;
  readonly notify: AlarmTopic;
  readonly secretsManagerUrl: string | undefined;
  readonly schedules: { group: scheduler.IScheduleGroup; deadLetterQueue: sqs.IQueue } | undefined;
}

/**
 * The app's stacks: the syncs in list order, `syncsPerStack` at a time. The first group shares the
 * stack named `name` with the table, the alarm topic and the network (so a deployment that fits one
 * stack keeps every logical id); each further group gets `<name>-Tenants<n>`. A sync appended to the
 * list never moves another; removing one from the middle would (disable it instead).
 */
export function createStacks(
  scope: Construct,
  name: string,
  settings: StackSettings,
  props: StackProps = {},
) {
  const size = syncsPerStack(settings);
  const groups: SyncConfig[][] = [];
  for (let i = 0; i < settings.syncs.length; i += size) groups.push(settings.syncs.slice(i, i + size));
  const shared = new DidSyncStack(scope, name, { ...props, settings, syncs: groups[0] ?? [] });
  const tenants = groups.slice(1).map(
    (syncs, i) =>
      new DidSyncTenantStack(scope, `${name}-Tenants${i + 2}`, {
        ...props,
        settings,
        syncs,
        shared,
        description: `${props.description ?? 'vicidial-did-sync'} (syncs ${syncs[0]?.id} to ${syncs[syncs.length - 1]?.id})`,
      }),
  );
  return { shared, tenants, all: [shared, ...tenants] };
}

/**
 * vicidial-did-sync's shared stack: the checkpoint table, the network, the alarm topic, the schedule
 * group and its dead-letter queue, database secret rotation, and the first `syncsPerStack` syncs: their
 * Lambda (one, or one per sync), schedules, alarms, dashboard and saved log queries.
 */
export class DidSyncStack extends Stack {
  readonly table: dynamodb.Table;
  /** One function for every sync of this stack, or one per sync (`functionPerSync`). */
  readonly functions: SyncFunction[];
  readonly notify: AlarmTopic;
  /** @internal */
  readonly shared: SharedParts;

  constructor(scope: Construct, id: string, props: DidSyncStackProps) {
    super(scope, id, { terminationProtection: true, ...props });
    const s = props.settings;
    const syncs = props.syncs ?? s.syncs;
    // Only a known region can refute an ARN's: an environment-agnostic stack is checked at deploy.
    if (!Token.isUnresolved(this.region)) checkRegion(s, this.region);
    Tags.of(this).add('project', 'vicidial-did-sync');
    Tags.of(this).add('sync', 'shared');

    const { vpc, subnets } = importVpc(this, s);

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
    // A created endpoint's URL selects from a list attribute, which CDK cannot export by itself.
    let secretsManagerUrl = endpoints.secretsManagerUrl;
    if (secretsManagerUrl && Token.isUnresolved(secretsManagerUrl) && s.syncs.length > syncs.length) {
      const exportName = `${id}-SecretsManagerUrl`;
      new CfnOutput(this, 'SecretsManagerUrl', {
        description: 'The Secrets Manager endpoint the functions of the tenant stacks call',
        value: secretsManagerUrl,
        exportName,
      });
      secretsManagerUrl = Fn.importValue(exportName);
    }

    this.notify = new AlarmTopic(this, 'Alarms', { email: s.alarmEmail });
    const anyEnabled = s.syncs.some((x) => x.enabled);
    let schedules: SharedParts['schedules'];
    const own = anyEnabled ? new SyncSchedules(this, 'Schedules', { syncs: [] }) : undefined;
    if (own) {
      schedules = { group: own.group, deadLetterQueue: own.deadLetterQueue };
      new ScheduleAlarms(this, 'ScheduleAlarms', {
        notify: this.notify,
        group: own.group,
        inARow: s.alarms.failedRunsInARow ?? ALARM_DEFAULTS.failedRunsInARow,
      });
      new CfnOutput(this, 'ScheduleGroupName', {
        description:
          'EventBridge Scheduler group of the schedules (aws scheduler list-schedules --group-name)',
        value: own.group.scheduleGroupName,
      });
      new CfnOutput(this, 'ScheduleDeadLetterQueueUrl', {
        description: 'Ticks the scheduler could not deliver, with the error (kept 14 days)',
        value: own.deadLetterQueue.queueUrl,
      });
    }

    this.shared = {
      vpc,
      subnets,
      table: this.table,
      securityGroup: network.securityGroup,
      notify: this.notify,
      secretsManagerUrl,
      schedules,
    };
    this.functions = addSyncs(
      this,
      s,
      syncs,
      { ...this.shared, secretsManagerUrl: endpoints.secretsManagerUrl },
      own,
    );

    if (s.rotation) {
      new DbSecretRotation(this, 'DbSecretRotation', {
        vpc,
        subnets,
        network,
        dbSecretArn: s.dbSecretArn,
        rotation: s.rotation,
        secretsKmsKeyArn: s.secretsKmsKeyArn,
        notify: this.notify.topic,
        ...(endpoints.secretsManagerPrivateDns && endpoints.secretsManager
          ? { privateDnsEndpoint: endpoints.secretsManager }
          : {}),
      });
    }
    new CfnOutput(this, 'TableName', { value: this.table.tableName });
  }
}

export interface DidSyncTenantStackProps extends StackProps {
  readonly settings: StackSettings;
  readonly syncs: readonly SyncConfig[];
  readonly shared: DidSyncStack;
}

/**
 * A group of syncs beyond the shared stack's: their functions, schedules (in the shared group), alarms
 * (to the shared topic), dashboard and saved queries, on the shared table and network.
 */
export class DidSyncTenantStack extends Stack {
  readonly functions: SyncFunction[];

  constructor(scope: Construct, id: string, props: DidSyncTenantStackProps) {
    super(scope, id, { terminationProtection: true, ...props });
    Tags.of(this).add('project', 'vicidial-did-sync');
    Tags.of(this).add('sync', 'shared');
    const shared = props.shared.shared;
    const { vpc, subnets } = importVpc(this, props.settings);
    const schedules = shared.schedules
      ? new SyncSchedules(this, 'Schedules', { syncs: [], shared: shared.schedules })
      : undefined;
    this.functions = addSyncs(this, props.settings, props.syncs, { ...shared, vpc, subnets }, schedules);
    this.addDependency(props.shared);
  }
}

function importVpc(scope: Construct, s: StackSettings) {
  const vpc = ec2.Vpc.fromVpcAttributes(scope, 'Vpc', {
    vpcId: s.vpcId,
    availabilityZones: s.availabilityZones,
    privateSubnetIds: s.privateSubnetIds,
    ...(s.routeTableIds ? { privateSubnetRouteTableIds: s.routeTableIds } : {}),
  });
  const subnets = s.privateSubnetIds.map((subnetId, i) =>
    ec2.Subnet.fromSubnetAttributes(scope, `Subnet${i}`, {
      subnetId,
      availabilityZone: s.availabilityZones[i] as string,
      ...(s.routeTableIds ? { routeTableId: s.routeTableIds[i] } : {}),
    }),
  );
  return { vpc, subnets };
}

/** A stack's syncs: functions, schedules, alarms, metric filters, saved queries, dashboard, outputs. */
function addSyncs(
  stack: Stack,
  s: StackSettings,
  syncs: readonly SyncConfig[],
  shared: SharedParts,
  schedules: SyncSchedules | undefined,
): SyncFunction[] {
  if (syncs.length === 0) return [];
  const timeout = Duration.seconds(s.timeoutSeconds);
  const groups: { id: string; syncs: SyncConfig[] }[] = s.functionPerSync
    ? syncs.map((sync) => ({ id: `Sync-${sync.id}`, syncs: [sync] }))
    : [{ id: 'Sync', syncs: [...syncs] }];
  const functions = groups.map((group) => {
    const fn = new SyncFunction(stack, group.id, {
      vpc: shared.vpc,
      subnets: shared.subnets,
      securityGroup: shared.securityGroup,
      table: shared.table,
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
      secretsManagerUrl: shared.secretsManagerUrl,
      sourceMaps: s.sourceMaps,
      reservedConcurrency: group.syncs.reduce(
        (n, x) => n + (x.reservedConcurrency ?? s.reservedConcurrency),
        0,
      ),
    });
    if (group.syncs.length === 1) Tags.of(fn).add('sync', group.syncs[0]?.id as string);
    return fn;
  });
  const functionOf = (syncId: string) =>
    functions.find((f) => f.syncs.some((x) => x.id === syncId)) as SyncFunction;

  const { notify } = shared;
  const enabled = syncs.filter((x) => x.enabled);
  if (schedules && enabled.length > 0) {
    for (const sync of enabled) {
      schedules.add({
        sync,
        function: functionOf(sync.id).function,
        reconcileHours: sync.reconcileHours ?? s.reconcileHours,
        intervalSeconds: rateSeconds(sync.schedule) ?? 60,
      });
    }
  }
  for (const sync of enabled) {
    const alarms = new SyncAlarms(stack, `Alarms-${sync.id}`, {
      notify,
      namespace: s.metricsNamespace,
      syncId: sync.id,
      thresholds: alarmThresholdsFor(s, sync),
      runCadence: Duration.seconds(runCadenceSeconds(s, sync)),
    });
    Tags.of(alarms).add('sync', sync.id);
  }
  for (const fn of functions) {
    new RecoveredCallsMetric(fn, 'RecoveredCalls', {
      logGroup: fn.logGroup,
      namespace: s.metricsNamespace,
    });
    suppressFunctionFindings(fn);
  }

  const logGroups = functions.map((f) => f.logGroup);
  new SavedQueries(stack, 'Queries', { logGroups });
  new SyncDashboard(stack, 'Dashboard', {
    namespace: s.metricsNamespace,
    syncIds: syncs.map((x) => x.id),
    functions: functions.map((f) => f.function),
    logGroups,
    timeout,
  });

  const first = syncs[0]?.id ?? 'default';
  // Output ids are letters and digits only: with one function per sync they are numbered in sync order.
  functions.forEach((fn, i) => {
    const n = s.functionPerSync ? String(i + 1) : '';
    const of = s.functionPerSync ? ` of sync "${fn.syncs[0]?.id}"` : '';
    new CfnOutput(stack, `FunctionName${n}`, {
      description: `Function${of}`,
      value: fn.function.functionName,
    });
    new CfnOutput(stack, `LogGroupName${n}`, {
      description: `Log group${of} (aws logs tail <name> --follow)`,
      value: fn.logGroup.logGroupName,
    });
  });
  new CfnOutput(stack, 'InvokeExample', {
    description: `Show the status of sync "${first}" (--cli-read-timeout 0: the CLI would re-invoke a long action after 60 s)`,
    value: `aws lambda invoke --function-name ${functionOf(first).function.functionName} --cli-read-timeout 0 --cli-binary-format raw-in-base64-out --payload '{"action":"status","syncId":"${first}"}' /dev/stdout`,
  });
  return functions;
}

function suppressFunctionFindings(fn: SyncFunction): void {
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
          'A failed tick needs no replay: its event is only {syncId}, and the next tick resumes from the checkpoint. Failures alarm (FailedRuns, NoRun) and are logged with their reason.',
      },
      {
        id: 'Serverless-LambdaAsyncFailureDestination',
        reason:
          'A failed tick needs no replay: its event is only {syncId}, and the next tick resumes from the checkpoint. Failures alarm (FailedRuns, NoRun) and are logged with their reason.',
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
