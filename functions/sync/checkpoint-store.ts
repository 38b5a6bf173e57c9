import {
  type AttributeValue,
  ConditionalCheckFailedException,
  CreateTableCommand,
  DeleteItemCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  ResourceNotFoundException,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { Cursor } from './cursor';

/**
 * The sync's state in DynamoDB: one checkpoint item per sync (cursor, pending calls, lease, fencing
 * token) and one item per dead letter. Every change is a single-item conditional write, so two runs
 * can never both move a checkpoint: the one whose condition fails has lost its lease and stops.
 */

/** A call seen with a transient status (INCALL): re-read by uniqueid until its disposition arrives. */
export interface PendingCall {
  readonly uniqueid: string;
  readonly endEpoch: number;
  /** Database epoch when it was first parked. */
  readonly firstSeen: number;
}

export interface LastRun {
  readonly outcome: string;
  readonly at: string;
  readonly delivered: number;
  readonly deadLettered: number;
  readonly lagSeconds: number | null;
  readonly reason?: string;
}

export interface CheckpointState {
  readonly syncId: string;
  readonly cursor: Cursor;
  readonly pending: readonly PendingCall[];
  readonly fence: number;
  readonly lease: { readonly owner: string; readonly expiresAt: number } | null;
  readonly updatedAt: string | null;
  readonly lastRun: LastRun | null;
}

/** Proof of holding a sync's lease; every write carries it as its condition. */
export interface Lease {
  readonly syncId: string;
  readonly owner: string;
  readonly fence: number;
}

export type AcquireResult =
  | { readonly acquired: true; readonly lease: Lease; readonly state: CheckpointState }
  | { readonly acquired: false; readonly holder: { owner: string; expiresAt: number } | null };

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
}

/** The run no longer holds the lease (it expired and another run took it, or a forced reset). */
export class LeaseLostError extends Error {
  constructor(syncId: string, operation: string) {
    super(`lease on sync "${syncId}" was lost (${operation} refused): another run or a reset took over`);
    this.name = 'LeaseLostError';
  }
}

export class LeaseHeldError extends Error {
  constructor(
    syncId: string,
    readonly holder: { owner: string; expiresAt: number },
  ) {
    super(
      `sync "${syncId}" is running (lease held by ${holder.owner} until ${new Date(holder.expiresAt).toISOString()}); use --force to reset anyway`,
    );
    this.name = 'LeaseHeldError';
  }
}

const CHECKPOINT_SK = 'checkpoint';
/** Nobody holds the lease, or its holder let it expire (crashed, or timed out without releasing). */
const LEASE_FREE = 'attribute_not_exists(leaseOwner) OR leaseExpiresAt < :now';
const DEAD_LETTER_PREFIX = 'deadletter#';

const pk = (syncId: string) => `sync#${syncId}`;
const n = (value: number): AttributeValue => ({ N: String(value) });
const s = (value: string): AttributeValue => ({ S: value });

function pendingToAttr(pending: readonly PendingCall[]): AttributeValue {
  return { L: pending.map((p) => ({ M: { u: s(p.uniqueid), e: n(p.endEpoch), f: n(p.firstSeen) } })) };
}

function num(attr: AttributeValue | undefined): number | undefined {
  return attr?.N === undefined ? undefined : Number(attr.N);
}

function str(attr: AttributeValue | undefined): string | undefined {
  return attr?.S;
}

function toState(syncId: string, item: Record<string, AttributeValue>): CheckpointState {
  const owner = str(item.leaseOwner);
  const expiresAt = num(item.leaseExpiresAt);
  const lastRun = item.lastRun?.S ? (JSON.parse(item.lastRun.S) as LastRun) : null;
  return {
    syncId,
    cursor: { endEpoch: num(item.cursorEpoch) ?? 0, uniqueid: str(item.cursorUid) ?? '' },
    pending: (item.pending?.L ?? []).map((entry) => ({
      uniqueid: str(entry.M?.u) ?? '',
      endEpoch: num(entry.M?.e) ?? 0,
      firstSeen: num(entry.M?.f) ?? 0,
    })),
    fence: num(item.fence) ?? 0,
    lease: owner !== undefined && expiresAt !== undefined ? { owner, expiresAt } : null,
    updatedAt: str(item.updatedAt) ?? null,
    lastRun,
  };
}

function isConditionFailure(error: unknown): boolean {
  return (
    error instanceof ConditionalCheckFailedException ||
    (error as { name?: string })?.name === 'ConditionalCheckFailedException'
  );
}

export class CheckpointStore {
  constructor(
    private readonly client: DynamoDBClient,
    readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {}

  private key(syncId: string, sk: string): Record<string, AttributeValue> {
    return { pk: s(pk(syncId)), sk: s(sk) };
  }

  async read(syncId: string): Promise<CheckpointState | undefined> {
    const out = await this.client.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: this.key(syncId, CHECKPOINT_SK),
        ConsistentRead: true,
      }),
    );
    return out.Item ? toState(syncId, out.Item) : undefined;
  }

  /**
   * Takes the lease when it is free or expired, raising the fencing token; a sync seen for the first
   * time starts at `initialCursor`.
   */
  async acquire(
    syncId: string,
    owner: string,
    leaseMs: number,
    initialCursor: Cursor,
  ): Promise<AcquireResult> {
    const nowMs = this.now();
    try {
      const out = await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: this.key(syncId, CHECKPOINT_SK),
          UpdateExpression:
            'SET fence = if_not_exists(fence, :zero) + :one, leaseOwner = :owner, leaseExpiresAt = :exp, ' +
            'cursorEpoch = if_not_exists(cursorEpoch, :e), cursorUid = if_not_exists(cursorUid, :u), ' +
            'pending = if_not_exists(pending, :none), syncId = :sid',
          ConditionExpression: LEASE_FREE,
          ExpressionAttributeValues: {
            ':zero': n(0),
            ':one': n(1),
            ':owner': s(owner),
            ':exp': n(nowMs + leaseMs),
            ':now': n(nowMs),
            ':e': n(initialCursor.endEpoch),
            ':u': s(initialCursor.uniqueid),
            ':none': { L: [] },
            ':sid': s(syncId),
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      const state = toState(syncId, out.Attributes ?? {});
      return { acquired: true, lease: { syncId, owner, fence: state.fence }, state };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const current = await this.read(syncId);
      return { acquired: false, holder: current?.lease ?? null };
    }
  }

  /**
   * A write that only the lease holder can make: conditioned on owner and fencing token (and whatever
   * `condition` adds), so a run that lost its lease fails here instead of overwriting its successor.
   */
  private async fencedUpdate(
    lease: Lease,
    operation: string,
    update: string,
    values: Record<string, AttributeValue>,
    condition = '',
  ): Promise<void> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: this.key(lease.syncId, CHECKPOINT_SK),
          UpdateExpression: update,
          ConditionExpression: `leaseOwner = :owner AND fence = :fence${condition}`,
          ExpressionAttributeValues: { ...values, ':owner': s(lease.owner), ':fence': n(lease.fence) },
        }),
      );
    } catch (error) {
      if (isConditionFailure(error)) throw new LeaseLostError(lease.syncId, operation);
      throw error;
    }
  }

  /**
   * Moves the cursor from `previous` to `next` and stores the pending list, renewing the lease. The
   * condition on the previous cursor as well makes a stale write fail instead of rewinding or
   * double-advancing the checkpoint.
   */
  advance(
    lease: Lease,
    previous: Cursor,
    next: Cursor,
    pending: readonly PendingCall[],
    leaseMs: number,
  ): Promise<void> {
    return this.fencedUpdate(
      lease,
      'checkpoint',
      'SET cursorEpoch = :e, cursorUid = :u, pending = :p, leaseExpiresAt = :exp, updatedAt = :t',
      {
        ':e': n(next.endEpoch),
        ':u': s(next.uniqueid),
        ':p': pendingToAttr(pending),
        ':exp': n(this.now() + leaseMs),
        ':t': s(new Date(this.now()).toISOString()),
        ':pe': n(previous.endEpoch),
        ':pu': s(previous.uniqueid),
      },
      ' AND cursorEpoch = :pe AND cursorUid = :pu',
    );
  }

  renew(lease: Lease, leaseMs: number): Promise<void> {
    return this.fencedUpdate(lease, 'lease renewal', 'SET leaseExpiresAt = :exp', {
      ':exp': n(this.now() + leaseMs),
    });
  }

  /** Frees the lease so the next tick need not wait for it to expire; records how the run ended. */
  async release(lease: Lease, lastRun: LastRun): Promise<boolean> {
    try {
      await this.fencedUpdate(lease, 'release', 'REMOVE leaseOwner, leaseExpiresAt SET lastRun = :r', {
        ':r': s(JSON.stringify(lastRun)),
      });
      return true;
    } catch (error) {
      if (error instanceof LeaseLostError) return false;
      throw error;
    }
  }

  /**
   * Moves the cursor by hand. Refused while a run holds the lease unless forced; either way the fencing
   * token rises, so a run that still believes it holds the lease fails its next write and stops.
   */
  async reset(syncId: string, cursor: Cursor, force: boolean): Promise<CheckpointState> {
    const nowMs = this.now();
    try {
      const out = await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: this.key(syncId, CHECKPOINT_SK),
          UpdateExpression:
            'SET cursorEpoch = :e, cursorUid = :u, fence = if_not_exists(fence, :zero) + :one, ' +
            'pending = if_not_exists(pending, :none), syncId = :sid, updatedAt = :t REMOVE leaseOwner, leaseExpiresAt',
          ...(force ? {} : { ConditionExpression: LEASE_FREE }),
          ExpressionAttributeValues: {
            ':e': n(cursor.endEpoch),
            ':u': s(cursor.uniqueid),
            ':zero': n(0),
            ':one': n(1),
            ':none': { L: [] },
            ':sid': s(syncId),
            ':t': s(new Date(nowMs).toISOString()),
            ...(force ? {} : { ':now': n(nowMs) }),
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return toState(syncId, out.Attributes ?? {});
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const current = await this.read(syncId);
      throw new LeaseHeldError(syncId, current?.lease ?? { owner: 'unknown', expiresAt: nowMs });
    }
  }

  async putDeadLetter(letter: DeadLetter): Promise<void> {
    const item: Record<string, AttributeValue> = {
      ...this.key(letter.syncId, DEAD_LETTER_PREFIX + letter.uniqueid),
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
    await this.client.send(new PutItemCommand({ TableName: this.tableName, Item: item }));
  }

  async deleteDeadLetter(syncId: string, uniqueid: string): Promise<void> {
    await this.client.send(
      new DeleteItemCommand({
        TableName: this.tableName,
        Key: this.key(syncId, DEAD_LETTER_PREFIX + uniqueid),
      }),
    );
  }

  /** The sync's dead-letter items, a query page at a time (a page holds at most 1 MB). */
  private async *deadLetterPages(syncId: string, select?: 'COUNT') {
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const out = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
          ExpressionAttributeValues: { ':pk': s(pk(syncId)), ':prefix': s(DEAD_LETTER_PREFIX) },
          ExclusiveStartKey: startKey,
          ConsistentRead: true,
          ...(select ? { Select: select } : {}),
        }),
      );
      yield out;
      startKey = out.LastEvaluatedKey;
    } while (startKey);
  }

  async *deadLetters(syncId: string): AsyncGenerator<DeadLetter> {
    for await (const page of this.deadLetterPages(syncId)) {
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
        };
      }
    }
  }

  async countDeadLetters(syncId: string): Promise<number> {
    let count = 0;
    for await (const page of this.deadLetterPages(syncId, 'COUNT')) count += page.Count ?? 0;
    return count;
  }

  /** Creates the table when missing: only for a local emulator (in AWS the stack owns the table). */
  async ensureTable(): Promise<void> {
    try {
      await this.client.send(new DescribeTableCommand({ TableName: this.tableName }));
      return;
    } catch (error) {
      if (
        !(error instanceof ResourceNotFoundException) &&
        (error as Error).name !== 'ResourceNotFoundException'
      ) {
        throw error;
      }
    }
    await this.client.send(
      new CreateTableCommand({
        TableName: this.tableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
      }),
    );
    for (let i = 0; i < 100; i++) {
      const out = await this.client.send(new DescribeTableCommand({ TableName: this.tableName }));
      if (out.Table?.TableStatus === 'ACTIVE') return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`DynamoDB table "${this.tableName}" was created but did not become ACTIVE within 10 s`);
  }
}
