import { randomBytes } from 'node:crypto';
import { DeleteItemCommand, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { describeError } from '../log';
import { checkSk, itemKey } from '../state/keys';
import { bounded, type CheckDeps, type CheckResult, fail, pass } from './check-result';

/** The checkpoint table's check: a probe item written, read and deleted (the check's only write). */

/** The probe item's TTL: gone even if the delete never happened. */
const PROBE_TTL_SECONDS = 3600;

export async function checkpointTableCheck(
  deps: CheckDeps,
  timeoutMs: number,
  now: () => number,
): Promise<CheckResult> {
  const { dynamo, table } = deps;
  const key = itemKey(
    deps.settings.syncId,
    checkSk(new Date(now()).toISOString(), randomBytes(4).toString('hex')),
  );
  let step = 'write';
  try {
    await bounded(timeoutMs, async (abortSignal) => {
      await dynamo.send(
        new PutItemCommand({
          TableName: table,
          Item: {
            ...key,
            // DynamoDB's TTL removes the probe even if the delete below never runs.
            expiresAt: { N: String(Math.floor(now() / 1000) + PROBE_TTL_SECONDS) },
            purpose: { S: 'did-sync check probe' },
          },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
        { abortSignal },
      );
      step = 'read';
      const read = await dynamo.send(
        new GetItemCommand({ TableName: table, Key: key, ConsistentRead: true }),
        { abortSignal },
      );
      if (!read.Item) throw new Error('the probe item just written was not found');
      step = 'delete';
      await dynamo.send(new DeleteItemCommand({ TableName: table, Key: key }), { abortSignal });
    });
  } catch (error) {
    const { errorName, error: message } = describeError(error);
    if (errorName === 'ResourceNotFoundException')
      return fail(
        `table ${table} not found: ${message} (create it with did-sync init-table, or deploy the stack; README: Cron-only use)`,
      );
    if (errorName === 'CheckTimeoutError') return fail(`table ${table}: ${message} (${step})`);
    return fail(`table ${table}: ${step} failed: ${errorName}: ${message}`);
  }
  return pass(`table ${table} readable and writable (probe item written, read and deleted)`);
}
