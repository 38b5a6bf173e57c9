import { z } from 'zod';
import { RECONCILE_MARGIN_SECONDS } from '../functions/sync/admin/reconcile';
import { CAMPAIGN_ID, instantProblem, parseInstant, SYNC_ID, SYNC_ID_RULE } from '../functions/sync/settings';

/**
 * The stack's settings, read from cdk.json's `context` (or `-c key=value`) and validated at synth,
 * so a typo fails `cdk synth` with the setting's name instead of a broken deployment.
 */

const CLOUDWATCH_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/** Days an operator may be away before a dead letter expires unreplayed (a week's holiday). */
export const MIN_DEAD_LETTER_DAYS = 7;
/** Lambda refuses reservations that leave fewer unreserved executions than this in the account. */
export const UNRESERVED_MINIMUM = 100;
/** Per-stack cap on syncs, so that even with functionPerSync a template stays under 500 resources. */
export const MAX_SYNCS_PER_STACK = 20;

const secretArn = z
  .string()
  .regex(
    /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/,
    'must be a Secrets Manager secret ARN',
  );

// IAM matches KMS permissions on the key ARN only: an alias ARN would grant nothing.
const kmsKeyArn = z
  .string()
  .regex(
    /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/(mrk-)?[0-9a-f-]{32,36}$/,
    'must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>), not an alias',
  );

const securityGroupId = z.string().regex(/^sg-[0-9a-f]{8,17}$/, 'must be a security group id (sg-...)');
const endpointId = z.string().regex(/^vpce-[0-9a-f]{8,17}$/, 'must be a VPC endpoint id (vpce-...)');
const port = z.number().int().min(1).max(65535);

const campaignList = z.array(
  z.string().regex(CAMPAIGN_ID, 'must be VICIdial campaign ids (1-8 letters, digits, _ or -)'),
);

/** Alarm thresholds, stack-wide (`alarms`) and per sync (`syncs[].alarms`); see the README's "Operating it". */
export const ALARM_DEFAULTS = {
  /** SyncLagSeconds above this (the sync is behind the database clock). */
  lagSeconds: 600,
  /** SyncLagSeconds below minus this (the cursor is ahead of the database clock). */
  cursorAheadSeconds: 60,
  /** No run completed or moved the cursor for this long; at least twice a slower schedule's interval. */
  noRunMinutes: 10,
  /** Runs failing this many times in a row. */
  failedRunsInARow: 3,
  /** Dead letters in 5 minutes. */
  deadLetters: 1,
  /** Calls the reconcile found missing in 5 minutes. */
  missingCalls: 1,
  /** Runs stopped by a refused API key in 5 minutes. */
  authFailures: 1,
} as const;
export type AlarmThresholds = { -readonly [K in keyof typeof ALARM_DEFAULTS]: number };

const alarmThresholds = z
  .object({
    lagSeconds: z.number().int().min(60).max(604_800),
    cursorAheadSeconds: z.number().int().min(1).max(86_400),
    noRunMinutes: z.number().int().min(2).max(1440),
    failedRunsInARow: z.number().int().min(1).max(20),
    deadLetters: z.number().int().min(1),
    missingCalls: z.number().int().min(1),
    authFailures: z.number().int().min(1),
  })
  .partial()
  .strict();

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
    alarms: alarmThresholds.optional(),
    /** Hours reconciled by the hourly safety net, up to the cursor (stack-wide `reconcileHours` otherwise). */
    reconcileHours: z.number().int().min(0).max(168).optional(),
    /**
     * Where a new sync starts (epoch seconds or ISO-8601 with a zone): the cut-over point from the Perl
     * script. Only read while the sync has no checkpoint; default one hour before the first run.
     */
    startFrom: z
      .string()
      .refine((v) => parseInstant(v) !== undefined, {
        message: 'must be epoch seconds or ISO-8601 with a zone (2026-01-31T08:00:00Z)',
      })
      .superRefine((v, ctx) => {
        const epoch = parseInstant(v);
        const problem = epoch === undefined ? undefined : instantProblem(epoch, Date.now() / 1000, 'now');
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional(),
    /** Reserved concurrency per sync (stack-wide `reservedConcurrency` otherwise). */
    reservedConcurrency: z.number().int().min(2).max(100).optional(),
  })
  .strict();

const rotationSchema = z
  .object({
    // AWS's MySQL rotation refuses a secret whose `engine` is "mariadb", and the MariaDB one the reverse.
    engine: z.enum(['mysql', 'mariadb']).default('mariadb'),
    days: z.number().int().min(1).max(1000).default(30),
    /** Alternating users: this secret's user creates and updates the sync's two users. */
    masterSecretArn: secretArn.optional(),
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
    dbSecurityGroupId: securityGroupId,
    manageDbIngress: z.boolean().default(true),
    dbPort: port.default(3306),
    apiPort: port.default(443),
    dbSecretArn: secretArn,
    syncs: z.array(syncSchema).min(1, 'must list at least one sync'),
    functionPerSync: z.boolean().default(false),
    alarmEmail: z.email('must be an email address').optional(),
    alarms: alarmThresholds.default({}),
    metricsNamespace: z
      .string()
      .regex(
        /^(?!AWS\/)[A-Za-z0-9._/#:-]{1,255}$/,
        'must be a CloudWatch namespace (letters, digits, . _ / # : -, not starting with AWS/)',
      )
      .default('DidSync'),
    logRetentionDays: z
      .number()
      .refine((d) => (CLOUDWATCH_RETENTION_DAYS as readonly number[]).includes(d), {
        message: `must be one of CloudWatch's retention periods (${CLOUDWATCH_RETENTION_DAYS.join(', ')})`,
      })
      .default(30),
    logKmsKeyArn: kmsKeyArn.optional(),
    secretsKmsKeyArn: kmsKeyArn.optional(),
    createVpcEndpoints: z.boolean().default(false),
    secretsManagerEndpointId: endpointId.optional(),
    secretsManagerEndpointSecurityGroupId: securityGroupId.optional(),
    secretsManagerEndpointDns: z
      .string()
      .regex(
        /^vpce-[0-9a-z-]+\.secretsmanager\.[a-z0-9-]+\.vpce\.amazonaws\.com(\.cn)?$/,
        "must be the endpoint's DNS name (vpce-...secretsmanager.<region>.vpce.amazonaws.com)",
      )
      .optional(),
    dynamoDbEndpointId: endpointId.optional(),
    rotation: rotationSchema.optional(),
    memoryMb: z.number().int().min(128).max(10240).default(512),
    timeoutSeconds: z.number().int().min(30).max(900).default(120),
    tableName: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{3,255}$/)
      .optional(),
    deadLetterDays: z.number().int().min(1).max(3650).default(30),
    ledgerDays: z.number().int().min(1).max(3650).default(8),
    /** The hourly reconcile (with repair) over this many hours up to the cursor; 0 turns it off. */
    reconcileHours: z.number().int().min(0).max(168).default(6),
    apiAllowInsecure: z.boolean().default(false),
    sourceMaps: z.boolean().default(false),
    /**
     * Concurrent executions reserved per sync: a run (up to the timeout) and the next tick that meets its
     * lease (the timeout exceeds the interval), and one more for a manual invoke.
     */
    reservedConcurrency: z.number().int().min(2).max(100).default(3),
    /** The account's concurrency quota in this region: reservations must leave AWS's 100 unreserved. */
    accountConcurrency: z.number().int().min(10).default(1000),
    /**
     * Syncs per stack: the first this many stay in the stack named `stackName`, with the shared table,
     * topic and network; each further group goes to `<stackName>-Tenants<n>`.
     * @default 20 with functionPerSync, 40 without (every template well under 500 resources)
     */
    syncsPerStack: z.number().int().min(1).max(MAX_SYNCS_PER_STACK).optional(),
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
    if (s.createVpcEndpoints && !s.dynamoDbEndpointId && !s.routeTableIds) {
      ctx.addIssue({
        code: 'custom',
        path: ['routeTableIds'],
        message: 'is required when createVpcEndpoints is true (the DynamoDB gateway endpoint needs them)',
      });
    }
    for (const key of ['secretsManagerEndpointSecurityGroupId', 'secretsManagerEndpointDns'] as const) {
      if (s[key] && !s.secretsManagerEndpointId) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: 'describes an existing endpoint: set secretsManagerEndpointId too',
        });
      }
    }
    if (s.rotation?.masterSecretArn === s.dbSecretArn) {
      ctx.addIssue({
        code: 'custom',
        path: ['rotation', 'masterSecretArn'],
        message: 'must be another secret than dbSecretArn (the user that changes the sync user)',
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
      const interval = rateSeconds(sync.schedule);
      const explicitNoRun = sync.alarms?.noRunMinutes ?? s.alarms.noRunMinutes;
      const noRunPath =
        sync.alarms?.noRunMinutes !== undefined
          ? ['syncs', i, 'alarms', 'noRunMinutes']
          : ['alarms', 'noRunMinutes'];
      if (interval === undefined && explicitNoRun === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['syncs', i, 'alarms', 'noRunMinutes'],
          message: `is required for sync "${sync.id}"'s cron schedule (its gaps vary): longer than its longest gap plus timeoutSeconds`,
        });
      }
      if (
        interval !== undefined &&
        explicitNoRun !== undefined &&
        explicitNoRun * 60 <= interval + s.timeoutSeconds
      ) {
        ctx.addIssue({
          code: 'custom',
          path: noRunPath,
          message: `must be longer than sync "${sync.id}"'s schedule interval plus timeoutSeconds (${interval + s.timeoutSeconds} s), or the alarm fires between two runs`,
        });
      }
      const hours = sync.reconcileHours ?? s.reconcileHours;
      if (s.ledgerDays * 24 * 3600 <= hours * 3600 + RECONCILE_MARGIN_SECONDS) {
        ctx.addIssue({
          code: 'custom',
          path: ['ledgerDays'],
          message: `must keep the ledger longer than reconcileHours${sync.reconcileHours !== undefined ? ` of sync "${sync.id}"` : ''} (${hours} h) plus the reconcile's ${RECONCILE_MARGIN_SECONDS / 3600} h margin, or reconcile reports delivered calls as missing and repair re-posts them`,
        });
      }
    });
    if (s.deadLetterDays < MIN_DEAD_LETTER_DAYS) {
      ctx.addIssue({
        code: 'custom',
        path: ['deadLetterDays'],
        message: `must be at least ${MIN_DEAD_LETTER_DAYS}: dead letters must outlast an operator's absence before they can be replayed`,
      });
    }
    const perSync = (x: { reservedConcurrency?: number | undefined }) =>
      x.reservedConcurrency ?? s.reservedConcurrency;
    const reserved = s.syncs.reduce((sum, x) => sum + perSync(x), 0);
    if (reserved > s.accountConcurrency - UNRESERVED_MINIMUM) {
      ctx.addIssue({
        code: 'custom',
        path: ['reservedConcurrency'],
        message: `reserves ${reserved} executions over ${s.syncs.length} syncs: more than accountConcurrency (${s.accountConcurrency}) minus the ${UNRESERVED_MINIMUM} AWS keeps unreserved`,
      });
    }
  });

export type StackSettings = z.infer<typeof stackSettingsSchema>;
export type SyncConfig = StackSettings['syncs'][number];
export type RotationSettings = NonNullable<StackSettings['rotation']>;

/** Seconds between two runs of a `rate(...)` schedule; undefined for `cron(...)`, whose gaps vary. */
export function rateSeconds(schedule: string): number | undefined {
  const m = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(schedule.trim());
  if (!m) return undefined;
  const unit = m[2]?.startsWith('minute') ? 60 : m[2]?.startsWith('hour') ? 3600 : 86_400;
  return Number(m[1]) * unit;
}

/**
 * One sync's thresholds: its own, then the stack's, then the defaults. A slower schedule stretches the
 * default no-run window to two of its intervals.
 */
export function alarmThresholdsFor(
  settings: Pick<StackSettings, 'alarms' | 'timeoutSeconds'>,
  sync: SyncConfig,
): AlarmThresholds {
  // A cron schedule has no default: validation requires its noRunMinutes.
  const interval = rateSeconds(sync.schedule) ?? 60;
  const noRunMinutes = Math.max(
    ALARM_DEFAULTS.noRunMinutes,
    Math.ceil((2 * interval) / 60),
    Math.floor((interval + settings.timeoutSeconds) / 60) + 1,
  );
  return { ...ALARM_DEFAULTS, noRunMinutes, ...settings.alarms, ...sync.alarms };
}

/**
 * The longest time between two run ends while ticks keep coming: the schedule's interval plus the
 * timeout; for a cron schedule, its no-run window (which validation holds above its longest gap).
 */
export function runCadenceSeconds(
  settings: Pick<StackSettings, 'alarms' | 'timeoutSeconds'>,
  sync: SyncConfig,
): number {
  const interval = rateSeconds(sync.schedule);
  if (interval !== undefined) return interval + settings.timeoutSeconds;
  return alarmThresholdsFor(settings, sync).noRunMinutes * 60;
}

/** Syncs per stack when `syncsPerStack` is not set. */
export function syncsPerStack(settings: Pick<StackSettings, 'syncsPerStack' | 'functionPerSync'>): number {
  // One shared function carries every sync of its stack in SYNCS, within Lambda's 4 KB of environment.
  return settings.syncsPerStack ?? (settings.functionPerSync ? MAX_SYNCS_PER_STACK : 10);
}

/**
 * The settings only the target account and region can refute: every secret and key ARN in the stack's
 * region (Lambda reads secrets and CloudWatch Logs uses keys of its own region only).
 */
export function checkRegion(settings: StackSettings, region: string): void {
  const arns: [string, string | undefined][] = [
    ['dbSecretArn', settings.dbSecretArn],
    ['rotation.masterSecretArn', settings.rotation?.masterSecretArn],
    ['logKmsKeyArn', settings.logKmsKeyArn],
    ['secretsKmsKeyArn', settings.secretsKmsKeyArn],
    ...settings.syncs.map((x, i): [string, string] => [`syncs[${i}].apiSecretArn`, x.apiSecretArn]),
  ];
  for (const [key, arn] of arns) {
    const arnRegion = arn?.split(':')[3];
    if (arn && arnRegion !== region) {
      throw new StackSettingsError(
        `cdk.json context "${key}": is in ${arnRegion}, not in the stack's region ${region}`,
      );
    }
  }
}

export class StackSettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StackSettingsError';
  }
}

const EXPECTED: Record<string, string> = {
  number: 'a number',
  boolean: 'true or false',
  string: 'a string',
  array: 'a list (JSON array)',
  object: 'an object (JSON)',
};

/**
 * Validates the context values; the error names the first bad setting as `cdk.json context "syncs[1].schedule"`,
 * and for a wrong type also the type expected and the value received.
 */
export function parseStackSettings(context: Record<string, unknown>): StackSettings {
  const input = coerceContext(context);
  const result = stackSettingsSchema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = (issue?.path ?? [])
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
    .join('');
  let message = issue?.message ?? 'is invalid';
  if (issue?.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    const known = Object.keys(NESTED_SHAPES[nestedKind(issue.path)] ?? {});
    throw new StackSettingsError(
      `cdk.json context "${path ? `${path}.` : ''}${key}": ${unknownSetting(key, known)}`,
    );
  }
  if (issue?.code === 'invalid_type') {
    const received = valueAt(input, issue.path);
    message =
      received === undefined
        ? 'is required'
        : `expected ${EXPECTED[issue.expected] ?? issue.expected}, got ${show(received)}`;
  }
  throw new StackSettingsError(`cdk.json context "${path || 'context'}": ${message}`);
}

/**
 * `cdk -c memoryMb=1024` hands every value over as a string. Each top-level value is converted to the
 * type its setting expects (numbers, true/false, JSON lists and objects, or comma lists of strings), so
 * the command line and cdk.json mean the same; a value that does not convert is left as it is for
 * validation to name.
 */
export function coerceContext(context: Record<string, unknown>): Record<string, unknown> {
  const shape = stackSettingsSchema.shape as Record<string, z.ZodType>;
  const out: Record<string, unknown> = { ...context };
  for (const [key, value] of Object.entries(context)) {
    const schema = shape[key];
    if (typeof value === 'string' && schema) out[key] = coerce(value, schema);
  }
  return out;
}

function coerce(text: string, schema: z.ZodType): unknown {
  const inner = unwrap(schema);
  const t = text.trim();
  if (inner instanceof z.ZodNumber) return /^-?\d+(\.\d+)?$/.test(t) ? Number(t) : text;
  if (inner instanceof z.ZodBoolean) return t === 'true' ? true : t === 'false' ? false : text;
  if (inner instanceof z.ZodObject) return t.startsWith('{') ? (parseJson(t) ?? text) : text;
  if (inner instanceof z.ZodArray) {
    if (t.startsWith('[')) return parseJson(t) ?? text;
    return unwrap(inner.element as z.ZodType) instanceof z.ZodString
      ? t
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean)
      : text;
  }
  return text;
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  while (s instanceof z.ZodDefault || s instanceof z.ZodOptional) s = s.unwrap() as z.ZodType;
  return s;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

const NESTED_SHAPES: Record<string, Record<string, unknown>> = {
  syncs: syncSchema.shape,
  alarms: alarmThresholds.shape,
  rotation: rotationSchema.shape,
};

/** Which nested object an issue path points into: `syncs[0].alarms` is an alarms object. */
function nestedKind(path: readonly PropertyKey[]): string {
  const named = path.filter((p): p is string => typeof p === 'string');
  return named[named.length - 1] ?? '';
}

/** Context keys of the app itself that are not settings of the stack. */
const APP_KEYS = new Set(['stackName']);

/**
 * CDK's own context: feature flags (`@aws-cdk/...`), the CLI's `aws:cdk:...` switches, cached lookups
 * (`availability-zones:account=...`) and a few plain keys the CLI and toolkit write.
 */
function isCdkKey(key: string): boolean {
  return key.startsWith('@') || key.includes(':') || CDK_PLAIN_KEYS.has(key);
}
const CDK_PLAIN_KEYS = new Set([
  'acknowledged-issue-numbers',
  'cli-telemetry',
  'cdk-version',
  'assetsBucketName',
]);

/**
 * Refuses a context key this app does not know (a typo such as `memoryMB` would otherwise be ignored and
 * the default kept), naming the nearest known key.
 */
export function checkContextKeys(keys: Iterable<string>): void {
  const known = [...Object.keys(stackSettingsSchema.shape), ...APP_KEYS];
  for (const key of keys) {
    if (known.includes(key) || isCdkKey(key)) continue;
    throw new StackSettingsError(`cdk.json context "${key}": ${unknownSetting(key, known)}`);
  }
}

function unknownSetting(key: string, known: readonly string[]): string {
  const scored = known
    .map((k) => ({ k, d: distance(key.toLowerCase(), k.toLowerCase()) }))
    .sort((a, b) => a.d - b.d);
  const best = scored[0];
  const close = best && best.d <= Math.max(2, Math.floor(key.length / 3));
  return close
    ? `is not a setting of this app; did you mean "${best.k}"?`
    : "is not a setting of this app (see the README's settings table)";
}

/** Levenshtein distance: how many single-character edits turn `a` into `b`. */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(
        (row[j] ?? 0) + 1,
        (next[j - 1] ?? 0) + 1,
        (row[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    row = next;
  }
  return row[b.length] ?? 0;
}

/** Reads every setting the schema knows from a construct node's context. */
export function readContext(tryGetContext: (key: string) => unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(stackSettingsSchema.shape)) {
    const value = tryGetContext(key);
    if (value !== undefined) out[key] = value;
  }
  return out;
}
