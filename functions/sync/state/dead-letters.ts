import {
  type AttributeValue,
  DeleteItemCommand,
  type DynamoDBClient,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { n, num, prefixPages, requestTimeout, s, str } from './dynamo';
import { deadLetterSk, itemKey, SORT_KEYS } from './keys';

/** Calls the API refused for good (or whose row could not be read), one item each, until replayed or expired. */

export interface DeadLetter {
  readonly syncId: string;
  readonly uniqueid: string;
  readonly reason: string;
  readonly httpStatus: number | null;
  readonly responseExcerpt: string | null;
  /** The JSON body that was (or would have been) posted; null when the row could not be read. */
  readonly payload: string | null;
  readonly endEpoch: number | null;
  readonly campaignId: string | null;
  readonly createdAt: string;
  readonly attempts: number;
  /** Epoch seconds after which DynamoDB's TTL removes it (dead letters hold phone numbers). */
  readonly expiresAt: number | null;
}

export class DeadLetterItems {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async put(letter: DeadLetter, timeoutMs?: number): Promise<void> {
    const item: Record<string, AttributeValue> = {
      ...itemKey(letter.syncId, deadLetterSk(letter.uniqueid)),
      syncId: s(letter.syncId),
      uniqueid: s(letter.uniqueid),
      reason: s(letter.reason),
      createdAt: s(letter.createdAt),
      attempts: n(letter.attempts),
    };
    if (letter.httpStatus !== null) item.httpStatus = n(letter.httpStatus);
    if (letter.responseExcerpt !== null) item.responseExcerpt = s(letter.responseExcerpt);
    if (letter.payload !== null) item.payload = s(letter.payload);
    if (letter.endEpoch !== null) item.endEpoch = n(letter.endEpoch);
    if (letter.campaignId !== null) item.campaignId = s(letter.campaignId);
    if (letter.expiresAt !== null) item.expiresAt = n(letter.expiresAt);
    await this.client.send(new PutItemCommand({ TableName: this.tableName, Item: item }), {
      abortSignal: requestTimeout(timeoutMs),
    });
  }

  async delete(syncId: string, uniqueid: string): Promise<void> {
    await this.client.send(
      new DeleteItemCommand({ TableName: this.tableName, Key: itemKey(syncId, deadLetterSk(uniqueid)) }),
      { abortSignal: requestTimeout() },
    );
  }

  async *list(syncId: string): AsyncGenerator<DeadLetter> {
    for await (const page of prefixPages(this.client, this.tableName, syncId, SORT_KEYS.deadLetterPrefix)) {
      for (const item of page.Items ?? []) {
        yield {
          syncId,
          uniqueid: str(item.uniqueid) ?? '',
          reason: str(item.reason) ?? '',
          httpStatus: num(item.httpStatus) ?? null,
          responseExcerpt: str(item.responseExcerpt) ?? null,
          payload: str(item.payload) ?? null,
          endEpoch: num(item.endEpoch) ?? null,
          campaignId: str(item.campaignId) ?? null,
          createdAt: str(item.createdAt) ?? '',
          attempts: num(item.attempts) ?? 1,
          expiresAt: num(item.expiresAt) ?? null,
        };
      }
    }
  }

  async count(syncId: string): Promise<number> {
    let count = 0;
    for await (const page of prefixPages(
      this.client,
      this.tableName,
      syncId,
      SORT_KEYS.deadLetterPrefix,
      'COUNT',
    )) {
      count += page.Count ?? 0;
    }
    return count;
  }
}
