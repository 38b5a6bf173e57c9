import { describe, expect, it } from 'vitest';
import type { CallRow } from '../../functions/sync/calls/payload';
import { ScanWindow } from '../../functions/sync/run/scan-window';
import { RunControl } from '../../functions/sync/run-control';

const row = (end: number, uid: string) => ({ uniqueid: uid, end_epoch: end }) as CallRow;
const limits = { maxResolvedAhead: 3, readAheadBelow: 2, maxWindow: 10 };

describe('ScanWindow', () => {
  it('moves the prefix only over contiguous resolved calls, and to a finished slice end', async () => {
    const w = new ScanWindow({ endEpoch: 100, uniqueid: '' }, limits);
    const control = new RunControl(undefined);
    w.add(row(100, '1'), 'send');
    w.add(row(101, '2'), 'send');
    w.add(row(101, '3'), 'skip');
    w.readThrough(105);
    const a = await w.next(control);
    const b = await w.next(control);
    expect(w.prefixCursor()).toEqual({ endEpoch: 100, uniqueid: '' });
    if (!a || !b) throw new Error('expected two slots');
    w.resolve(b);
    expect(w.prefixCursor()).toEqual({ endEpoch: 100, uniqueid: '' });
    expect(w.resolvedBeyondPrefix().map((r) => r.uniqueid)).toEqual(['2', '3']);
    w.resolve(a);
    expect(w.prefixCursor()).toEqual({ endEpoch: 106, uniqueid: '' });
    expect(w.resolvedBeyondPrefix()).toEqual([]);
  });

  it('holds workers once a batch worth of calls is resolved beyond the prefix', async () => {
    const w = new ScanWindow({ endEpoch: 0, uniqueid: '' }, limits);
    const control = new RunControl(undefined);
    for (let i = 1; i <= 6; i++) w.add(row(i, String(i)), 'send');
    const first = await w.next(control);
    const taken = [await w.next(control), await w.next(control), await w.next(control)];
    for (const s of taken) if (s) w.resolve(s);
    let stalled = 0;
    w.onStall = () => {
      stalled++;
    };
    let fifth: unknown;
    const waiting = w.next(control).then((s) => {
      fifth = s;
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(fifth).toBeUndefined();
    if (first) w.resolve(first);
    await waiting;
    expect((fifth as { row: CallRow }).row.uniqueid).toBe('5');
    expect(stalled).toBe(0);
  });

  it('asks the reader for more while workers still have calls to send', async () => {
    const w = new ScanWindow({ endEpoch: 0, uniqueid: '' }, limits);
    const control = new RunControl(undefined);
    for (let i = 1; i <= 3; i++) w.add(row(i, String(i)), 'send');
    let wanted = false;
    const want = w.wantMore(control).then(() => {
      wanted = true;
    });
    await new Promise((r) => setTimeout(r, 5));
    expect(wanted).toBe(false);
    await w.next(control);
    await w.next(control);
    await want;
    expect(wanted).toBe(true);
  });
});
