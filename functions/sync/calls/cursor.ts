/**
 * Keyset cursor arithmetic over vicidial_log's (end_epoch, uniqueid) order.
 *
 * A cursor names the last position that is fully resolved: every call ordered at or before it has been
 * delivered, dead-lettered or parked as pending. `uniqueid: ''` means "nothing at `endEpoch` yet", which
 * is how a finished time slice and START_FROM are expressed without a sentinel uniqueid that the
 * database's collation might order differently. Epochs are integers throughout: no local-time string ever
 * takes part in the cursor.
 */
export interface Cursor {
  readonly endEpoch: number;
  readonly uniqueid: string;
}

/** A cursor that starts at `epoch`: calls ending at or after it are still to be read. */
export function cursorAt(epoch: number): Cursor {
  return { endEpoch: epoch, uniqueid: '' };
}

/** Position after every call ending at or before `sliceEnd`. */
export function cursorAfter(sliceEnd: number): Cursor {
  return cursorAt(sliceEnd + 1);
}

export function cursorOf(row: { end_epoch: number; uniqueid: string }): Cursor {
  return { endEpoch: row.end_epoch, uniqueid: row.uniqueid };
}

/**
 * Orders positions like `ORDER BY end_epoch, uniqueid`. uniqueids are Asterisk's digits-and-dot strings,
 * for which every MySQL collation agrees with code-unit order, so this matches the database's order.
 */
export function compareCursor(a: Cursor, b: Cursor): number {
  if (a.endEpoch !== b.endEpoch) return a.endEpoch < b.endEpoch ? -1 : 1;
  if (a.uniqueid === b.uniqueid) return 0;
  return a.uniqueid < b.uniqueid ? -1 : 1;
}

export function sameCursor(a: Cursor, b: Cursor): boolean {
  return compareCursor(a, b) === 0;
}

/**
 * Seconds between the database clock and the cursor; negative when the cursor is ahead of the clock
 * (a reset into the future, a clock that jumped back): then no call is read until the clock catches up,
 * which must show, not read as "no lag".
 */
export function lagSeconds(cursor: Cursor, nowEpoch: number): number {
  // A cursor at (E, '') has everything before E done; at (E, uid) part of E is done.
  const doneThrough = cursor.uniqueid === '' ? cursor.endEpoch - 1 : cursor.endEpoch;
  return nowEpoch - doneThrough;
}
