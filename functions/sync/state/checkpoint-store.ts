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
import type { Cursor } from '../calls/cursor';
import type { ParkedCall, PendingCall } from '../calls/held-calls';
import type { ResendRange } from '../run/post-gate';
import { DeliveryLedger } from './ledger';

export type { ParkedCall, PendingCall } from '../calls/held-calls';

/**
 * The sync's state in DynamoDB: one checkpoint item per sync (cursor, pending calls, lease, fencing
 * token) and one item per dead letter. Every change is a single-item conditional write, so two runs
 * can never both move a checkpoint: the one whose condition fails has lost its lease and stops.
 */

/** A call resolved (delivered or dead-lettered) beyond the contiguous prefix the cursor covers. */
export interface AheadCall {
  readonly uniqueid: string;
  readonly endEpoch: number;
}

/** What the checkpoint item holds besides the cursor: written with it, in the same conditional write. */
export interface HeldState {
  readonly pending: readonly PendingCall[];
  readonly parked: readonly ParkedCall[];
  /**
   * The latest end_epoch resolved beyond the cursor: the next run skips the calls the ledger holds
   * between the cursor and here, so nothing delivered is posted again after a stop or a crash.
   */
  readonly frontier: number;
  /** The cursor has passed the operator's re-send range: it is removed. */
  readonly resendDone?: boolean;
  /** The start-up read's progress (null: done, removed); undefined leaves it as it is. */
  readonly adopt?: AdoptRange | null;
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
  readonly parked: readonly ParkedCall[];
  /** Written by earlier versions: calls delivered ahead of the cursor (now the ledger's job). */
  readonly ahead: readonly AheadCall[];
  readonly frontier: number;
  /** Nothing before this end_epoch is ever reported missing: the ledger started (or was reset) here. */
  readonly ledgerSince: number | null;
  readonly fence: number;
  readonly lease: { readonly owner: string; readonly expiresAt: number } | null;
  readonly updatedAt: string | null;
  readonly lastRun: LastRun | null;
  /** End epochs whose delivered calls the next runs post once more (`reset --resend`). */
  readonly resend: ResendRange | null;
  /**
   * The start-up read of a new sync (or after a reset): calls that began before the start point and
   * may end after it, read by call_date from `fromEpoch` up to `toEpoch` (exclusive) and followed.
   * Null once done.
   */
  readonly adopt: AdoptRange | null;
  /** End-epoch ranges a forward reset skipped: reconcile reports their calls as skipped, not missing. */
  readonly skipped: readonly SkippedRange[];
}

export interface AdoptRange {
  /** call_date epoch the start-up read has reached. */
  readonly fromEpoch: number;
  /** call_date epoch where the ordinary scan takes over. */
  readonly toEpoch: number;
  /** Calls ending before this are not the sync's (they ended before its start point). */
  readonly startEpoch: number;
}

/** What a reset writes besides the cursor (see resetCheckpoint). */
export interface ResetPlan {
  readonly ledgerSince?: number;
  readonly resend?: ResendRange;
  readonly adopt?: AdoptRange;
  /** The whole list of skipped ranges after this reset. */
  readonly skipped?: readonly SkippedRange[];
}

export interface SkippedRange {
  readonly fromEpoch: number;
  readonly toEpoch: number;
  readonly at: string;
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
  /** Epoch seconds after which DynamoDB's TTL removes it (dead letters hold phone numbers). */
  readonly expiresAt: number | null;
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
const REPAIR_PREFIX = 'repair#';

const pk = (syncId: string) => `sync#${syncId}`;
const n = (value: number): AttributeValue => ({ N: String(value) });
const s = (value: string): AttributeValue => ({ S: value });

function heldToValues(held: HeldState): Record<string, AttributeValue> {
  return {
    ':p': { L: held.pending.map((p) => ({ M: { u: s(p.uniqueid), e: n(p.endEpoch), f: n(p.firstSeen) } })) },
    ':k': {
      L: held.parked.map((p) => ({
        M: {
          u: s(p.uniqueid),
          e: n(p.endEpoch),
          n: n(p.failures),
          t: n(p.firstFailedAt),
          ...(p.lastStatus === null ? {} : { s: n(p.lastStatus) }),
        },
      })),
    },
    ':a': { L: [] },
    ':fr': n(held.frontier),
    ...(held.adopt
      ? { ':af': n(held.adopt.fromEpoch), ':at': n(held.adopt.toEpoch), ':as': n(held.adopt.startEpoch) }
      : {}),
  };
}

const HELD_SET = 'pending = :p, parked = :k, ahead = :a, frontier = :fr';
function heldRemovals(held: HeldState): string[] {
  return [
    ...(held.resendDone ? ['resendFrom', 'resendTo'] : []),
    ...(held.adopt === null ? ['adoptFrom', 'adoptTo', 'adoptStart'] : []),
  ];
}
const heldRemove = (held: HeldState) => {
  const names = heldRemovals(held);
  return names.length ? ` REMOVE ${names.join(', ')}` : '';
};
const heldSet = (held: HeldState) =>
  held.adopt ? `${HELD_SET}, adoptFrom = :af, adoptTo = :at, adoptStart = :as` : HELD_SET;

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
    parked: (item.parked?.L ?? []).map((entry) => ({
      uniqueid: str(entry.M?.u) ?? '',
      endEpoch: num(entry.M?.e) ?? 0,
      failures: num(entry.M?.n) ?? 0,
      firstFailedAt: num(entry.M?.t) ?? 0,
      lastStatus: num(entry.M?.s) ?? null,
    })),
    ahead: (item.ahead?.L ?? []).map((entry) => ({
      uniqueid: str(entry.M?.u) ?? '',
      endEpoch: num(entry.M?.e) ?? 0,
    })),
    frontier: num(item.frontier) ?? 0,
    ledgerSince: num(item.ledgerSince) ?? null,
    fence: num(item.fence) ?? 0,
    lease: owner !== undefined && expiresAt !== undefined ? { owner, expiresAt } : null,
    updatedAt: str(item.updatedAt) ?? null,
    lastRun,
    resend:
      item.resendFrom && item.resendTo
        ? { fromEpoch: num(item.resendFrom) ?? 0, toEpoch: num(item.resendTo) ?? 0 }
        : null,
    adopt:
      item.adoptFrom && item.adoptTo
        ? {
            fromEpoch: num(item.adoptFrom) ?? 0,
            toEpoch: num(item.adoptTo) ?? 0,
            startEpoch: num(item.adoptStart) ?? 0,
          }
        : null,
    skipped: item.skippedRanges?.S ? (JSON.parse(item.skippedRanges.S) as SkippedRange[]) : [],
  };
}

function isConditionFailure(error: unknown): boolean {
  return (
    error instanceof ConditionalCheckFailedException ||
    (error as { name?: string })?.name === 'ConditionalCheckFailedException'
  );
}

/** How long one DynamoDB request may take unless the caller's deadline is nearer. */
export const DYNAMO_TIMEOUT_MS = 5_000;

export interface WriteOptions {
  /** Bound for this request (the run's time left), at most DYNAMO_TIMEOUT_MS. */
  readonly timeoutMs?: number;
}

function sameCursorAttrs(item: Record<string, AttributeValue> | undefined, cursor: Cursor): boolean {
  return num(item?.cursorEpoch) === cursor.endEpoch && (str(item?.cursorUid) ?? '') === cursor.uniqueid;
}

export class CheckpointStore {
  /** The delivery ledger lives in the same table. */
  readonly ledger: DeliveryLedger;

  constructor(
    readonly client: DynamoDBClient,
    readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {
    this.ledger = new DeliveryLedger(client, tableName);
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

  private key(syncId: string, sk: string): Record<string, AttributeValue> {
    return { pk: s(pk(syncId)), sk: s(sk) };
  }

  // biome-ignore lint/suspicious/noExplicitAny: every command of the client goes through here
  private send<T>(command: any, options: WriteOptions = {}): Promise<T> {
    const timeoutMs = Math.max(1, Math.min(options.timeoutMs ?? DYNAMO_TIMEOUT_MS, DYNAMO_TIMEOUT_MS));
    return this.client.send(command, { abortSignal: AbortSignal.timeout(timeoutMs) }) as Promise<T>;
  }

  private async readItem(syncId: string, options?: WriteOptions) {
    const out = await this.send<{ Item?: Record<string, AttributeValue> }>(
      new GetItemCommand({
        TableName: this.tableName,
        Key: this.key(syncId, CHECKPOINT_SK),
        ConsistentRead: true,
      }),
      options,
    );
    return out.Item;
  }

  async read(syncId: string, options?: WriteOptions): Promise<CheckpointState | undefined> {
    const item = await this.readItem(syncId, options);
    return item ? toState(syncId, item) : undefined;
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
          Key: this.key(syncId, CHECKPOINT_SK),
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
      const state = toState(syncId, out.Attributes ?? {});
      return { acquired: true, lease: { syncId, owner, fence: state.fence }, state };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const item = await this.readItem(syncId, options);
      const current = item ? toState(syncId, item) : undefined;
      if (current?.lease?.owner === owner) {
        return { acquired: true, lease: { syncId, owner, fence: current.fence }, state: current };
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
          Key: this.key(lease.syncId, CHECKPOINT_SK),
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
    const sets = [
      'cursorEpoch = :e',
      'cursorUid = :u',
      'fence = if_not_exists(fence, :zero) + :one',
      'pending = if_not_exists(pending, :none)',
      'parked = if_not_exists(parked, :none)',
      'ahead = :none',
      'frontier = :zero',
      // The ledger's start moves back with a backward reset, and never forward: a range a forward reset
      // skipped stays in reconcile's view, reported as skipped.
      plan.ledgerSince === undefined ? 'ledgerSince = :e' : 'ledgerSince = :ls',
      'syncId = :sid',
      'updatedAt = :t',
      ...(plan.resend ? ['resendFrom = :rf', 'resendTo = :rt'] : []),
      ...(plan.adopt ? ['adoptFrom = :af', 'adoptTo = :at', 'adoptStart = :as'] : []),
      ...(plan.skipped ? ['skippedRanges = :sr'] : []),
    ];
    const removes = [
      'leaseOwner',
      'leaseExpiresAt',
      ...(plan.resend ? [] : ['resendFrom', 'resendTo']),
      ...(plan.adopt ? [] : ['adoptFrom', 'adoptTo', 'adoptStart']),
    ];
    try {
      const out = await this.send<{ Attributes?: Record<string, AttributeValue> }>(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: this.key(syncId, CHECKPOINT_SK),
          UpdateExpression: `SET ${sets.join(', ')} REMOVE ${removes.join(', ')}`,
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
            ...(plan.ledgerSince === undefined ? {} : { ':ls': n(plan.ledgerSince) }),
            ...(plan.resend ? { ':rf': n(plan.resend.fromEpoch), ':rt': n(plan.resend.toEpoch) } : {}),
            ...(plan.adopt
              ? {
                  ':af': n(plan.adopt.fromEpoch),
                  ':at': n(plan.adopt.toEpoch),
                  ':as': n(plan.adopt.startEpoch),
                }
              : {}),
            ...(plan.skipped ? { ':sr': s(JSON.stringify(plan.skipped)) } : {}),
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

  async putDeadLetter(letter: DeadLetter, options?: WriteOptions): Promise<void> {
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
    if (letter.expiresAt !== null) item.expiresAt = n(letter.expiresAt);
    await this.send(new PutItemCommand({ TableName: this.tableName, Item: item }), options);
  }

  /** Queues a call reconcile found missing; idempotent. The next run delivers it and deletes this. */
  async putRepair(
    syncId: string,
    call: { uniqueid: string; endEpoch: number },
    expiresAt: number,
  ): Promise<void> {
    await this.send(
      new PutItemCommand({
        TableName: this.tableName,
        Item: {
          ...this.key(syncId, REPAIR_PREFIX + call.uniqueid),
          uniqueid: s(call.uniqueid),
          endEpoch: n(call.endEpoch),
          queuedAt: s(new Date(this.now()).toISOString()),
          expiresAt: n(expiresAt),
        },
      }),
    );
  }

  async deleteRepair(syncId: string, uniqueid: string, options?: WriteOptions): Promise<void> {
    await this.send(
      new DeleteItemCommand({ TableName: this.tableName, Key: this.key(syncId, REPAIR_PREFIX + uniqueid) }),
      options,
    );
  }

  /** The calls queued for repair. */
  async repairs(syncId: string, options?: WriteOptions): Promise<{ uniqueid: string; endEpoch: number }[]> {
    const out: { uniqueid: string; endEpoch: number }[] = [];
    for await (const page of this.pages(syncId, REPAIR_PREFIX, undefined, options)) {
      for (const item of page.Items ?? []) {
        out.push({ uniqueid: str(item.uniqueid) ?? '', endEpoch: num(item.endEpoch) ?? 0 });
      }
    }
    return out;
  }

  async deleteDeadLetter(syncId: string, uniqueid: string): Promise<void> {
    await this.send(
      new DeleteItemCommand({
        TableName: this.tableName,
        Key: this.key(syncId, DEAD_LETTER_PREFIX + uniqueid),
      }),
    );
  }

  /** The sync's items under a key prefix, a query page at a time (a page holds at most 1 MB). */
  private async *pages(syncId: string, prefix: string, select?: 'COUNT', options?: WriteOptions) {
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const out = await this.send<{
        Items?: Record<string, AttributeValue>[];
        Count?: number;
        LastEvaluatedKey?: Record<string, AttributeValue>;
      }>(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
          ExpressionAttributeValues: { ':pk': s(pk(syncId)), ':prefix': s(prefix) },
          ExclusiveStartKey: startKey,
          ConsistentRead: true,
          ...(select ? { Select: select } : {}),
        }),
        options,
      );
      yield out;
      startKey = out.LastEvaluatedKey;
    } while (startKey);
  }

  async *deadLetters(syncId: string): AsyncGenerator<DeadLetter> {
    for await (const page of this.pages(syncId, DEAD_LETTER_PREFIX)) {
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

  async countDeadLetters(syncId: string): Promise<number> {
    let count = 0;
    for await (const page of this.pages(syncId, DEAD_LETTER_PREFIX, 'COUNT')) count += page.Count ?? 0;
    return count;
  }

  /** Creates the table when missing: only for a local emulator (in AWS the stack owns the table). */
  async ensureTable(): Promise<void> {
    try {
      await this.send(new DescribeTableCommand({ TableName: this.tableName }));
      return;
    } catch (error) {
      if (
        !(error instanceof ResourceNotFoundException) &&
        (error as Error).name !== 'ResourceNotFoundException'
      ) {
        throw error;
      }
    }
    await this.send(
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
      const out = await this.send<{ Table?: { TableStatus?: string } }>(
        new DescribeTableCommand({ TableName: this.tableName }),
      );
      if (out.Table?.TableStatus === 'ACTIVE') return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`DynamoDB table "${this.tableName}" was created but did not become ACTIVE within 10 s`);
  }
}
