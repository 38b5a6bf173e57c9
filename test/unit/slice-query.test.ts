import { describe, expect, it } from 'vitest';
import type { CallRow } from '../../functions/sync/calls/payload';
import { ReorderHeap } from '../../functions/sync/source/call-date-scan';
import { buildCountQuery, buildScanQuery } from '../../functions/sync/source/vicidial-log';

const filters = {
  minDurationSeconds: 0,
  campaigns: ['SALESA', 'SALESB'],
  excludeCampaigns: ['TEST'],
  transientStatuses: ['INCALL', 'DISPO', 'QUEUE'],
};

describe('buildScanQuery', () => {
  it('binds every value as a parameter and reads the call_date index in order, a chunk at a time', () => {
    const { sql, values } = buildScanQuery(
      { from: { epoch: 100_000 }, toEpoch: 100_899, limit: 500 },
      filters,
    );
    expect(sql).not.toMatch(/SALESA|TEST|100000|INCALL/);
    expect(sql.match(/\?/g)).toHaveLength(values.length);
    expect(values).toEqual([
      100_000,
      100_899,
      'INCALL',
      'DISPO',
      'QUEUE',
      0,
      'SALESA',
      'SALESB',
      'TEST',
      500,
    ]);
    expect(sql).toContain('FORCE INDEX (call_date)');
    expect(sql).toContain('call_date >= FROM_UNIXTIME(?) AND call_date <= FROM_UNIXTIME(?)');
    expect(sql).toMatch(/ORDER BY call_date LIMIT \?$/);
    // No ORDER BY end_epoch: that would sort the whole range before the limit.
    expect(sql).not.toContain('ORDER BY end_epoch');
  });

  it('continues from a local call_date, and reads a burst second whole', () => {
    const next = buildScanQuery(
      { from: { local: '2026-11-26 10:00:00', inclusive: true }, toEpoch: 5, limit: 10 },
      filters,
    );
    expect(next.sql).toContain('call_date >= ? AND call_date <= FROM_UNIXTIME(?)');
    expect(next.values[0]).toBe('2026-11-26 10:00:00');
    const burst = buildScanQuery(
      { from: { local: '2026-11-26 10:00:00', inclusive: true }, toEpoch: 5, limit: undefined },
      filters,
    );
    expect(burst.sql).toContain('WHERE call_date = ?');
    expect(burst.sql).not.toContain('LIMIT');
  });

  it('counts what a backward reset re-posts with the original filters, on the index', () => {
    const { sql, values } = buildCountQuery(1000, 2000, 120, filters);
    expect(sql).toContain('FORCE INDEX (call_date)');
    expect(sql).toContain('length_in_sec > ?');
    expect(sql.match(/\?/g)).toHaveLength(values.length);
  });
});

describe('ReorderHeap', () => {
  const row = (end: number, uid: string) => ({ uniqueid: uid, end_epoch: end }) as CallRow;

  it('hands out calls in (end_epoch, uniqueid) order, only up to the epoch asked', () => {
    const heap = new ReorderHeap();
    for (const r of [row(5, 'b'), row(3, 'z'), row(5, 'a'), row(9, 'c'), row(1, 'y'), row(3, 'a')])
      heap.push(r);
    expect(heap.popThrough(5).map((r) => `${r.end_epoch}${r.uniqueid}`)).toEqual([
      '1y',
      '3a',
      '3z',
      '5a',
      '5b',
    ]);
    expect(heap.size).toBe(1);
    expect(heap.popThrough(8)).toEqual([]);
    expect(heap.popThrough(9)).toHaveLength(1);
  });
});
