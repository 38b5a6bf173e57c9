import { describe, expect, it } from 'vitest';
import {
  formatOffset,
  judgeTimeZone,
  median,
  type SessionZone,
  type TimeZoneSample,
} from '../../functions/sync/source/time-zone-check';

const UTC: SessionZone = { timeZone: 'SYSTEM', systemTimeZone: 'UTC', offsetSeconds: 0 };
const NEW_YORK_WINTER: SessionZone = {
  timeZone: 'America/New_York',
  systemTimeZone: 'UTC',
  offsetSeconds: -18000,
};

function rows(differenceSeconds: number, n: number, nearDstChange = false): TimeZoneSample[] {
  return Array.from({ length: n }, () => ({ differenceSeconds, nearDstChange }));
}

describe('median', () => {
  it('takes the middle value, or the rounded mean of the two middle ones', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(3); // (2 + 3) / 2 = 2.5, rounded
    expect(median([-3, -4])).toBe(-3); // -3.5 rounds towards +infinity
    expect(median([28800])).toBe(28800);
    expect(median([])).toBeNaN();
  });
});

describe('formatOffset', () => {
  it('writes seconds as ±HH:MM to the minute', () => {
    expect(formatOffset(28800)).toBe('+08:00');
    expect(formatOffset(-18000)).toBe('-05:00');
    expect(formatOffset(19800)).toBe('+05:30');
    expect(formatOffset(-16200)).toBe('-04:30');
    expect(formatOffset(0)).toBe('+00:00');
    expect(formatOffset(-20)).toBe('+00:00');
    expect(formatOffset(-40)).toBe('-00:01');
  });
});

describe('judgeTimeZone', () => {
  it('is ok when call_date agrees with start_epoch within clock skew', () => {
    const report = judgeTimeZone([...rows(0, 50), ...rows(3, 30), ...rows(-6, 20)], UTC);
    expect(report).toMatchObject({
      status: 'ok',
      sessionTimeZone: 'SYSTEM',
      systemTimeZone: 'UTC',
      sessionOffset: '+00:00',
      differenceSeconds: 0,
      difference: '+00:00',
      rowsUsed: 100,
      rowsExcluded: 0,
      suggestedTimeZone: null,
    });
    expect(report.message).toMatch(
      /^call_date agrees with the session time zone SYSTEM \(UTC, now \+00:00\)/,
    );
  });

  it('treats back-dated busy and disconnected rows as outliers, not as a zone', () => {
    // B/DC/PDROP rows carry the dial time in call_date but the insert time in start_epoch.
    const backDated = Array.from({ length: 45 }, (_, i) => ({
      differenceSeconds: -(20 + i * 40),
      nearDstChange: false,
    }));
    const report = judgeTimeZone([...rows(1, 55), ...backDated], UTC);
    expect(report.status).toBe('ok');
    expect(report.differenceSeconds).toBe(1);
  });

  it('finds a zone mismatch even among back-dated rows, with the sign of call_date - session', () => {
    // VICIdial writes at +08:00, the session reads in UTC: call_date is 8 h ahead of the session.
    const report = judgeTimeZone([...rows(28800, 70), ...rows(28800 - 90, 30)], UTC);
    expect(report).toMatchObject({
      status: 'mismatch',
      differenceSeconds: 28800,
      difference: '+08:00',
      suggestedTimeZone: '+08:00',
      rowsUsed: 100,
    });
    expect(report.message).toBe(
      'call_date runs 08:00 ahead of the session time zone SYSTEM (UTC, now +00:00) (median +28800 s over 100 calls): ' +
        'reads miss calls; set VICIDIAL_DB_TIME_ZONE=+08:00 (or the named zone VICIdial runs in, e.g. America/New_York)',
    );
    expect(report.message).toContain('set VICIDIAL_DB_TIME_ZONE=+08:00');
    expect(report.message).not.toContain('\n');
  });

  it('suggests the zone relative to a session zone that is not UTC', () => {
    // The session reads in New York (winter, -05:00), VICIdial writes in UTC: call_date is 5 h ahead.
    const report = judgeTimeZone(rows(18000 + 4, 10), NEW_YORK_WINTER);
    expect(report).toMatchObject({
      status: 'mismatch',
      sessionTimeZone: 'America/New_York',
      systemTimeZone: null,
      sessionOffset: '-05:00',
      suggestedTimeZone: '+00:00',
    });
    // The writer east of UTC by 5:30 while the session is UTC: behind shows as negative.
    const behind = judgeTimeZone(rows(-19800, 10), UTC);
    expect(behind).toMatchObject({ status: 'mismatch', differenceSeconds: -19800, difference: '-05:30' });
    expect(behind.suggestedTimeZone).toBe('-05:30');
    expect(behind.message).toContain('behind the session time zone');
  });

  it('calls a mismatch only from 900 s on', () => {
    expect(judgeTimeZone(rows(899, 5), UTC).status).toBe('ok');
    expect(judgeTimeZone(rows(-899, 5), UTC).status).toBe('ok');
    expect(judgeTimeZone(rows(900, 5), UTC).status).toBe('mismatch');
    expect(judgeTimeZone(rows(-900, 5), UTC).status).toBe('mismatch');
  });

  it('leaves out rows within an hour of a daylight-saving change', () => {
    // In the repeated hour the session reads call_date as the other 01:xx: an hour off.
    const report = judgeTimeZone([...rows(0, 30), ...rows(3600, 60, true)], NEW_YORK_WINTER);
    expect(report).toMatchObject({ status: 'ok', differenceSeconds: 0, rowsUsed: 30, rowsExcluded: 60 });
  });

  it('is unknown, not a mismatch, without recent rows', () => {
    const empty = judgeTimeZone([], UTC);
    expect(empty).toMatchObject({ status: 'unknown', differenceSeconds: null, rowsUsed: 0 });
    expect(empty.message).toMatch(/^time zone not checked: no recent call/);
    const allDst = judgeTimeZone(rows(3600, 4, true), NEW_YORK_WINTER);
    expect(allDst).toMatchObject({ status: 'unknown', rowsUsed: 0, rowsExcluded: 4 });
    expect(allDst.message).toContain('daylight-saving');
  });
});
