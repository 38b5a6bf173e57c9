import {
  type AttributeValue,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  QueryCommand,
} from '@aws-sdk/client-dynamodb';
import { partitionKey } from './keys';

/** Small pieces every DynamoDB module of the state layer uses: attribute values and request bounds. */

/** How long one DynamoDB request may take unless the caller's deadline is nearer. */
export const DYNAMO_TIMEOUT_MS = 5_000;

/** The abort signal of one request: `timeoutMs` (the caller's time left) or DYNAMO_TIMEOUT_MS, whichever is less. */
export function requestTimeout(timeoutMs: number = DYNAMO_TIMEOUT_MS): AbortSignal {
  return AbortSignal.timeout(Math.max(1, Math.min(timeoutMs, DYNAMO_TIMEOUT_MS)));
}

export const n = (value: number): AttributeValue => ({ N: String(value) });
export const s = (value: string): AttributeValue => ({ S: value });

export function num(attr: AttributeValue | undefined): number | undefined {
  return attr?.N === undefined ? undefined : Number(attr.N);
}

export function str(attr: AttributeValue | undefined): string | undefined {
  return attr?.S;
}

export function isConditionFailure(error: unknown): boolean {
  return (
    error instanceof ConditionalCheckFailedException ||
    (error as { name?: string })?.name === 'ConditionalCheckFailedException'
  );
}

/** The sync's items under a sort-key prefix, a query page at a time (a page holds at most 1 MB). */
export async function* prefixPages(
  client: DynamoDBClient,
  tableName: string,
  syncId: string,
  prefix: string,
  select?: 'COUNT',
  timeoutMs?: number,
) {
  let startKey: Record<string, AttributeValue> | undefined;
  do {
    const out = await client.send(
      new QueryCommand({
        TableName: tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': s(partitionKey(syncId)), ':prefix': s(prefix) },
        ExclusiveStartKey: startKey,
        ConsistentRead: true,
        ...(select ? { Select: select } : {}),
      }),
      { abortSignal: requestTimeout(timeoutMs) },
    );
    yield out;
    startKey = out.LastEvaluatedKey;
  } while (startKey);
}
