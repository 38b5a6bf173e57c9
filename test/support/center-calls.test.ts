import { describe, expect, it } from 'vitest';
import { bulkInsertSql, type CenterCall, centerCalls, rowsAsOf, writesBetween } from './center-calls';

const FROM = 1_780_000_020;

function all(minutes: number, callsPerMinute = 600, seed = 5): CenterCall[] {
  return [...centerCalls({ callsPerMinute, fromEpoch: FROM, toEpoch: FROM + minutes * 60, seed })].flat();
}

describe('a call center as VICIdial writes vicidial_log', () => {
  it('dials the given number of calls a minute, each with its own uniqueid, deterministically', () => {
    const minutes = [...centerCalls({ callsPerMinute: 1000.5, fromEpoch: FROM, toEpoch: FROM + 600 })];
    expect(minutes).toHaveLength(10);
    const calls = minutes.flat();
    expect(calls.length).toBe(10_005);
    expect(new Set(calls.map((c) => c.uniqueid)).size).toBe(calls.length);
    expect(calls.every((c) => c.uniqueid.length <= 20)).toBe(true);
    expect(all(2).map((c) => c.uniqueid)).toEqual(all(2).map((c) => c.uniqueid));
  });

  it('inserts an agent call at answer without an end, then DISPO at hangup, then the final status', () => {
    const call = all(5).find(
      (c) => c.agent && c.finalAt !== undefined && c.rowAt(c.insertAt)?.status === 'QUEUE',
    );
    if (!call) throw new Error('no auto-dialed agent call');
    expect(call.rowAt(call.insertAt - 1)).toBeUndefined();
    const queued = call.rowAt(call.insertAt);
    expect(queued).toMatchObject({ status: 'QUEUE', end_epoch: null, length_in_sec: null });
    expect(queued?.start_epoch).toBe(call.insertAt);
    const final = call.rowAt(call.finalAt as number);
    expect(final?.status).toBe(call.finalStatus);
    const end = final?.end_epoch as number;
    expect(call.rowAt(end - 1)).toMatchObject({ status: 'INCALL', end_epoch: null });
    expect(call.rowAt(end)).toMatchObject({ status: 'DISPO', end_epoch: end });
    expect(final?.length_in_sec).toBe(end - call.insertAt);
    expect(final?.length_in_sec).toBeLessThanOrEqual(900);
  });

  it('writes dialer outcomes complete: NA at its insert time, B back-dated to the dial, A ending in the future', () => {
    const calls = all(5);
    const na = calls.find((c) => c.finalStatus === 'NA') as CenterCall;
    expect(na.rowAt(na.insertAt)).toMatchObject({
      status: 'NA',
      start_epoch: na.insertAt,
      end_epoch: na.insertAt,
      length_in_sec: 0,
    });
    expect(na.insertAt - na.dialAt).toBeGreaterThanOrEqual(60);
    const busy = calls.find((c) => c.finalStatus === 'B') as CenterCall;
    expect(busy.insertAt).toBeGreaterThan(busy.dialAt);
    expect(busy.rowAt(busy.insertAt)).toMatchObject({ start_epoch: busy.dialAt, end_epoch: busy.dialAt });
    const machine = calls.find((c) => c.finalStatus === 'A') as CenterCall;
    expect(machine.rowAt(machine.insertAt)).toMatchObject({
      end_epoch: machine.insertAt + 3,
      length_in_sec: 3,
    });
  });

  it('leaves a few dispositions never submitted, and takes rows as they stand at one instant', () => {
    const calls = all(30);
    const never = calls.filter((c) => c.agent && c.finalAt === undefined);
    expect(never.length).toBeGreaterThan(0);
    expect(never.length).toBeLessThan(calls.length * 0.01);
    const asOf = FROM + 30 * 60;
    const rows = rowsAsOf(calls, asOf);
    expect(rows.length).toBe(calls.filter((c) => c.insertAt <= asOf).length);
    const open = rows.filter((r) => r.status === 'INCALL' || r.status === 'QUEUE');
    // Agent calls last minutes: at the end of a busy half hour many are still going.
    expect(open.length).toBeGreaterThan(200);
    expect(open.every((r) => r.end_epoch === null)).toBe(true);
  });

  it('lists what VICIdial writes between two instants: new rows and changed ones', () => {
    const calls = all(20);
    const from = FROM + 15 * 60;
    const to = from + 120;
    const writes = writesBetween(calls, from, to);
    const inserted = writes.filter((r) => !calls.find((c) => c.uniqueid === r.uniqueid)?.rowAt(from));
    const updated = writes.length - inserted.length;
    expect(inserted.length).toBeGreaterThan(0);
    expect(updated).toBeGreaterThan(0);
    for (const row of writes) {
      expect(row).toEqual(calls.find((c) => c.uniqueid === row.uniqueid)?.rowAt(to));
    }
    const unchanged = calls.filter((c) => c.rowAt(from) && !writes.some((w) => w.uniqueid === c.uniqueid));
    for (const c of unchanged.slice(0, 50)) expect(c.rowAt(to)).toEqual(c.rowAt(from));
  });

  it('writes a bulk INSERT with literals, refusing anything that would need escaping', () => {
    const rows = rowsAsOf(all(1, 10), FROM + 3600);
    const sql = bulkInsertSql(rows);
    expect(sql.startsWith('INSERT INTO vicidial_log (`uniqueid`')).toBe(true);
    expect(sql).toContain('FROM_UNIXTIME(');
    expect(() => bulkInsertSql([{ ...(rows[0] as (typeof rows)[0]), comments: "it's" }])).toThrow(
      /plain values/,
    );
  });
});
