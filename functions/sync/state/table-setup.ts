import {
  CreateTableCommand,
  DescribeTableCommand,
  type DescribeTableCommandOutput,
  DescribeTimeToLiveCommand,
  type DynamoDBClient,
  ResourceNotFoundException,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { requestTimeout } from './dynamo';

/**
 * `did-sync init-table`: the checkpoint table for cron-only use, as the stack makes it: string keys
 * `pk` (HASH) and `sk` (RANGE), on-demand billing, TTL on `expiresAt` (ledger, repair and dead-letter
 * items expire; without TTL they pile up). Idempotent: an existing table with these keys is kept and
 * only its TTL switched on.
 */

export const TABLE_KEYS = { hash: 'pk', range: 'sk' } as const;
export const TTL_ATTRIBUTE = 'expiresAt';

/** The table as the sync needs it, the one definition init-table and a local emulator's setup share. */
const TABLE_DEFINITION = (table: string) => ({
  TableName: table,
  BillingMode: 'PAY_PER_REQUEST' as const,
  AttributeDefinitions: [
    { AttributeName: TABLE_KEYS.hash, AttributeType: 'S' as const },
    { AttributeName: TABLE_KEYS.range, AttributeType: 'S' as const },
  ],
  KeySchema: [
    { AttributeName: TABLE_KEYS.hash, KeyType: 'HASH' as const },
    { AttributeName: TABLE_KEYS.range, KeyType: 'RANGE' as const },
  ],
});

export interface TableSetupReport {
  readonly table: string;
  readonly created: boolean;
  /** 'enabled', or why not (an emulator without TTL says so). */
  readonly ttl: string;
  readonly ok: boolean;
  readonly problem: string | null;
}

/** The same table, said as the AWS CLI would create it (the README prints these lines). */
export function createTableCommands(table: string, region = '<region>'): string[] {
  return [
    `aws dynamodb create-table --region ${region} --table-name ${table} --billing-mode PAY_PER_REQUEST --attribute-definitions AttributeName=${TABLE_KEYS.hash},AttributeType=S AttributeName=${TABLE_KEYS.range},AttributeType=S --key-schema AttributeName=${TABLE_KEYS.hash},KeyType=HASH AttributeName=${TABLE_KEYS.range},KeyType=RANGE`,
    `aws dynamodb wait table-exists --region ${region} --table-name ${table}`,
    `aws dynamodb update-time-to-live --region ${region} --table-name ${table} --time-to-live-specification Enabled=true,AttributeName=${TTL_ATTRIBUTE}`,
  ];
}

function isNotFound(error: unknown): boolean {
  return (error as Error)?.name === 'ResourceNotFoundException';
}

export async function setUpTable(
  client: DynamoDBClient,
  table: string,
  options: { emulator: boolean },
): Promise<TableSetupReport> {
  let created = false;
  let described: DescribeTableCommandOutput;
  try {
    described = await client.send(new DescribeTableCommand({ TableName: table }));
  } catch (error) {
    if (!isNotFound(error)) throw error;
    await client.send(
      new CreateTableCommand({
        ...TABLE_DEFINITION(table),
      }),
    );
    created = true;
    for (let i = 0; ; i++) {
      described = await client.send(new DescribeTableCommand({ TableName: table }));
      if (described.Table?.TableStatus === 'ACTIVE') break;
      if (i >= 120) throw new Error(`table ${table} was created but is not ACTIVE after 60 s`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  const keys = described.Table?.KeySchema ?? [];
  const hash = keys.find((k) => k.KeyType === 'HASH')?.AttributeName;
  const range = keys.find((k) => k.KeyType === 'RANGE')?.AttributeName;
  if (hash !== TABLE_KEYS.hash || range !== TABLE_KEYS.range) {
    return {
      table,
      created,
      ttl: 'not checked',
      ok: false,
      problem: `table ${table} exists with keys ${hash ?? '-'}/${range ?? '-'}, not ${TABLE_KEYS.hash}/${TABLE_KEYS.range}: use another CHECKPOINT_TABLE`,
    };
  }
  let ttl: string;
  try {
    const current = await client.send(new DescribeTimeToLiveCommand({ TableName: table }));
    const spec = current.TimeToLiveDescription;
    if (spec?.AttributeName === TTL_ATTRIBUTE && /ENABL/.test(spec.TimeToLiveStatus ?? '')) {
      ttl = 'enabled';
    } else {
      await client.send(
        new UpdateTimeToLiveCommand({
          TableName: table,
          TimeToLiveSpecification: { Enabled: true, AttributeName: TTL_ATTRIBUTE },
        }),
      );
      ttl = 'enabled';
    }
  } catch (error) {
    const name = (error as Error).name;
    if (options.emulator && /UnknownOperation|NotImplemented/i.test(`${name} ${(error as Error).message}`)) {
      ttl = 'not supported by this DynamoDB emulator';
    } else {
      return {
        table,
        created,
        ttl: `failed: ${(error as Error).message}`,
        ok: false,
        problem: `TTL on ${TTL_ATTRIBUTE} could not be enabled: ${(error as Error).message}`,
      };
    }
  }
  return { table, created, ttl, ok: true, problem: null };
}

/** Creates the table when missing (keys only, no TTL): for a local emulator the tests and demo start. */
export async function ensureTableExists(client: DynamoDBClient, table: string): Promise<void> {
  const signal = () => ({ abortSignal: requestTimeout() });
  try {
    await client.send(new DescribeTableCommand({ TableName: table }), signal());
    return;
  } catch (error) {
    if (!(error instanceof ResourceNotFoundException) && !isNotFound(error)) throw error;
  }
  await client.send(
    new CreateTableCommand({
      ...TABLE_DEFINITION(table),
    }),
    signal(),
  );
  for (let i = 0; i < 100; i++) {
    const out = await client.send(new DescribeTableCommand({ TableName: table }), signal());
    if (out.Table?.TableStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`DynamoDB table "${table}" was created but did not become ACTIVE within 10 s`);
}
