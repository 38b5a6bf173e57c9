import {
  type AttributeValue,
  type DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { Cursor } from '../calls/cursor';
import {
  type AcquireResult,
  type AdoptRange,
  type CheckpointState,
  type HeldState,
  heldRemovals,
  heldRemove,
  heldSet,
  heldToValues,
  type LastRun,
  LEASE_FREE,
  type Lease,
  type ResetPlan,
  resetUpdate,
  sameCursorAttrs,
  toState,
} from './checkpoint-item';
import { type DeadLetter, DeadLetterItems } from './dead-letters';
import { isConditionFailure, n, num, requestTimeout, s, str } from './dynamo';
import { FollowedLogStore, replayFollowed } from './followed-log';
import { itemKey, SORT_KEYS } from './keys';
import { LeaseHeldError, LeaseLostError } from './lease-errors';
import { DeliveryLedger } from './ledger';
import { RepairItems } from './repairs';
import { ensureTableExists } from './table-setup';

export type { ParkedCall, PendingCall } from '../calls/held-calls';
export type {
  AcquireResult,
  AdoptRange,
  AheadCall,
  CheckpointState,
  HeldState,
  LastRun,
  Lease,
  ResetPlan,
  SkippedRange,
} from './checkpoint-item';
export type { DeadLetter } from './dead-letters';
export { DYNAMO_TIMEOUT_MS } from './dynamo';
export { LeaseHeldError, LeaseLostError } from './lease-errors';

/**
 * The sync's state in DynamoDB: one checkpoint item per sync (cursor, followed calls, lease, fencing
 * token) and one item per dead letter. Every change is a single-item conditional write, so two runs
 * can never both move a checkpoint: the one whose condition fails has lost its lease and stops.
 * The item's shape lives in checkpoint-item.ts; dead letters, repairs and the ledger in their own
 * modules, reached through this store.
 */

export interface WriteOptions {
  /** Bound for this request (the run's time left), at most DYNAMO_TIMEOUT_MS. */
  readonly timeoutMs?: number;
}

export class CheckpointStore {
  /** The delivery ledger lives in the same table. */
  readonly ledger: DeliveryLedger;
  /** The followed calls live in items of their own in the same table. */
  readonly followed: FollowedLogStore;
  private readonly letters: DeadLetterItems;
  private readonly repairItems: RepairItems;

  constructor(
    readonly client: DynamoDBClient,
    readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {
    this.ledger = new DeliveryLedger(client, tableName);
    this.followed = new FollowedLogStore(client, tableName);
    this.letters = new DeadLetterItems(client, tableName);
    this.repairItems = new RepairItems(client, tableName, now);
  }

  /**
   * Sets where the ledger starts, once in a sync's life (an upgraded sync delivered calls before that
   * the ledger never saw): nothing before it is ever reported missing.
   */
  startLedger(lease: Lease, since: number, adopt?: AdoptRange, options?: WriteOptions): Promise<void> {
    return this.fencedUpdate(
      lease,
      'ledger start',
      `SET ledgerSince = if_not_exists(ledgerSince, :ls)${
        adopt
          ? ', adoptFrom = if_not_exists(adoptFrom, :af), adoptTo = if_not_exists(adoptTo, :at), adoptStart = if_not_exists(adoptStart, :as)'
          : ''
      }`,
      {
        ':ls': n(since),
        ...(adopt ? { ':af': n(adopt.fromEpoch), ':at': n(adopt.toEpoch), ':as': n(adopt.startEpoch) } : {}),
      },
      '',
      (item) => str(item?.leaseOwner) === lease.owner,
      options,
    );
  }

  // biome-ignore lint/suspicious/noExplicitAny: every command of the client goes through here
  private send<T>(command: any, options: WriteOptions = {}): Promise<T> {
    return this.client.send(command, { abortSignal: requestTimeout(options.timeoutMs) }) as Promise<T>;
  }

  private async readItem(syncId: string, options?: WriteOptions) {
    const out = await this.send<{ Item?: Record<string, AttributeValue> }>(
      new GetItemCommand({
        TableName: this.tableName,
        Key: itemKey(syncId, SORT_KEYS.checkpoint),
        ConsistentRead: true,
      }),
      options,
    );
    return out.Item;
  }

  async read(syncId: string, options?: WriteOptions): Promise<CheckpointState | undefined> {
    const item = await this.readItem(syncId, options);
    return item ? this.withFollowed(toState(syncId, item)) : undefined;
  }

  /**
   * The followed calls from the items the checkpoint names. The lease holder (`sweepBefore`: its fence)
   * also deletes items no checkpoint named, left by runs of earlier fences that stopped between writes.
   */
  private async withFollowed(state: CheckpointState, sweepBefore?: number): Promise<CheckpointState> {
    const named = state.followedLog.items;
    if (named.length === 0 && sweepBefore === undefined) return state;
    const { items, unnamed } = await this.followed.load(state.syncId, named);
    if (sweepBefore !== undefined) {
      const stale = unnamed.filter((id) => Number(id.split('.')[0]) < sweepBefore);
      await this.followed.delete(state.syncId, stale).catch(() => undefined);
    }
    if (named.length === 0) return state;
    let snapshotBytes = 0;
    let deltaBytes = 0;
    for (const it of items) {
      const bytes = (it.add.length + it.del.length) * 45;
      if (it.kind === 'snapshot') snapshotBytes += bytes;
      else deltaBytes += bytes;
    }
    return {
      ...state,
      pending: [...replayFollowed(items).values()],
      followedLog: { items: named, snapshotBytes, deltaBytes },
    };
  }

  /**
   * Takes the lease when it is free or expired, raising the fencing token; a sync seen for the first
   * time starts at `initialCursor`. `owner` must be unique to this run: a refused condition is then
   * checked by reading the item, since a request the SDK retried may have been applied the first time.
   */
  async acquire(
    syncId: string,
    owner: string,
    leaseMs: number,
    initialCursor: Cursor,
    options?: WriteOptions,
  ): Promise<AcquireResult> {
    const nowMs = this.now();
    try {
      const out = await this.send<{ Attributes?: Record<string, AttributeValue> }>(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: itemKey(syncId, SORT_KEYS.checkpoint),
          UpdateExpression:
            'SET fence = if_not_exists(fence, :zero) + :one, leaseOwner = :owner, leaseExpiresAt = :exp, ' +
            'cursorEpoch = if_not_exists(cursorEpoch, :e), cursorUid = if_not_exists(cursorUid, :u), ' +
            'pending = if_not_exists(pending, :none), parked = if_not_exists(parked, :none), ' +
            'ahead = if_not_exists(ahead, :none), syncId = :sid',
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
        options,
      );
      const raw = toState(syncId, out.Attributes ?? {});
      const state = await this.withFollowed(raw, raw.fence);
      return { acquired: true, lease: { syncId, owner, fence: state.fence }, state };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const item = await this.readItem(syncId, options);
      const current = item ? toState(syncId, item) : undefined;
      if (current?.lease?.owner === owner) {
        const state = await this.withFollowed(current, current.fence);
        return { acquired: true, lease: { syncId, owner, fence: current.fence }, state };
      }
      return { acquired: false, holder: current?.lease ?? null };
    }
  }

  /**
   * A write that only the lease holder can make: conditioned on owner and fencing token (and whatever
   * `condition` adds), so a run that lost its lease fails here instead of overwriting its successor.
   * A refused condition is checked against the item (`applied`): the SDK may have retried a request
   * whose first try was applied.
   */
  private async fencedUpdate(
    lease: Lease,
    operation: string,
    update: string,
    values: Record<string, AttributeValue>,
    condition: string,
    applied: (item: Record<string, AttributeValue> | undefined) => boolean,
    options?: WriteOptions,
  ): Promise<void> {
    try {
      await this.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: itemKey(lease.syncId, SORT_KEYS.checkpoint),
          UpdateExpression: update,
          ConditionExpression: `leaseOwner = :owner AND fence = :fence${condition}`,
          ExpressionAttributeValues: { ...values, ':owner': s(lease.owner), ':fence': n(lease.fence) },
        }),
        options,
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const item = await this.readItem(lease.syncId, options);
      if (num(item?.fence) === lease.fence && applied(item)) return;
      throw new LeaseLostError(lease.syncId, operation);
    }
  }

  /**
   * Moves the cursor from `previous` to `next` and stores the held calls, renewing the lease. The
   * condition on the previous cursor as well makes a stale write fail instead of rewinding or
   * double-advancing the checkpoint.
   */
  advance(
    lease: Lease,
    previous: Cursor,
    next: Cursor,
    held: HeldState,
    leaseMs: number,
    options?: WriteOptions,
  ): Promise<void> {
    return this.fencedUpdate(
      lease,
      'checkpoint',
      `SET cursorEpoch = :e, cursorUid = :u, ${heldSet(held)}, leaseExpiresAt = :exp, updatedAt = :t${heldRemove(held)}`,
      {
        ':e': n(next.endEpoch),
        ':u': s(next.uniqueid),
        ...heldToValues(held),
        ':exp': n(this.now() + leaseMs),
        ':t': s(new Date(this.now()).toISOString()),
        ':pe': n(previous.endEpoch),
        ':pu': s(previous.uniqueid),
      },
      ' AND cursorEpoch = :pe AND cursorUid = :pu',
      (item) => str(item?.leaseOwner) === lease.owner && sameCursorAttrs(item, next),
      options,
    );
  }

  renew(lease: Lease, leaseMs: number, options?: WriteOptions): Promise<void> {
    return this.fencedUpdate(
      lease,
      'lease renewal',
      'SET leaseExpiresAt = :exp',
      { ':exp': n(this.now() + leaseMs) },
      '',
      (item) => str(item?.leaseOwner) === lease.owner,
      options,
    );
  }

  /**
   * Frees the lease so the next tick need not wait for it to expire and records how the run ended;
   * with `final`, the run's last checkpoint goes in the same write (a caught-up run then costs two
   * writes: acquire and release).
   */
  async release(
    lease: Lease,
    lastRun: LastRun | undefined,
    final?: { previous: Cursor; next: Cursor; held: HeldState },
    options?: WriteOptions,
  ): Promise<boolean> {
    const record = lastRun ? JSON.stringify(lastRun) : undefined;
    const sets = [
      ...(record ? ['lastRun = :r'] : []),
      ...(final ? ['cursorEpoch = :e', 'cursorUid = :u', heldSet(final.held), 'updatedAt = :t'] : []),
    ];
    try {
      await this.fencedUpdate(
        lease,
        'release',
        `REMOVE ${['leaseOwner', 'leaseExpiresAt', ...(final ? heldRemovals(final.held) : [])].join(', ')}${sets.length ? ` SET ${sets.join(', ')}` : ''}`,
        {
          ...(record ? { ':r': s(record) } : {}),
          ...(final
            ? {
                ':e': n(final.next.endEpoch),
                ':u': s(final.next.uniqueid),
                ...heldToValues(final.held),
                ':t': s(new Date(this.now()).toISOString()),
                ':pe': n(final.previous.endEpoch),
                ':pu': s(final.previous.uniqueid),
              }
            : {}),
        },
        final ? ' AND cursorEpoch = :pe AND cursorUid = :pu' : '',
        (item) =>
          item?.leaseOwner === undefined &&
          (!record || str(item?.lastRun) === record) &&
          (!final || sameCursorAttrs(item, final.next)),
        options,
      );
      return true;
    } catch (error) {
      if (error instanceof LeaseLostError) return false;
      throw error;
    }
  }

  /**
   * Moves the cursor by hand. Refused while a run holds the lease unless forced; either way the fencing
   * token rises, so a run that still believes it holds the lease fails its next write and stops. The
   * calls recorded as delivered ahead of the old cursor are forgotten: a reset means "read from here".
   */
  async reset(
    syncId: string,
    cursor: Cursor,
    force: boolean,
    plan: ResetPlan = {},
  ): Promise<CheckpointState> {
    const nowMs = this.now();
    try {
      const out = await this.send<{ Attributes?: Record<string, AttributeValue> }>(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: itemKey(syncId, SORT_KEYS.checkpoint),
          ...resetUpdate(syncId, cursor, force, plan, nowMs),
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

  putDeadLetter(letter: DeadLetter, options?: WriteOptions): Promise<void> {
    return this.letters.put(letter, options?.timeoutMs);
  }

  /** Queues a call reconcile found missing; idempotent. The next run delivers it and deletes this. */
  putRepair(syncId: string, call: { uniqueid: string; endEpoch: number }, expiresAt: number): Promise<void> {
    return this.repairItems.put(syncId, call, expiresAt);
  }

  deleteRepair(syncId: string, uniqueid: string, options?: WriteOptions): Promise<void> {
    return this.repairItems.delete(syncId, uniqueid, options?.timeoutMs);
  }

  /** The calls queued for repair. */
  repairs(syncId: string, options?: WriteOptions): Promise<{ uniqueid: string; endEpoch: number }[]> {
    return this.repairItems.list(syncId, options?.timeoutMs);
  }

  deleteDeadLetter(syncId: string, uniqueid: string): Promise<void> {
    return this.letters.delete(syncId, uniqueid);
  }

  deadLetters(syncId: string): AsyncGenerator<DeadLetter> {
    return this.letters.list(syncId);
  }

  countDeadLetters(syncId: string): Promise<number> {
    return this.letters.count(syncId);
  }

  /** Creates the table when missing: only for a local emulator (in AWS the stack owns the table). */
  ensureTable(): Promise<void> {
    return ensureTableExists(this.client, this.tableName);
  }
}
