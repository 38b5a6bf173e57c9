import { describe, expect, it } from 'vitest';
import { groupByHour, itemsFor } from '../../functions/sync/state/ledger';

function only(perMinute: number, minutes: number): [number, Map<number, Set<string>>] {
  const first = [...groupByHour(entries(perMinute, minutes))][0];
  if (!first) throw new Error('no hour');
  return first;
}

function entries(perMinute: number, minutes: number, start = 1_795_665_600) {
  return Array.from({ length: perMinute * minutes }, (_, i) => ({
    uniqueid: `${start}.${i}`,
    endEpoch: start + Math.floor(i / perMinute) * 60,
  }));
}

describe('the ledger layout', () => {
  it('keeps a sparse hour in one item', () => {
    const [hour, minutes] = only(50, 10);
    expect([...itemsFor(hour, minutes, false).keys()]).toEqual([`ledger#${hour}`]);
  });

  it('splits a dense hour into blocks of minutes that each hold about 4,000 calls', () => {
    const [hour, minutes] = only(2000, 4);
    const items = itemsFor(hour, minutes, false);
    expect([...items.keys()]).toEqual([`ledger#${hour}#${hour}`, `ledger#${hour}#${hour + 120}`]);
    for (const group of items.values()) {
      expect([...group.values()].reduce((n, set) => n + set.size, 0)).toBeLessThanOrEqual(4000);
    }
  });

  it('writes one item per minute once an hour was found too dense', () => {
    const [hour, minutes] = only(10, 3);
    expect(itemsFor(hour, minutes, true).size).toBe(3);
  });
});
