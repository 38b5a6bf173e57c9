import { describe, expect, it } from 'vitest';
import { cursorAt } from '../../functions/sync/calls/cursor';
import {
  CLOCK_TOLERANCE_SECONDS,
  cursorLimit,
  decideCursor,
  mayPass,
  openRowOf,
} from '../../functions/sync/calls/cursor-rule';
import type { CallRow } from '../../functions/sync/calls/payload';

const TRANSIENT = new Set(['INCALL', 'DISPO', 'QUEUE']);
const LOOKBACK = 120;

function row(
  fields: Partial<CallRow> & { uniqueid: string; cd_epoch: number },
): CallRow & { cd_epoch: number } {
  return {
    lead_id: 1,
    list_id: 1,
    campaign_id: 'A',
    call_date: null,
    start_epoch: fields.cd_epoch,
    end_epoch: 0,
    length_in_sec: null,
    status: 'INCALL',
    phone_code: '1',
    phone_number: '1',
    user: 'u',
    comments: null,
    user_group: null,
    term_reason: null,
    alt_dial: null,
    called_count: 1,
    ...fields,
  } as CallRow & { cd_epoch: number };
}

describe('R1, the cursor rule', () => {
  it('a DISPO row that ended: the cursor may not pass its end (less the clock tolerance)', () => {
    const dispo = openRowOf(
      row({ uniqueid: '1.1', cd_epoch: 1000, end_epoch: 1060, length_in_sec: 60, status: 'DISPO' }),
      TRANSIENT,
      1100,
    );
    expect(dispo.earliestEnd).toBe(1060 - CLOCK_TOLERANCE_SECONDS);
    expect(mayPass(cursorAt(1052), dispo, LOOKBACK)).toBe(true);
    expect(mayPass(cursorAt(1053), dispo, LOOKBACK)).toBe(false);
    expect(mayPass({ endEpoch: 1052, uniqueid: '9' }, dispo, LOOKBACK)).toBe(false);
  });

  it('a live call: its end is after now, but the next scan must still reach its call_date', () => {
    const live = openRowOf(row({ uniqueid: '1.2', cd_epoch: 1000 }), TRANSIENT, 1500);
    expect(live.earliestEnd).toBe(1500 - CLOCK_TOLERANCE_SECONDS);
    expect(cursorLimit(live, LOOKBACK)).toEqual(cursorAt(1120));
    expect(mayPass(cursorAt(1120), live, LOOKBACK)).toBe(true);
    expect(mayPass(cursorAt(1121), live, LOOKBACK)).toBe(false);
  });

  it('follows what the candidate would pass, holds the cursor where it cannot, never moves it back', () => {
    const a = { uniqueid: 'a', cdEpoch: 1000, earliestEnd: 5000 };
    const b = { uniqueid: 'b', cdEpoch: 2000, earliestEnd: 2100 };
    const c = { uniqueid: 'c', cdEpoch: 2900, earliestEnd: 9000 };
    const followed: string[] = [];
    const one = decideCursor(cursorAt(900), cursorAt(3000), [a, b, c], LOOKBACK, (o) => {
      followed.push(o.uniqueid);
      return true;
    });
    expect(one).toEqual({ cursor: cursorAt(3000), follow: [a, b], held: [] });
    expect(followed).toEqual(['a', 'b']);
    // Room for one only: the other holds the cursor at the last point that leaves it to the next scan.
    let room = 1;
    const two = decideCursor(cursorAt(900), cursorAt(3000), [a, b, c], LOOKBACK, () => room-- > 0);
    expect(two.follow).toEqual([a]);
    expect(two.held).toEqual([b]);
    expect(two.cursor).toEqual(cursorAt(2100));
    // A limit behind the cursor already written: the cursor stays where it is.
    const three = decideCursor(cursorAt(1500), cursorAt(3000), [a], LOOKBACK, () => false);
    expect(three.cursor).toEqual(cursorAt(1500));
  });

  it('a finished call still queued holds the cursor rather than being followed, unless it lasted hours', () => {
    const queued = { uniqueid: 'q', cdEpoch: 2000, earliestEnd: 2700, finished: true };
    const long = { uniqueid: 'l', cdEpoch: 100, earliestEnd: 2800, finished: true };
    const followed: string[] = [];
    const d = decideCursor(cursorAt(900), cursorAt(2600), [queued, long], LOOKBACK, (o) => {
      followed.push(o.uniqueid);
      return true;
    });
    // The short one holds the cursor where the next scan still reads it; the long one is followed.
    expect(d.cursor).toEqual(cursorAt(2120));
    expect(followed).toEqual(['l']);
    expect(d.held).toEqual([]);
  });

  it("at a run's last write, a finished call still queued is followed: no later run reads its minutes again", () => {
    const queued = { uniqueid: 'q', cdEpoch: 2000, earliestEnd: 2700, finished: true };
    const followed: string[] = [];
    const last = decideCursor(
      cursorAt(900),
      cursorAt(2600),
      [queued],
      LOOKBACK,
      (o) => {
        followed.push(o.uniqueid);
        return true;
      },
      true,
    );
    expect(last).toEqual({ cursor: cursorAt(2600), follow: [queued], held: [] });
    // No room to follow it: it holds the cursor, as any row would.
    const full = decideCursor(cursorAt(900), cursorAt(2600), [queued], LOOKBACK, () => false, true);
    expect(full).toEqual({ cursor: cursorAt(2120), follow: [], held: [queued] });
  });
});
