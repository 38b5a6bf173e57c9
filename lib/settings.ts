import { z } from 'zod';
import { CAMPAIGN_ID, SYNC_ID, SYNC_ID_RULE } from '../functions/sync/settings';

/**
 * The stack's settings, read from cdk.json's `context` (or `-c key=value`) and validated at synth,
 * so a typo fails `cdk synth` with the setting's name instead of a broken deployment.
 */

const CLOUDWATCH_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

const secretArn = z
  .string()
  .regex(
    /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/,
    'must be a Secrets Manager secret ARN',
  );

const campaignList = z.array(
  z.string().regex(CAMPAIGN_ID, 'must be VICIdial campaign ids (1-8 letters, digits, _ or -)'),
);

const syncSchema = z
  .object({
    id: z.string().regex(SYNC_ID, SYNC_ID_RULE),
    apiSecretArn: secretArn,
    schedule: z
      .string()
      .regex(/^(rate|cron)\(.+\)$/, 'must be rate(...) or cron(...), e.g. rate(1 minute)')
      .default('rate(1 minute)'),
    campaigns: campaignList.optional(),
    excludeCampaigns: campaignList.optional(),
    batchSize: z.number().int().min(1).max(5000).optional(),
    concurrency: z.number().int().min(1).max(64).optional(),
    enabled: z.boolean().default(true),
  })
  .strict();

export const stackSettingsSchema = z
  .object({
    vpcId: z.string().regex(/^vpc-[0-9a-f]{8,17}$/, 'must be a VPC id (vpc-...)'),
    privateSubnetIds: z
      .array(z.string().regex(/^subnet-[0-9a-f]{8,17}$/, 'must be subnet ids (subnet-...)'))
      .min(1),
    availabilityZones: z
      .array(z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d[a-z]$/, 'must be availability zone names'))
      .min(1),
    routeTableIds: z
      .array(z.string().regex(/^rtb-[0-9a-f]{8,17}$/, 'must be route table ids (rtb-...)'))
      .optional(),
    dbSecurityGroupId: z.string().regex(/^sg-[0-9a-f]{8,17}$/, 'must be a security group id (sg-...)'),
    manageDbIngress: z.boolean().default(true),
    dbPort: z.number().int().min(1).max(65535).default(3306),
    dbSecretArn: secretArn,
    syncs: z.array(syncSchema).min(1, 'must list at least one sync'),
    alarmEmail: z.email('must be an email address').optional(),
    logRetentionDays: z
      .number()
      .refine((d) => (CLOUDWATCH_RETENTION_DAYS as readonly number[]).includes(d), {
        message: `must be one of CloudWatch's retention periods (${CLOUDWATCH_RETENTION_DAYS.join(', ')})`,
      })
      .default(30),
    createVpcEndpoints: z.boolean().default(false),
    memoryMb: z.number().int().min(128).max(10240).default(512),
    timeoutSeconds: z.number().int().min(30).max(900).default(120),
    tableName: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{3,255}$/)
      .optional(),
    apiAllowInsecure: z.boolean().default(false),
  })
  .superRefine((s, ctx) => {
    if (s.privateSubnetIds.length !== s.availabilityZones.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['availabilityZones'],
        message: 'must list one zone per entry of privateSubnetIds, in the same order',
      });
    }
    if (s.routeTableIds && s.routeTableIds.length !== s.privateSubnetIds.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['routeTableIds'],
        message: 'must list one route table per entry of privateSubnetIds',
      });
    }
    if (s.createVpcEndpoints && !s.routeTableIds) {
      ctx.addIssue({
        code: 'custom',
        path: ['routeTableIds'],
        message: 'is required when createVpcEndpoints is true (the DynamoDB gateway endpoint needs them)',
      });
    }
    const seen = new Set<string>();
    s.syncs.forEach((sync, i) => {
      if (seen.has(sync.id))
        ctx.addIssue({
          code: 'custom',
          path: ['syncs', i, 'id'],
          message: `"${sync.id}" is used by two syncs`,
        });
      seen.add(sync.id);
    });
  });

export type StackSettings = z.infer<typeof stackSettingsSchema>;
export type SyncConfig = StackSettings['syncs'][number];

export class StackSettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StackSettingsError';
  }
}

/** Validates the context values; the error names the first bad setting as `cdk.json context "syncs[1].schedule"`. */
export function parseStackSettings(context: Record<string, unknown>): StackSettings {
  const result = stackSettingsSchema.safeParse(context);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = (issue?.path ?? [])
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
    .join('');
  const message =
    issue?.code === 'invalid_type' && issue.input === undefined
      ? 'is required'
      : (issue?.message ?? 'is invalid');
  throw new StackSettingsError(`cdk.json context "${path || 'context'}": ${message}`);
}

/** Reads every setting the schema knows from a construct node's context. */
export function readContext(tryGetContext: (key: string) => unknown): Record<string, unknown> {
  const keys = [
    'vpcId',
    'privateSubnetIds',
    'availabilityZones',
    'routeTableIds',
    'dbSecurityGroupId',
    'manageDbIngress',
    'dbPort',
    'dbSecretArn',
    'syncs',
    'alarmEmail',
    'logRetentionDays',
    'createVpcEndpoints',
    'memoryMb',
    'timeoutSeconds',
    'tableName',
    'apiAllowInsecure',
  ];
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const value = tryGetContext(key);
    if (value !== undefined) out[key] = value;
  }
  return out;
}
