import { describe, expect, it } from 'vitest';
import type { CallRow } from '../../functions/sync/calls/payload';
import { duplicateTwins, twinKey } from '../../functions/sync/calls/twins';
import { PostGate } from '../../functions/sync/run/post-gate';

describe('R3, one gate before every post', () => {
  it('lets a call through once per run, never one the ledger holds', () => {
    const gate = new PostGate();
    gate.learn(['held']);
    expect(gate.admit({ uniqueid: 'held', end_epoch: 10 })).toBe('resolved');
    expect(gate.admit({ uniqueid: 'new', end_epoch: 10 })).toBe('post');
    expect(gate.admit({ uniqueid: 'new', end_epoch: 10 })).toBe('taken');
    gate.settle('new');
    expect(gate.isResolved('new')).toBe(true);
  });

  it("re-sends a delivered call of the operator's range once, and only there", () => {
    const gate = new PostGate();
    gate.learn(['in', 'out']);
    gate.allowResend({ fromEpoch: 100, toEpoch: 200 });
    expect(gate.admit({ uniqueid: 'in', end_epoch: 150 })).toBe('resend');
    expect(gate.admit({ uniqueid: 'in', end_epoch: 150 })).toBe('taken');
    expect(gate.admit({ uniqueid: 'out', end_epoch: 200 })).toBe('resolved');
  });
});

describe("twins VICIdial's cleanup deletes", () => {
  const call = (uniqueid: string, start: number, lead = 7, end = 500) =>
    ({ uniqueid, lead_id: lead, start_epoch: start, end_epoch: end }) as CallRow;

  it('keys by lead, end and uniqueid prefix; keeps the earliest start', () => {
    expect(twinKey(call('1796000000.5', 1))).toBe('7|500|1796000000');
    expect(twinKey(call('1234567.5', 1))).toBeUndefined();
    const twins = duplicateTwins([
      call('1796000000.9', 20),
      call('1796000000.8', 10),
      call('1796000000.7', 30, 8),
      call('1796000001.1', 10),
    ]);
    expect([...twins]).toEqual([['1796000000.9', '1796000000.8']]);
  });
});
