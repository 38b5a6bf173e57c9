import { describe, expect, it } from 'vitest';
import { buildSliceQuery, TIME_ZONE_MARGIN_SECONDS } from '../../functions/sync/vicidial-log';

describe('buildSliceQuery', () => {
  const read = {
    cursor: { endEpoch: 100_000, uniqueid: '99990.12' },
    sliceEnd: 100_899,
    limit: 500,
    lookbackSeconds: 21600,
  };

  it('binds every value as a parameter', () => {
    const { sql, values } = buildSliceQuery(read, {
      minDurationSeconds: 0,
      campaigns: ['SALESA', 'SALESB'],
      excludeCampaigns: ['TEST'],
    });
    expect(sql).not.toMatch(/SALESA|TEST|100000|99990/);
    expect(sql.match(/\?/g)).toHaveLength(values.length);
    expect(values).toEqual([
      100_000 - 21600 - TIME_ZONE_MARGIN_SECONDS,
      100_899 + TIME_ZONE_MARGIN_SECONDS,
      100_899,
      100_000,
      100_000,
      '99990.12',
      0,
      'SALESA',
      'SALESB',
      'TEST',
      500,
    ]);
  });

  it('bounds the scan by call_date from both sides and orders by the keyset', () => {
    const { sql } = buildSliceQuery(read, { minDurationSeconds: 0, campaigns: [], excludeCampaigns: [] });
    expect(sql).toContain('FORCE INDEX (call_date)');
    expect(sql).toContain('call_date >= FROM_UNIXTIME(?) AND call_date <= FROM_UNIXTIME(?)');
    expect(sql).toContain('(end_epoch > ? OR (end_epoch = ? AND uniqueid > ?))');
    expect(sql).toMatch(/ORDER BY end_epoch, uniqueid LIMIT \?$/);
  });
});
