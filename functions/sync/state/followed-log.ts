import {
  type AttributeValue,
  DeleteItemCommand,
  type DynamoDBClient,
  PutItemCommand,
  QueryCommand,
} from '@aws-sdk/client-dynamodb';
import type { PendingCall } from '../calls/held-calls';
import { n, num, requestTimeout, s, str } from './dynamo';
import { partitionKey } from './keys';

/**
 * The followed calls, in items of their own (`followed#<id>`), so that a checkpoint write costs by
 * what changed, not by how many calls are followed (a busy center follows a thousand or more; kept in
 * the checkpoint item they made every write cost ~40 write units).
 *
 * A log: a snapshot (one or more items holding every followed call) then deltas (calls followed and let
 * go since). The checkpoint item names the items that make up the set (`followedItems`), in the same
 * fenced write that moves the cursor, so the set and the cursor never disagree: items are written
 * first, under ids unique to the run's fence, and an item the checkpoint does not name (a run that
 * stopped between the two writes) is ignored and later deleted. When the deltas outweigh the snapshot,
 * the next write is a new snapshot instead. Pure planning here, plus the few reads and writes.
 */

const PREFIX = 'followed#';
/** Calls per snapshot item: ~45 B each, well under DynamoDB's 400 KB item limit. */
const SNAPSHOT_CALLS = 3_000;
/** A snapshot is rewritten once the deltas since it weigh more than this share of it. */
const COMPACT_RATIO = 1;
/** ...and never for less than this (a few calls followed: a delta a write is cheaper). */
const COMPACT_MIN_BYTES = 8 * 1024;
const CALL_BYTES = 45;

/** The set as the checkpoint last named it. */
export interface FollowedLogState {
  readonly items: readonly string[];
  readonly calls: ReadonlyMap<string, PendingCall>;
  readonly snapshotBytes: number;
  readonly deltaBytes: number;
  /** Ids written by this run so far (unique within its fence). */
  readonly seq: number;
}

export interface FollowedItem {
  readonly id: string;
  readonly kind: 'snapshot' | 'delta';
  readonly add: readonly PendingCall[];
  readonly del: readonly string[];
}

export interface FollowedWrite {
  /** Items to put before the checkpoint write that names them. */
  readonly puts: readonly FollowedItem[];
  /** What the checkpoint names after the write. */
  readonly next: FollowedLogState;
  /** Items no longer named once the write succeeds. */
  readonly drop: readonly string[];
}

export const emptyFollowedLog = (calls: readonly PendingCall[] = []): FollowedLogState => ({
  items: [],
  calls: new Map(calls.map((c) => [c.uniqueid, c])),
  snapshotBytes: 0,
  deltaBytes: 0,
  seq: 0,
});

/** Where a run starts: the set as the checkpoint (and the items it names) holds it. */
export function followedLogOf(state: {
  readonly pending: readonly PendingCall[];
  readonly followedLog: {
    readonly items: readonly string[];
    readonly snapshotBytes: number;
    readonly deltaBytes: number;
  };
}): FollowedLogState {
  return {
    items: state.followedLog.items,
    calls: new Map(state.pending.map((c) => [c.uniqueid, c])),
    snapshotBytes: state.followedLog.snapshotBytes,
    deltaBytes: state.followedLog.deltaBytes,
    seq: 0,
  };
}

const idOf = (fence: number, seq: number) =>
  `${String(fence).padStart(10, '0')}.${String(seq).padStart(6, '0')}`;

/** What a checkpoint write must put for the followed set to be `current`; undefined: nothing changed. */
export function planFollowedWrite(
  log: FollowedLogState,
  current: readonly PendingCall[],
  fence: number,
): FollowedWrite | undefined {
  const now = new Map(current.map((c) => [c.uniqueid, c]));
  const add = current.filter((c) => !log.calls.has(c.uniqueid));
  const del = [...log.calls.keys()].filter((uid) => !now.has(uid));
  // Legacy state (calls in the checkpoint item, no items yet) moves into a snapshot at the first write.
  if (add.length === 0 && del.length === 0 && (log.items.length > 0 || now.size === 0)) return undefined;
  const deltaBytes = (add.length + del.length) * CALL_BYTES;
  const compact =
    log.items.length === 0 ||
    log.deltaBytes + deltaBytes > Math.max(COMPACT_MIN_BYTES, log.snapshotBytes * COMPACT_RATIO);
  let seq = log.seq;
  if (compact) {
    const puts: FollowedItem[] = [];
    for (let i = 0; i === 0 || i < current.length; i += SNAPSHOT_CALLS) {
      puts.push({
        id: idOf(fence, ++seq),
        kind: 'snapshot',
        add: current.slice(i, i + SNAPSHOT_CALLS),
        del: [],
      });
    }
    const items = puts.map((p) => p.id);
    return {
      puts,
      next: { items, calls: now, snapshotBytes: current.length * CALL_BYTES, deltaBytes: 0, seq },
      drop: [...log.items],
    };
  }
  const delta: FollowedItem = { id: idOf(fence, ++seq), kind: 'delta', add, del };
  return {
    puts: [delta],
    next: {
      items: [...log.items, delta.id],
      calls: now,
      snapshotBytes: log.snapshotBytes,
      deltaBytes: log.deltaBytes + deltaBytes,
      seq,
    },
    drop: [],
  };
}

/** Applies the named items, in order: the snapshot's parts, then each delta. */
export function replayFollowed(items: readonly FollowedItem[]): Map<string, PendingCall> {
  const calls = new Map<string, PendingCall>();
  let snapshotSeen = false;
  for (const item of items) {
    if (item.kind === 'snapshot' && !snapshotSeen) {
      calls.clear();
      snapshotSeen = true;
    }
    for (const c of item.add) calls.set(c.uniqueid, c);
    for (const uid of item.del) calls.delete(uid);
  }
  return calls;
}

const callAttr = (c: PendingCall): AttributeValue => ({
  M: { u: s(c.uniqueid), e: n(c.endEpoch), f: n(c.firstSeen) },
});

export class FollowedLogStore {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async put(syncId: string, item: FollowedItem, timeoutMs?: number): Promise<void> {
    await this.client.send(
      new PutItemCommand({
        TableName: this.tableName,
        Item: {
          pk: s(partitionKey(syncId)),
          sk: s(PREFIX + item.id),
          kind: s(item.kind),
          add: { L: item.add.map(callAttr) },
          ...(item.del.length ? { del: { SS: [...item.del] } } : {}),
        },
      }),
      { abortSignal: requestTimeout(timeoutMs) },
    );
  }

  /** The items a checkpoint names, in its order; also what is there and not named (to be deleted). */
  async load(
    syncId: string,
    named: readonly string[],
  ): Promise<{ items: FollowedItem[]; unnamed: string[] }> {
    const found = new Map<string, FollowedItem>();
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :p)',
          ExpressionAttributeValues: { ':pk': s(partitionKey(syncId)), ':p': s(PREFIX) },
          ExclusiveStartKey: startKey,
          ConsistentRead: true,
        }),
        { abortSignal: requestTimeout() },
      );
      for (const it of page.Items ?? []) {
        const id = (str(it.sk) ?? '').slice(PREFIX.length);
        found.set(id, {
          id,
          kind: str(it.kind) === 'snapshot' ? 'snapshot' : 'delta',
          add: (it.add?.L ?? []).map((e) => ({
            uniqueid: str(e.M?.u) ?? '',
            endEpoch: num(e.M?.e) ?? 0,
            firstSeen: num(e.M?.f) ?? 0,
          })),
          del: it.del?.SS ?? [],
        });
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    const items: FollowedItem[] = [];
    for (const id of named) {
      const item = found.get(id);
      if (!item) throw new Error(`followed calls item ${id} named by the checkpoint is missing`);
      items.push(item);
    }
    const namedSet = new Set(named);
    return { items, unnamed: [...found.keys()].filter((id) => !namedSet.has(id)) };
  }

  /**
   * Best effort: an item left over costs storage only (nothing reads an item the checkpoint does not
   * name). One DeleteItem each: the function's role allows no batch writes.
   */
  async delete(syncId: string, ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      await this.client.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: { pk: s(partitionKey(syncId)), sk: s(PREFIX + id) },
        }),
        { abortSignal: requestTimeout() },
      );
    }
  }
}
