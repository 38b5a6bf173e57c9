import { describe, expect, it } from 'vitest';
import type { PendingCall } from '../../functions/sync/calls/held-calls';
import {
  emptyFollowedLog,
  type FollowedItem,
  type FollowedLogState,
  planFollowedWrite,
  replayFollowed,
} from '../../functions/sync/state/followed-log';

const call = (i: number): PendingCall => ({ uniqueid: `1796000000.${i}`, endEpoch: 0, firstSeen: 1 });
const calls = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => call(from + i));

describe('followed calls in items of their own', () => {
  it('writes a snapshot first, then deltas of what changed, and compacts when the deltas outweigh it', () => {
    const written: FollowedItem[] = [];
    let log: FollowedLogState = emptyFollowedLog();
    const apply = (current: PendingCall[]) => {
      const plan = planFollowedWrite(log, current, 7);
      if (!plan) return undefined;
      written.push(...plan.puts);
      log = plan.next;
      return plan;
    };
    const first = apply(calls(0, 1000));
    expect(first?.puts.map((p) => p.kind)).toEqual(['snapshot']);
    expect(apply(calls(0, 1000))).toBeUndefined();
    // A checkpoint's worth of change: a small delta, whatever the set's size.
    const delta = apply([...calls(50, 1000), ...calls(1000, 1040)]);
    expect(delta?.puts).toHaveLength(1);
    expect(delta?.puts[0]).toMatchObject({ kind: 'delta' });
    expect((delta?.puts[0]?.add.length ?? 0) + (delta?.puts[0]?.del.length ?? 0)).toBe(90);
    // What the checkpoint names replays to exactly the current set.
    const named = log.items.map((id) => written.find((w) => w.id === id) as FollowedItem);
    expect([...replayFollowed(named).keys()].sort()).toEqual(
      [...calls(50, 1040)].map((c) => c.uniqueid).sort(),
    );
    // Deltas outweighing the snapshot: the next write is a new snapshot, and the old items are dropped.
    let current = calls(50, 1040);
    let compacted: ReturnType<typeof planFollowedWrite>;
    for (let round = 0; round < 30 && !compacted?.drop.length; round++) {
      current = [...current.slice(60), ...calls(2000 + round * 60, 2060 + round * 60)];
      compacted = apply(current);
    }
    expect(compacted?.puts.every((p) => p.kind === 'snapshot')).toBe(true);
    expect(compacted?.drop.length).toBeGreaterThan(1);
    expect(log.items).toHaveLength(1);
  });

  it('splits a large snapshot over items that stay far below 400 KB', () => {
    const plan = planFollowedWrite(emptyFollowedLog(), calls(0, 7000), 3);
    expect(plan?.puts.map((p) => p.add.length)).toEqual([3000, 3000, 1000]);
    expect(replayFollowed(plan?.puts ?? []).size).toBe(7000);
  });

  it('moves calls an earlier version kept in the checkpoint item into a snapshot at the first write', () => {
    const legacy = emptyFollowedLog(calls(0, 5));
    const plan = planFollowedWrite(legacy, calls(0, 5), 9);
    expect(plan?.puts).toHaveLength(1);
    expect(plan?.puts[0]?.kind).toBe('snapshot');
  });
});
