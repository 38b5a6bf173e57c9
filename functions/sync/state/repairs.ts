import { DeleteItemCommand, type DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { n, num, prefixPages, requestTimeout, s, str } from './dynamo';
import { itemKey, repairSk, SORT_KEYS } from './keys';

/** Calls reconcile found missing, one item each: the next run delivers them and deletes the item. */

export interface QueuedRepair {
  readonly uniqueid: string;
  readonly endEpoch: number;
}

export class RepairItems {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly now: () => number,
  ) {}

  /** Idempotent: queuing a call twice leaves one item. */
  async put(syncId: string, call: QueuedRepair, expiresAt: number): Promise<void> {
    await this.client.send(
      new PutItemCommand({
        TableName: this.tableName,
        Item: {
          ...itemKey(syncId, repairSk(call.uniqueid)),
          uniqueid: s(call.uniqueid),
          endEpoch: n(call.endEpoch),
          queuedAt: s(new Date(this.now()).toISOString()),
          expiresAt: n(expiresAt),
        },
      }),
      { abortSignal: requestTimeout() },
    );
  }

  async delete(syncId: string, uniqueid: string, timeoutMs?: number): Promise<void> {
    await this.client.send(
      new DeleteItemCommand({ TableName: this.tableName, Key: itemKey(syncId, repairSk(uniqueid)) }),
      { abortSignal: requestTimeout(timeoutMs) },
    );
  }

  async list(syncId: string, timeoutMs?: number): Promise<{ uniqueid: string; endEpoch: number }[]> {
    const out: { uniqueid: string; endEpoch: number }[] = [];
    const pages = prefixPages(
      this.client,
      this.tableName,
      syncId,
      SORT_KEYS.repairPrefix,
      undefined,
      timeoutMs,
    );
    for await (const page of pages) {
      for (const item of page.Items ?? []) {
        out.push({ uniqueid: str(item.uniqueid) ?? '', endEpoch: num(item.endEpoch) ?? 0 });
      }
    }
    return out;
  }
}
