import { describe, expect, it } from 'vitest';
import { compareCursor, cursorAfter, cursorAt, lagSeconds } from '../../functions/sync/calls/cursor';

describe('cursor order', () => {
  it('orders by end_epoch, then uniqueid as the database does', () => {
    expect(compareCursor({ endEpoch: 5, uniqueid: 'b' }, { endEpoch: 6, uniqueid: 'a' })).toBe(-1);
    // Asterisk ids are not numeric order: "...1000" sorts before "...567" as strings, in SQL and here.
    expect(
      compareCursor(
        { endEpoch: 5, uniqueid: '1729771234.1000' },
        { endEpoch: 5, uniqueid: '1729771234.567' },
      ),
    ).toBe(-1);
    expect(compareCursor(cursorAt(5), { endEpoch: 5, uniqueid: '1.0' })).toBe(-1);
  });

  it('places the end of a slice after every call of its last second', () => {
    expect(compareCursor(cursorAfter(100), { endEpoch: 100, uniqueid: '99999999999.99999999' })).toBe(1);
    expect(cursorAfter(100)).toEqual({ endEpoch: 101, uniqueid: '' });
  });

  it('reports lag from the last fully done second', () => {
    expect(lagSeconds(cursorAt(101), 110)).toBe(10);
    expect(lagSeconds({ endEpoch: 100, uniqueid: 'x' }, 110)).toBe(10);
    // A cursor ahead of the clock shows as negative lag, never as "caught up".
    expect(lagSeconds(cursorAt(200), 110)).toBe(-89);
  });
});
