import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { Cursor } from '../calls/cursor';
import type { ParkedCall, PendingCall } from '../calls/held-calls';
import { n, num, s, str } from './dynamo';

/**
 * The checkpoint item: its shape as the run sees it, and its conversion to and from DynamoDB's
 * attributes (the attribute names are persisted: a contract with every deployed version).
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
  /**
   * The items holding the followed calls (state/followed-log.ts), when they changed; `pending` is then
   * written empty (it held them in the checkpoint item itself before).
   */
  readonly followedItems?: readonly string[];
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
  /** The followed calls, from their own items (or, written by earlier versions, the checkpoint item). */
  readonly pending: readonly PendingCall[];
  /** The items the followed calls were read from, and what their snapshot and deltas weigh. */
  readonly followedLog: {
    readonly items: readonly string[];
    readonly snapshotBytes: number;
    readonly deltaBytes: number;
  };
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

/** End epochs [from, to) whose delivered calls the next runs post once more (`reset --resend`). */
export interface ResendRange {
  readonly fromEpoch: number;
  readonly toEpoch: number;
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

/** Nobody holds the lease, or its holder let it expire (crashed, or timed out without releasing). */
export const LEASE_FREE = 'attribute_not_exists(leaseOwner) OR leaseExpiresAt < :now';

export function heldToValues(held: HeldState): Record<string, AttributeValue> {
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
    ...(held.followedItems ? { ':fi': { L: held.followedItems.map((id) => s(id)) } } : {}),
    ...(held.adopt
      ? { ':af': n(held.adopt.fromEpoch), ':at': n(held.adopt.toEpoch), ':as': n(held.adopt.startEpoch) }
      : {}),
  };
}

const HELD_SET = 'pending = :p, parked = :k, ahead = :a, frontier = :fr';
export function heldRemovals(held: HeldState): string[] {
  return [
    ...(held.resendDone ? ['resendFrom', 'resendTo'] : []),
    ...(held.adopt === null ? ['adoptFrom', 'adoptTo', 'adoptStart'] : []),
  ];
}
export const heldRemove = (held: HeldState) => {
  const names = heldRemovals(held);
  return names.length ? ` REMOVE ${names.join(', ')}` : '';
};
export const heldSet = (held: HeldState) =>
  HELD_SET +
  (held.followedItems ? ', followedItems = :fi' : '') +
  (held.adopt ? ', adoptFrom = :af, adoptTo = :at, adoptStart = :as' : '');

export function toState(syncId: string, item: Record<string, AttributeValue>): CheckpointState {
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
    followedLog: {
      items: (item.followedItems?.L ?? []).map((e) => str(e) ?? ''),
      snapshotBytes: 0,
      deltaBytes: 0,
    },
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

export function sameCursorAttrs(item: Record<string, AttributeValue> | undefined, cursor: Cursor): boolean {
  return num(item?.cursorEpoch) === cursor.endEpoch && (str(item?.cursorUid) ?? '') === cursor.uniqueid;
}

/** The update a reset makes (see CheckpointStore.reset): conditioned on a free lease unless forced. */
export function resetUpdate(syncId: string, cursor: Cursor, force: boolean, plan: ResetPlan, nowMs: number) {
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
  return {
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
  };
}
