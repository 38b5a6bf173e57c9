import {
  type AttributeValue,
  type DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { requestTimeout } from './dynamo';
import { itemKey, SORT_KEYS } from './keys';

/**
 * Every run's record, kept apart from the checkpoint: a run that fails before it takes the lease (the
 * database refused, the secret is unreadable) writes nothing to the checkpoint item, yet `status` must
 * show it. Its own item (`runs`) in the checkpoint table, written without a lease condition and never
 * touching the cursor, lease or fence: a record cannot disturb a run, and a run cannot lose it.
 * The adapters (the Lambda runtime, the CLI) write it after each run, so the engine stays unaware.
 */

export interface RunRecord {
  readonly outcome: string;
  readonly reason?: string;
  /** What went wrong, in the words of the part that failed (never a secret). */
  readonly detail?: string;
  readonly at: string;
  readonly delivered: number;
  readonly deadLettered: number;
  readonly lagSeconds: number | null;
  /** Who ran it: `lambda` or `cli`. */
  readonly by: string;
}

export interface RunHistoryState {
  readonly lastAttempt: RunRecord | null;
  readonly lastSuccess: RunRecord | null;
  readonly lastFailure: RunRecord | null;
}

/** A detail is a message, not a dump: kept short so the item stays small. */
const DETAIL_MAX = 500;

/** What a record needs of a run's summary (run/ owns the summary; state/ does not import run/). */
export interface SummaryOfRun {
  readonly outcome: string;
  readonly reason?: string | undefined;
  readonly detail?: string | undefined;
  readonly delivered: number;
  readonly deadLettered: number;
  readonly lagSeconds: number | null;
  readonly dryRun: boolean;
}

export function recordOf(summary: SummaryOfRun, by: string, detail?: string, at = new Date()): RunRecord {
  const text = detail ?? summary.detail;
  return {
    outcome: summary.outcome,
    ...(summary.reason ? { reason: summary.reason } : {}),
    ...(text ? { detail: text.slice(0, DETAIL_MAX) } : {}),
    at: at.toISOString(),
    delivered: summary.delivered,
    deadLettered: summary.deadLettered,
    lagSeconds: summary.lagSeconds,
    by,
  };
}

/** A run that never reached the engine (its secret could not be read): failed, nothing delivered. */
export function failureBeforeRun(reason: string, detail: string, by: string, at = new Date()): RunRecord {
  return {
    outcome: 'failed',
    reason,
    detail: detail.slice(0, DETAIL_MAX),
    at: at.toISOString(),
    delivered: 0,
    deadLettered: 0,
    lagSeconds: null,
    by,
  };
}

/** Runs worth recording: a dry run changed nothing, and a skipped one left the run holding the lease to report. */
export function worthRecording(summary: SummaryOfRun): boolean {
  return !summary.dryRun && summary.outcome !== 'skipped';
}

export class RunHistory {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  private key(syncId: string): Record<string, AttributeValue> {
    return itemKey(syncId, SORT_KEYS.runs);
  }

  async record(syncId: string, record: RunRecord): Promise<void> {
    const success = record.outcome === 'completed' || record.outcome === 'partial';
    const json: AttributeValue = { S: JSON.stringify(record) };
    await this.client.send(
      new UpdateItemCommand({
        TableName: this.tableName,
        Key: this.key(syncId),
        UpdateExpression: `SET lastAttempt = :r, ${success ? 'lastSuccess' : 'lastFailure'} = :r`,
        ExpressionAttributeValues: { ':r': json },
      }),
      { abortSignal: requestTimeout(3_000) },
    );
  }

  async read(syncId: string): Promise<RunHistoryState> {
    const out = await this.client.send(
      new GetItemCommand({ TableName: this.tableName, Key: this.key(syncId), ConsistentRead: true }),
      { abortSignal: requestTimeout() },
    );
    const parse = (attr: AttributeValue | undefined): RunRecord | null =>
      attr?.S ? (JSON.parse(attr.S) as RunRecord) : null;
    return {
      lastAttempt: parse(out.Item?.lastAttempt),
      lastSuccess: parse(out.Item?.lastSuccess),
      lastFailure: parse(out.Item?.lastFailure),
    };
  }
}
