import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { NagSuppressions } from 'cdk-nag';
import type { Construct } from 'constructs';
import type { StackSettings } from './settings';
import { SyncFunction } from './sync-function';

export interface DidSyncStackProps extends StackProps {
  /** Validated settings (see lib/settings.ts and the README's deploy section). */
  readonly settings: StackSettings;
}

/**
 * vicidial-did-sync in one stack: the checkpoint table, the sync Lambda in the VICIdial VPC, one
 * EventBridge Scheduler schedule per enabled sync, and alarms.
 */
export class DidSyncStack extends Stack {
  readonly table: dynamodb.Table;
  readonly sync: SyncFunction;

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
      // The checkpoint and dead letters outlive the stack: losing them means re-sending or losing calls.
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.sync = new SyncFunction(this, 'Sync', {
      vpc,
      subnets,
      table: this.table,
      dbSecretArn: s.dbSecretArn,
      syncs: s.syncs,
      memoryMb: s.memoryMb,
      timeout: Duration.seconds(s.timeoutSeconds),
      logRetention: s.logRetentionDays as logs.RetentionDays,
      allowInsecureApi: s.apiAllowInsecure,
    });
    const fn = this.sync.function;

    const dbSecurityGroup = ec2.SecurityGroup.fromSecurityGroupId(
      this,
      'DbSecurityGroup',
      s.dbSecurityGroupId,
      {
        mutable: s.manageDbIngress,
      },
    );
    if (s.manageDbIngress) {
      dbSecurityGroup.addIngressRule(
        this.sync.securityGroup,
        ec2.Port.tcp(s.dbPort),
        'did-sync Lambda reads vicidial_log',
      );
    } else {
      new CfnOutput(this, 'DbIngressToAdd', {
        description: 'Add this rule to the VICIdial database security group (manageDbIngress is false)',
        value: `aws ec2 authorize-security-group-ingress --group-id ${s.dbSecurityGroupId} --protocol tcp --port ${s.dbPort} --source-group ${this.sync.securityGroup.securityGroupId}`,
      });
    }

    if (s.createVpcEndpoints) {
      vpc.addGatewayEndpoint('DynamoDbEndpoint', {
        service: ec2.GatewayVpcEndpointAwsService.DYNAMODB,
        subnets: [{ subnets }],
      });
      const endpoint = vpc.addInterfaceEndpoint('SecretsManagerEndpoint', {
        service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
        subnets: { subnets },
        privateDnsEnabled: true,
        // Only the function may use it (the default would open it to the whole VPC CIDR).
        open: false,
      });
      endpoint.connections.allowFrom(
        this.sync.securityGroup,
        ec2.Port.tcp(443),
        'did-sync Lambda to Secrets Manager',
      );
    }

    for (const sync of s.syncs.filter((x) => x.enabled)) {
      const role = new iam.Role(this, `ScheduleRole-${sync.id}`, {
        assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
          conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
        }),
        description: `EventBridge Scheduler: invoke did-sync for sync ${sync.id}`,
      });
      new scheduler.Schedule(this, `Schedule-${sync.id}`, {
        description: `did-sync ${sync.id}`,
        schedule: scheduler.ScheduleExpression.expression(sync.schedule),
        target: new targets.LambdaInvoke(fn, {
          role,
          input: scheduler.ScheduleTargetInput.fromObject({ syncId: sync.id }),
          retryAttempts: 0,
          maxEventAge: Duration.seconds(60),
        }),
      });
      NagSuppressions.addResourceSuppressions(
        role,
        [
          {
            id: 'AwsSolutions-IAM5',
            reason:
              'LambdaInvoke grants lambda:InvokeFunction on the function and its versions (ARN:*); it is confined to this one function.',
            appliesTo: [{ regex: '/^Resource::<SyncFunction.*\\.Arn>:\\*$/' }],
          },
        ],
        true,
      );
    }

    const topic = s.alarmEmail
      ? new sns.Topic(this, 'Alarms', { displayName: 'did-sync alarms', enforceSSL: true })
      : undefined;
    if (topic && s.alarmEmail) {
      topic.addSubscription(new subscriptions.EmailSubscription(s.alarmEmail));
      NagSuppressions.addResourceSuppressions(topic, [
        {
          id: 'AwsSolutions-SNS2',
          reason:
            'Alarm notifications carry no call data; a KMS key would need a key policy for CloudWatch for no gain.',
        },
      ]);
    }
    const alarms = [
      new cloudwatch.Alarm(this, 'SyncErrors', {
        alarmDescription:
          'A did-sync run failed (API down, key refused, database unreachable or lease lost): see the run_end log line',
        metric: fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'SyncThrottles', {
        alarmDescription: 'did-sync invocations are throttled: scheduled ticks are being skipped',
        metric: fn.metricThrottles({ period: Duration.minutes(5), statistic: 'Sum' }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    ];
    if (topic) for (const alarm of alarms) alarm.addAlarmAction(new actions.SnsAction(topic));

    NagSuppressions.addResourceSuppressions(
      this.sync,
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
          id: 'AwsSolutions-L1',
          reason:
            'Node.js 22 is the runtime this code and its dependencies are built and tested for; moving is a deliberate upgrade.',
        },
      ],
      true,
    );

    const first = s.syncs[0]?.id ?? 'default';
    new CfnOutput(this, 'FunctionName', { value: fn.functionName });
    new CfnOutput(this, 'TableName', { value: this.table.tableName });
    new CfnOutput(this, 'InvokeExample', {
      description: 'Show the status of the first sync',
      value: `aws lambda invoke --function-name ${fn.functionName} --cli-binary-format raw-in-base64-out --payload '{"action":"status","syncId":"${first}"}' /dev/stdout`,
    });
  }
}
