import { type DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';

/**
 * A spent rate-limit window kept in the checkpoint table (item `ratelimit#<API origin>`), so the next run,
 * a cold Lambda container and the other syncs behind the same IP know the reset before sending. Written
 * rarely: only when a window is spent (or a 429 met) with a reset far enough ahead to matter to another
 * run; read once per run.
 */
export interface SpentWindow {
  readonly limit: number;
  /** Epoch ms the window resets at. */
  readonly untilMs: number;
}

export interface RateLimitState {
  read(origin: string): Promise<SpentWindow | undefined>;
  write(origin: string, window: SpentWindow): Promise<void>;
}

/** Bounds a look-up the run could do without: pacing by answers still works. */
const TIMEOUT_MS = 2_000;

export class DynamoRateLimitState implements RateLimitState {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  private key(origin: string) {
    return { pk: { S: `ratelimit#${origin}` }, sk: { S: 'window' } };
  }

  async read(origin: string): Promise<SpentWindow | undefined> {
    const { Item } = await this.client.send(
      new GetItemCommand({ TableName: this.tableName, Key: this.key(origin) }),
      { abortSignal: AbortSignal.timeout(TIMEOUT_MS) },
    );
    const limit = Number(Item?.limit?.N);
    const untilMs = Number(Item?.untilMs?.N);
    return Number.isFinite(limit) && Number.isFinite(untilMs) ? { limit, untilMs } : undefined;
  }

  async write(origin: string, window: SpentWindow): Promise<void> {
    await this.client.send(
      new PutItemCommand({
        TableName: this.tableName,
        Item: {
          ...this.key(origin),
          limit: { N: String(window.limit) },
          untilMs: { N: String(window.untilMs) },
          until: { S: new Date(window.untilMs).toISOString() },
          // A later reset already kept (another sync's) is not moved back.
        },
        ConditionExpression: 'attribute_not_exists(untilMs) OR untilMs < :until',
        ExpressionAttributeValues: { ':until': { N: String(window.untilMs) } },
      }),
      { abortSignal: AbortSignal.timeout(TIMEOUT_MS) },
    );
  }
}
