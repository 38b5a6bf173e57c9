import { type Cursor, compareCursor, cursorAt } from './cursor';
import { type CallRow, isFinished, isLive } from './payload';

/**
 * R1, the cursor rule: the cursor a run writes never passes a point at or after which a row it read,
 * and has not resolved, has ended or may still end, unless that row is followed by uniqueid. A row
 * that cannot be followed (PENDING_MAX) holds the cursor instead.
 *
 * Why two conditions: the next run takes a row from its scan only if the row's final position lies
 * after the cursor (everything at or before it counts as resolved), and its scan only reads rows whose
 * call_date is at or after LOOKBACK_SECONDS before the cursor. A row read in an in-between state
 * (QUEUE, INCALL, DISPO) may already carry an end that the cursor is about to pass; a finished call
 * still queued when a run stops may have started long before the next scan's first row. Either way
 * only following it by uniqueid, or holding the cursor, keeps it from being dropped. Pure: no I/O.
 */

/** Web, dialer and database clocks may differ by this much before VICIdial itself raises an alarm. */
export const CLOCK_TOLERANCE_SECONDS = 8;

/** A row a run has read and not resolved, as far as the cursor rule is concerned. */
export interface OpenRow {
  readonly uniqueid: string;
  /** UNIX_TIMESTAMP(call_date): the next scan reads it only if it starts at or before this. */
  readonly cdEpoch: number;
  /** The earliest end its final row can carry. */
  readonly earliestEnd: number;
  /** Finished already (queued or waiting in the reorder heap): its end will not move. */
  readonly finished?: boolean;
}

/**
 * How far a finished call still queued may hold the cursor back instead of being followed: it is
 * posted moments later in the same run as a rule, and following it would cost two writes of the
 * follow set for nothing. Beyond this (a call of hours), it is followed. Not at a run's last write:
 * what is still queued then is not posted by this run, and a held cursor would make every next run
 * read again the minutes of rows behind it (bench A, caught up at 2,000 calls/min: 18 rows read per
 * call instead of under 5, for the calls of a few minutes ending as each run stopped).
 */
export const HOLD_FOR_FINISHED_SECONDS = 900;

/**
 * What the rule needs to know of a row read at `dbNow`: a finished call keeps its end; an in-between
 * row with an end may still see it overwritten from another machine's clock; a live one ends no
 * earlier than now, give or take the clocks.
 */
export function openRowOf(
  row: CallRow & { cd_epoch: number },
  transientStatuses: ReadonlySet<string>,
  dbNow: number,
): OpenRow {
  let earliestEnd: number;
  if (isFinished(row, transientStatuses)) {
    return { uniqueid: row.uniqueid, cdEpoch: row.cd_epoch, earliestEnd: row.end_epoch, finished: true };
  }
  if (isLive(row)) earliestEnd = dbNow - CLOCK_TOLERANCE_SECONDS;
  else earliestEnd = row.end_epoch - CLOCK_TOLERANCE_SECONDS;
  return { uniqueid: row.uniqueid, cdEpoch: row.cd_epoch, earliestEnd };
}

/** The furthest cursor that leaves `row` to the next run's scan. */
export function cursorLimit(row: OpenRow, lookbackSeconds: number): Cursor {
  return cursorAt(Math.min(row.cdEpoch + lookbackSeconds, row.earliestEnd));
}

/** Whether a cursor at `cursor` may be written while `row` is neither followed nor resolved. */
export function mayPass(cursor: Cursor, row: OpenRow, lookbackSeconds: number): boolean {
  return compareCursor(cursor, cursorLimit(row, lookbackSeconds)) <= 0;
}

export interface CursorDecision {
  /** The cursor to write: the candidate, or less where a row could not be followed. */
  readonly cursor: Cursor;
  /** Rows that must be followed before `cursor` may be written. */
  readonly follow: readonly OpenRow[];
  /** Rows that needed following but could not be: they hold the cursor. */
  readonly held: readonly OpenRow[];
}

/**
 * Applies the rule to a candidate cursor. `canFollow(row)` is asked, in order, for each row the
 * candidate would pass; it returns false when no more calls can be followed. Never moves the cursor
 * back behind `previous`. `last`: the run's last write, after which nothing queued is posted.
 */
export function decideCursor(
  previous: Cursor,
  candidate: Cursor,
  open: Iterable<OpenRow>,
  lookbackSeconds: number,
  canFollow: (row: OpenRow) => boolean,
  last = false,
): CursorDecision {
  let cursor = candidate;
  const follow: OpenRow[] = [];
  const held: OpenRow[] = [];
  if (compareCursor(candidate, previous) <= 0) return { cursor: previous, follow, held };
  for (const row of open) {
    if (mayPass(candidate, row, lookbackSeconds)) continue;
    const limit = cursorLimit(row, lookbackSeconds);
    if (!last && row.finished && candidate.endEpoch - limit.endEpoch <= HOLD_FOR_FINISHED_SECONDS) {
      if (compareCursor(limit, cursor) < 0) cursor = limit;
      continue;
    }
    if (canFollow(row)) {
      follow.push(row);
      continue;
    }
    held.push(row);
    if (compareCursor(limit, cursor) < 0) cursor = limit;
  }
  if (compareCursor(cursor, previous) < 0) cursor = previous;
  return { cursor, follow, held };
}
