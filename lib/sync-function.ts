import { join } from 'node:path';
import { Duration } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { SyncConfig } from './settings';

const ROOT = join(import.meta.dirname, '..');

export interface SyncFunctionProps {
  /** The VICIdial VPC (imported: synth needs no lookups). */
  readonly vpc: ec2.IVpc;
  /** Private subnets with a route to the database and, through NAT or endpoints, to AWS and the API. */
  readonly subnets: ec2.ISubnet[];
  /** Checkpoints, leases and dead letters. */
  readonly table: dynamodb.ITable;
  /** Database credentials in Secrets Manager's MySQL rotation shape. */
  readonly dbSecretArn: string;
  /** Every sync the function may run (enabled or not: a disabled one can still be invoked by hand). */
  readonly syncs: readonly SyncConfig[];
  readonly memoryMb: number;
  readonly timeout: Duration;
  readonly logRetention: logs.RetentionDays;
  /** Allow plain-http API URLs (never needed for a real DID Optimizer). */
  readonly allowInsecureApi: boolean;
}

/**
 * The sync Lambda: Node.js 22 on arm64, bundled locally by esbuild, in the VICIdial VPC, allowed to
 * read exactly the configured secrets and to touch items of its own table, nothing else.
 */
export class SyncFunction extends Construct {
  readonly function: NodejsFunction;
  readonly securityGroup: ec2.SecurityGroup;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: SyncFunctionProps) {
    super(scope, id);

    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description:
        'did-sync Lambda: out to the VICIdial database, the DID Optimizer API (HTTPS) and AWS endpoints',
      allowAllOutbound: true,
    });

    this.logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention });

    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'did-sync Lambda: logs, VPC networking, its secrets and its table',
      managedPolicies: [
        iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaVPCAccessExecutionRole'),
      ],
    });

    this.function = new NodejsFunction(this, 'Function', {
      entry: join(ROOT, 'functions', 'handler.ts'),
      handler: 'handler',
      projectRoot: ROOT,
      depsLockFilePath: join(ROOT, 'package-lock.json'),
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memoryMb,
      timeout: props.timeout,
      role,
      vpc: props.vpc,
      vpcSubnets: { subnets: props.subnets },
      securityGroups: [this.securityGroup],
      logGroup: this.logGroup,
      description: 'Copies finished VICIdial calls to the DID Optimizer API',
      // A failed tick is not retried: the next scheduled one a minute later resumes from the checkpoint.
      retryAttempts: 0,
      maxEventAge: Duration.seconds(60),
      environment: {
        CHECKPOINT_TABLE: props.table.tableName,
        DB_SECRET_ARN: props.dbSecretArn,
        SYNCS: JSON.stringify(
          props.syncs.map((s) => ({
            id: s.id,
            apiSecretArn: s.apiSecretArn,
            ...(s.campaigns ? { campaigns: s.campaigns } : {}),
            ...(s.excludeCampaigns ? { excludeCampaigns: s.excludeCampaigns } : {}),
            ...(s.batchSize ? { batchSize: s.batchSize } : {}),
            ...(s.concurrency ? { concurrency: s.concurrency } : {}),
          })),
        ),
        ALLOW_INSECURE_API: String(props.allowInsecureApi),
        POWERTOOLS_SERVICE_NAME: 'did-sync',
        NODE_OPTIONS: '--enable-source-maps',
      },
      bundling: {
        minify: true,
        sourceMap: true,
        target: 'node22',
        format: OutputFormat.CJS,
        // Pin the SDK we test with instead of the runtime's, which changes under us.
        bundleAwsSDK: true,
        forceDockerBundling: false,
      },
    });

    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadOwnSecrets',
        actions: ['secretsmanager:GetSecretValue'],
        resources: [props.dbSecretArn, ...props.syncs.map((s) => s.apiSecretArn)].map(secretResource),
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'CheckpointItems',
        actions: [
          'dynamodb:GetItem',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:Query',
        ],
        resources: [props.table.tableArn],
      }),
    );
  }
}

/**
 * A secret's full ARN ends in a 6-character suffix; a partial ARN (without it) matches only with the
 * documented `-??????` wildcard, which stays confined to that one secret.
 */
export function secretResource(arn: string): string {
  const name = arn.split(':secret:')[1] ?? '';
  return /-[A-Za-z0-9]{6}$/.test(name) ? arn : `${arn}-??????`;
}
