import { join } from 'node:path';
import { Duration, Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { partitionKey } from '../functions/sync/state/keys';
import { MALLOC_SETTINGS } from './malloc-settings.js';
import { NOT_BUNDLED } from './not-bundled.js';
import type { SyncConfig } from './settings';
import { PropsError, requireInteger } from './validation';

const ROOT = join(import.meta.dirname, '..');

export { NOT_BUNDLED };

export interface SyncFunctionProps {
  /** The VICIdial VPC (imported: synth needs no lookups). */
  readonly vpc: ec2.IVpc;
  /** Private subnets with a route to the database and, through NAT or endpoints, to AWS and the API. */
  readonly subnets: ec2.ISubnet[];
  /** The function's security group (shared by every sync's function: they reach the same places). */
  readonly securityGroup: ec2.ISecurityGroup;
  /** Checkpoints, leases and dead letters. */
  readonly table: dynamodb.ITable;
  /** Database credentials in Secrets Manager's MySQL rotation shape. */
  readonly dbSecretArn: string;
  /** The syncs this function runs (enabled or not: a disabled one can still be invoked by hand). */
  readonly syncs: readonly SyncConfig[];
  readonly memoryMb: number;
  readonly timeout: Duration;
  readonly logRetention: logs.RetentionDays;
  /**
   * Encrypts the log group (the key policy must let CloudWatch Logs use it).
   * @default - CloudWatch Logs' own encryption
   */
  readonly logKmsKeyArn?: string;
  /**
   * The customer managed key the secrets are encrypted with.
   * @default - aws/secretsmanager, which needs no grant
   */
  readonly secretsKmsKeyArn?: string;
  /** Allow plain-http API URLs (never needed for a real DID Optimizer). */
  readonly allowInsecureApi: boolean;
  /** CloudWatch namespace of the function's embedded metrics. */
  readonly metricsNamespace: string;
  /** Days a dead letter is kept before DynamoDB's TTL removes it. */
  readonly deadLetterDays: number;
  /** Days a delivery ledger item is kept. */
  readonly ledgerDays: number;
  /**
   * `https://<endpoint>` for the Secrets Manager client when the VPC endpoint has private DNS off.
   * @default - the regional endpoint (or a private-DNS VPC endpoint that answers for it)
   */
  readonly secretsManagerUrl?: string;
  /** Ship a source map and turn on --enable-source-maps (bigger asset, slower cold start). */
  readonly sourceMaps: boolean;
  /**
   * Concurrent executions reserved for the function: caps a burst of overlapping ticks and manual invokes
   * (each opens a database connection before it meets the lease).
   */
  readonly reservedConcurrency: number;
}

/**
 * Partition key of every item of one sync (checkpoint, ledger, dead letters, repairs, check probes):
 * the function's own key builder, so the IAM condition cannot drift from the keys it writes.
 */
export const syncPartitionKey = partitionKey;

/** Lambda's cap on a function's environment (keys and values together). */
const ENVIRONMENT_BYTES = 4096;

/**
 * The sync Lambda: Node.js 24 on arm64, bundled locally by esbuild, in the VICIdial VPC, allowed to
 * read exactly its syncs' secrets and to touch items of its own table, nothing else.
 */
export class SyncFunction extends Construct {
  readonly function: NodejsFunction;
  readonly logGroup: logs.LogGroup;
  readonly syncs: readonly SyncConfig[];

  constructor(scope: Construct, id: string, props: SyncFunctionProps) {
    super(scope, id);
    if (props.syncs.length === 0) throw new PropsError(this, 'syncs', 'must list at least one sync');
    requireInteger(this, 'memoryMb', props.memoryMb, 128, 10_240);
    requireInteger(this, 'deadLetterDays', props.deadLetterDays, 1, 3650);
    requireInteger(this, 'ledgerDays', props.ledgerDays, 1, 3650);
    requireInteger(this, 'reservedConcurrency', props.reservedConcurrency, 2, 10_000);
    this.syncs = props.syncs;
    // Descriptions are capped (256 characters for a function): name the sync only when there is one.
    const which = props.syncs.length === 1 ? ` (sync ${props.syncs[0]?.id})` : '';

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention,
      ...(props.logKmsKeyArn
        ? { encryptionKey: kms.Key.fromKeyArn(this, 'LogKey', props.logKmsKeyArn) }
        : {}),
    });

    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `did-sync Lambda${which}: logs, VPC networking, its secrets and its table`,
      managedPolicies: [
        iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaVPCAccessExecutionRole'),
      ],
    });

    const environment: Record<string, string> = {
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
          ...(s.startFrom ? { startFrom: s.startFrom } : {}),
        })),
      ),
      ALLOW_INSECURE_API: String(props.allowInsecureApi),
      POWERTOOLS_SERVICE_NAME: 'did-sync',
      POWERTOOLS_METRICS_NAMESPACE: props.metricsNamespace,
      DEAD_LETTER_DAYS: String(props.deadLetterDays),
      LEDGER_DAYS: String(props.ledgerDays),
      ...(props.secretsManagerUrl ? { SECRETS_MANAGER_ENDPOINT: props.secretsManagerUrl } : {}),
      // glibc's malloc as the did-sync command sets it (lib/malloc-settings.js says why), read when the
      // runtime's node starts. Bench F', Node 24: see the README.
      ...MALLOC_SETTINGS,
      // A 2 MB young generation keeps a long drain's RSS near its heap (bench F on Node 24: 146 MB
      // instead of 231 for 100,000 calls) for ~15 % more CPU per call. Source-mapped stack traces cost
      // cold-start time; only worth it when the map ships.
      NODE_OPTIONS: ['--max-semi-space-size=2', ...(props.sourceMaps ? ['--enable-source-maps'] : [])].join(
        ' ',
      ),
    };
    // Tokens (the table name) are short; the syncs' JSON is what grows with their number.
    const bytes = Object.entries(environment).reduce((n, [k, v]) => n + k.length + v.length, 0);
    if (bytes > ENVIRONMENT_BYTES - 200) {
      throw new PropsError(
        this,
        'syncs',
        `need ${bytes} bytes of environment, over Lambda's ${ENVIRONMENT_BYTES}: set functionPerSync, or a lower syncsPerStack`,
      );
    }

    this.function = new NodejsFunction(this, 'Function', {
      entry: join(ROOT, 'functions', 'handler.ts'),
      handler: 'handler',
      projectRoot: ROOT,
      depsLockFilePath: join(ROOT, 'package-lock.json'),
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memoryMb,
      timeout: props.timeout,
      role,
      vpc: props.vpc,
      vpcSubnets: { subnets: props.subnets },
      securityGroups: [props.securityGroup],
      logGroup: this.logGroup,
      description: `Copies finished VICIdial calls to the DID Optimizer API${which}`,
      // A failed tick is not retried: the next scheduled one a minute later resumes from the checkpoint.
      retryAttempts: 0,
      maxEventAge: Duration.seconds(60),
      reservedConcurrentExecutions: props.reservedConcurrency,
      environment,
      bundling: {
        minify: true,
        sourceMap: props.sourceMaps,
        // Stack traces need the mappings, not a second copy of every source file.
        ...(props.sourceMaps ? { sourcesContent: false } : {}),
        target: 'node24',
        format: OutputFormat.CJS,
        // Pin the SDK we test with instead of the runtime's, which changes under us.
        bundleAwsSDK: true,
        externalModules: [...NOT_BUNDLED],
        forceDockerBundling: false,
      },
    });

    const secrets = [props.dbSecretArn, ...props.syncs.map((s) => s.apiSecretArn)].map(secretResource);
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadOwnSecrets',
        actions: ['secretsmanager:GetSecretValue'],
        resources: secrets,
      }),
    );
    if (props.secretsKmsKeyArn) {
      // Only through Secrets Manager, and only for these secrets: the key may protect other secrets too.
      role.addToPolicy(
        new iam.PolicyStatement({
          sid: 'DecryptOwnSecrets',
          actions: ['kms:Decrypt'],
          resources: [props.secretsKmsKeyArn],
          conditions: {
            StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(this).region}.amazonaws.com` },
            StringLike: { 'kms:EncryptionContext:SecretARN': secrets },
          },
        }),
      );
    }
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
        // Tenant isolation: only items whose partition key is one of its own syncs' (an exact match: a
        // prefix would let sync "main" reach "main2").
        conditions: {
          'ForAllValues:StringEquals': {
            'dynamodb:LeadingKeys': props.syncs.map((x) => syncPartitionKey(x.id)),
          },
        },
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
