import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Aspects, type Stack, Stage } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { DidSyncStack } from '../lib/did-sync-stack';
import { parseStackSettings, type StackSettings } from '../lib/settings';
import { secretResource } from '../lib/sync-function';

const example = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'cdk.json'), 'utf8'))
  .context as Record<string, unknown>;
const ACCOUNT = '123456789012';

function synth(overrides: Partial<Record<string, unknown>> = {}): {
  stack: Stack;
  template: Template;
  settings: StackSettings;
} {
  const app = new App();
  const settings = parseStackSettings({ ...example, ...overrides });
  const stack = new DidSyncStack(app, 'DidSync', {
    settings,
    env: { account: ACCOUNT, region: 'us-east-1' },
  });
  Aspects.of(stack).add(new AwsSolutionsChecks());
  return { stack, template: Template.fromStack(stack), settings };
}

describe('the stack from the checked-in cdk.json', () => {
  let stack: Stack;
  let template: Template;
  let settings: StackSettings;

  beforeAll(() => {
    ({ stack, template, settings } = synth());
  }, 120_000);

  it('runs one Node.js 22 arm64 function in the configured private subnets', () => {
    template.resourceCountIs('AWS::Lambda::Function', 1);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      MemorySize: 512,
      Timeout: 120,
      VpcConfig: {
        SubnetIds: ['subnet-0123456789abcdef0', 'subnet-0fedcba9876543210'],
        SecurityGroupIds: [Match.objectLike({ 'Fn::GetAtt': Match.anyValue() })],
      },
      Environment: {
        Variables: Match.objectLike({
          CHECKPOINT_TABLE: Match.anyValue(),
          DB_SECRET_ARN: settings.dbSecretArn,
          ALLOW_INSECURE_API: 'false',
          POWERTOOLS_SERVICE_NAME: 'did-sync',
          NODE_OPTIONS: '--enable-source-maps',
        }),
      },
    });
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      MaximumRetryAttempts: 0,
      MaximumEventAgeInSeconds: 60,
    });
  });

  it('passes every sync, enabled or not, to the function with ARNs only', () => {
    const fn = Object.values(template.findResources('AWS::Lambda::Function'))[0] as {
      Properties: { Environment: { Variables: { SYNCS: string } } };
    };
    const syncs = JSON.parse(fn.Properties.Environment.Variables.SYNCS);
    expect(syncs).toEqual([
      {
        id: 'main',
        apiSecretArn: settings.syncs[0]?.apiSecretArn,
        excludeCampaigns: ['TESTCAMP'],
        batchSize: 500,
        concurrency: 16,
      },
      {
        id: 'tenant2-retention',
        apiSecretArn: settings.syncs[1]?.apiSecretArn,
        campaigns: ['RETENT', 'WINBACK'],
      },
    ]);
  });

  it('schedules each enabled sync with its own payload and role, and not the disabled one', () => {
    const schedules = template.findResources('AWS::Scheduler::Schedule');
    expect(Object.keys(schedules)).toHaveLength(1);
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      Target: {
        Input: JSON.stringify({ syncId: 'main' }),
        RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 },
      },
    });
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [
          Match.objectLike({
            Principal: { Service: 'scheduler.amazonaws.com' },
            Condition: { StringEquals: { 'aws:SourceAccount': ACCOUNT } },
          }),
        ],
      },
    });
  });

  it('keeps checkpoints in an on-demand table with point-in-time recovery, retained on delete', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: Match.objectLike({
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      }),
    });
  });

  it('grants secret reads on exactly the configured secrets and item actions on the table only', () => {
    const policies = template.findResources('AWS::IAM::Policy');
    const statements = Object.values(policies).flatMap(
      (p) =>
        (
          p as {
            Properties: {
              PolicyDocument: { Statement: { Sid?: string; Action: string | string[]; Resource: unknown }[] };
            };
          }
        ).Properties.PolicyDocument.Statement,
    );
    const secrets = statements.find((s) => s.Sid === 'ReadOwnSecrets');
    expect(secrets?.Action).toBe('secretsmanager:GetSecretValue');
    expect(secrets?.Resource).toEqual([settings.dbSecretArn, ...settings.syncs.map((s) => s.apiSecretArn)]);
    const table = statements.find((s) => s.Sid === 'CheckpointItems');
    expect(table?.Action).toEqual([
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
      'dynamodb:Query',
    ]);
    expect(table?.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^Checkpoints/), 'Arn'] });
    for (const statement of statements) {
      const actions = ([] as string[]).concat(statement.Action);
      for (const action of actions) expect(action).not.toMatch(/(^\*$|:\*$)/);
      const resources = ([] as unknown[]).concat(statement.Resource);
      if (actions.some((a) => a.startsWith('dynamodb:') || a.startsWith('secretsmanager:'))) {
        expect(resources).not.toContain('*');
      }
    }
  });

  it('opens the database port to the function only', () => {
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: 'sg-0123456789abcdef0',
      IpProtocol: 'tcp',
      FromPort: 3306,
      ToPort: 3306,
      SourceSecurityGroupId: Match.objectLike({ 'Fn::GetAtt': Match.anyValue() }),
    });
  });

  it('alarms on errors and throttles to the configured email', () => {
    template.resourceCountIs('AWS::CloudWatch::Alarm', 2);
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'noc@example.com',
    });
  });

  it('outputs the function, the table and a ready invoke command', () => {
    template.hasOutput('FunctionName', {});
    template.hasOutput('TableName', {});
    const out = template.findOutputs('InvokeExample');
    expect(JSON.stringify(out)).toContain('aws lambda invoke');
    expect(JSON.stringify(out)).toContain('{\\"action\\":\\"status\\",\\"syncId\\":\\"main\\"}');
  });

  it('bundles a handler that loads as Lambda loads it and names a missing setting', async () => {
    const assembly = (Stage.of(stack) as Stage).synth();
    const fn = Object.values(template.findResources('AWS::Lambda::Function'))[0] as {
      Properties: { Code: { S3Key: string } };
    };
    const asset = join(assembly.directory, `asset.${fn.Properties.Code.S3Key.replace(/\.zip$/, '')}`);
    // Lambda has no package.json around the bundle: load it as CommonJS from a directory of its own.
    const dir = mkdtempSync(join(tmpdir(), 'did-sync-bundle-'));
    cpSync(asset, dir, { recursive: true });
    const mod = createRequire(join(dir, 'index.js'))(join(dir, 'index.js')) as {
      handler: (e: unknown, c: unknown) => Promise<unknown>;
    };
    expect(typeof mod.handler).toBe('function');
    const saved = process.env.CHECKPOINT_TABLE;
    delete process.env.CHECKPOINT_TABLE;
    try {
      await expect(
        mod.handler(
          { syncId: 'main' },
          { getRemainingTimeInMillis: () => 1000, awsRequestId: 'r', functionVersion: '1' },
        ),
      ).rejects.toThrow('CHECKPOINT_TABLE: is required (the DynamoDB table holding checkpoints)');
    } finally {
      if (saved !== undefined) process.env.CHECKPOINT_TABLE = saved;
    }
  });

  it('holds no secret value anywhere', () => {
    const text = JSON.stringify(template.toJSON());
    // Only ARNs reach the template: no credential field, no VICIdial install default.
    expect(text).not.toMatch(/password|apiKey|x-api-key/i);
    expect(text).not.toMatch(/VARDB_pass|"cron"/);
  });

  it('has no unsuppressed cdk-nag AwsSolutions findings, and every suppression has a reason', () => {
    const errors = Annotations.fromStack(stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*'));
    const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*'));
    expect(errors.map((e) => `${e.id}: ${e.entry.data}`)).toEqual([]);
    expect(warnings.map((e) => `${e.id}: ${e.entry.data}`)).toEqual([]);
    const suppressions = Object.values(
      template.toJSON().Resources as Record<
        string,
        { Metadata?: { cdk_nag?: { rules_to_suppress: { id: string; reason: string }[] } } }
      >,
    ).flatMap((r) => r.Metadata?.cdk_nag?.rules_to_suppress ?? []);
    expect(suppressions.length).toBeGreaterThan(0);
    for (const s of suppressions) expect(s.reason.length).toBeGreaterThan(30);
  });
});

describe('variants', () => {
  it('documents the ingress rule instead of adding it when manageDbIngress is false', () => {
    const { template } = synth({ manageDbIngress: false, alarmEmail: undefined });
    template.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
    expect(JSON.stringify(template.findOutputs('DbIngressToAdd'))).toContain(
      'authorize-security-group-ingress',
    );
    template.resourceCountIs('AWS::SNS::Topic', 0);
  }, 120_000);

  it('adds the DynamoDB gateway and a Secrets Manager endpoint open to the function only', () => {
    const { template, stack } = synth({ createVpcEndpoints: true });
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      RouteTableIds: ['rtb-0123456789abcdef0', 'rtb-0fedcba9876543210'],
    });
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Interface',
      PrivateDnsEnabled: true,
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', { FromPort: 443, ToPort: 443 });
    expect(Annotations.fromStack(stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*'))).toEqual(
      [],
    );
  }, 120_000);
});

describe('settings validation', () => {
  it.each([
    [
      {
        syncs: [
          {
            id: 'a',
            apiSecretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf',
            schedule: 'every minute',
          },
        ],
      },
      'cdk.json context "syncs[0].schedule": must be rate(...) or cron(...), e.g. rate(1 minute)',
    ],
    [
      {
        syncs: [
          { id: 'a', apiSecretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf' },
          { id: 'a', apiSecretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:y-AbCdEf' },
        ],
      },
      'cdk.json context "syncs[1].id": "a" is used by two syncs',
    ],
    [
      { availabilityZones: ['us-east-1a'] },
      'cdk.json context "availabilityZones": must list one zone per entry of privateSubnetIds, in the same order',
    ],
    [{ dbSecretArn: undefined }, 'cdk.json context "dbSecretArn": is required'],
    [{ dbSecretArn: 'my-secret' }, 'cdk.json context "dbSecretArn": must be a Secrets Manager secret ARN'],
    [
      { logRetentionDays: 10 },
      /^cdk.json context "logRetentionDays": must be one of CloudWatch's retention periods/,
    ],
    [
      { routeTableIds: undefined, createVpcEndpoints: true },
      'cdk.json context "routeTableIds": is required when createVpcEndpoints is true (the DynamoDB gateway endpoint needs them)',
    ],
    [{ syncs: [] }, 'cdk.json context "syncs": must list at least one sync'],
  ])('refuses %o naming the setting', (override, message) => {
    const run = () => parseStackSettings({ ...example, ...override });
    if (typeof message === 'string') expect(run).toThrow(message);
    else expect(run).toThrow(message);
    try {
      run();
    } catch (error) {
      if (typeof message === 'string') expect((error as Error).message).toBe(message);
    }
  });

  it('applies the documented defaults', () => {
    const s = parseStackSettings({
      vpcId: 'vpc-0123456789abcdef0',
      privateSubnetIds: ['subnet-0123456789abcdef0'],
      availabilityZones: ['us-east-1a'],
      dbSecurityGroupId: 'sg-0123456789abcdef0',
      dbSecretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf',
      syncs: [
        { id: 'default', apiSecretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:api-AbCdEf' },
      ],
    });
    expect(s).toMatchObject({
      manageDbIngress: true,
      dbPort: 3306,
      logRetentionDays: 30,
      createVpcEndpoints: false,
      memoryMb: 512,
      timeoutSeconds: 120,
    });
    expect(s.syncs[0]).toMatchObject({ schedule: 'rate(1 minute)', enabled: true });
  });

  it('widens a partial secret ARN with the documented suffix wildcard only', () => {
    expect(secretResource('arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf')).toBe(
      'arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf',
    );
    expect(secretResource('arn:aws:secretsmanager:us-east-1:123456789012:secret:did-sync/db')).toBe(
      'arn:aws:secretsmanager:us-east-1:123456789012:secret:did-sync/db-??????',
    );
  });
});
