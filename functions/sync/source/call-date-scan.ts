import { type Cursor, compareCursor, cursorOf } from '../calls/cursor';
import type { CallRow } from '../calls/payload';
import type { QueryOptions, ScanRead, ScanRow, VicidialLog } from './vicidial-log';

/**
 * Reads vicidial_log in call_date order (the one index VICIdial gives it), a chunk of rows at a time,
 * so each row is read about once per run, and hands out finished calls in (end_epoch, uniqueid) order,
 * the order the checkpoint's cursor moves in.
 *
 * Why this works: a call's end is never before its start, so once every row with call_date up to L has
 * been read, every call ending by L has been seen. Finished calls wait in a reorder heap until the scan
 * has passed their end. A scan of the run starts LOOKBACK_SECONDS before the cursor: enough for rows
 * inserted a little after their call_date (a busy or no-answer row back-dated to the dial, a commit held
 * up by a lock). Calls that are still going (inserted at answer or connect, QUEUE / INCALL / DISPO, no
 * end yet) are handed out as **open** when the scan passes their start, and followed by uniqueid from
 * then on, however long they last. Rows that appear later than that are what reconcile is for.
 */
export interface ScanChunk {
  /** Rows read by this chunk's queries (returned ones; the database also read the ineligible ones). */
  readonly read: number;
  /** Finished calls ending at or before `through`, in (end_epoch, uniqueid) order. */
  readonly released: CallRow[];
  /** Every call ending at or before this epoch has been seen (released, open, or before the cursor). */
  readonly through: number;
  /** The scan reached the bound it was given. */
  readonly caughtUp: boolean;
}

export interface ScanOptions {
  readonly lookbackSeconds: number;
  readonly chunkRows: number;
  /**
   * True for a call to hand out in order (finished: final status and an end; the query already left
   * out ineligible ones); false for one the caller now follows by uniqueid instead.
   */
  readonly take: (row: CallRow) => boolean;
}

/** Finished calls ordered by (end_epoch, uniqueid): a binary min-heap. */
export class ReorderHeap {
  private readonly items: CallRow[] = [];

  get size(): number {
    return this.items.length;
  }

  push(row: CallRow): void {
    const items = this.items;
    items.push(row);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (before(items[parent] as CallRow, row)) break;
      items[i] = items[parent] as CallRow;
      i = parent;
    }
    items[i] = row;
  }

  rows(): readonly CallRow[] {
    return this.items;
  }

  /** Removes and returns every row, in no particular order. */
  drain(): CallRow[] {
    return this.items.splice(0);
  }

  /** Removes and returns, in order, every row ending at or before `epoch`. */
  popThrough(epoch: number): CallRow[] {
    const out: CallRow[] = [];
    while (this.items.length > 0 && (this.items[0] as CallRow).end_epoch <= epoch) out.push(this.pop());
    return out;
  }

  private pop(): CallRow {
    const items = this.items;
    const top = items[0] as CallRow;
    const last = items.pop() as CallRow;
    if (items.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        let mRow = last;
        if (l < items.length && before(items[l] as CallRow, mRow)) {
          m = l;
          mRow = items[l] as CallRow;
        }
        if (r < items.length && before(items[r] as CallRow, mRow)) {
          m = r;
          mRow = items[r] as CallRow;
        }
        if (m === i) break;
        items[i] = mRow;
        i = m;
      }
      items[i] = last;
    }
    return top;
  }
}

function before(a: CallRow, b: CallRow): boolean {
  return compareCursor(cursorOf(a), cursorOf(b)) < 0;
}

export class CallDateScan {
  private from: ScanRead['from'];
  private readonly heap = new ReorderHeap();
  /** Followed calls put into the stream by hand: not taken again when the scan reads them. */
  private readonly injected = new Set<string>();
  private seenThrough: number;
  private lastChunkNearDst: boolean;

  constructor(
    private readonly calls: Pick<VicidialLog, 'readScan' | 'offsetChanges'>,
    cursor: Cursor,
    private readonly options: ScanOptions,
    /** A daylight-saving change near the window: local times repeat, so start an hour earlier. */
    dstNear: boolean,
  ) {
    this.from = { epoch: cursor.endEpoch - options.lookbackSeconds - (dstNear ? 3600 : 0) };
    this.seenThrough = cursor.endEpoch - 1;
    this.lastChunkNearDst = dstNear;
  }

  /**
   * A followed call that finished ahead of the cursor, too long ago for this scan to read it: it joins
   * the ordered stream and is handed out when the scan passes its end.
   */
  inject(row: CallRow): void {
    if (this.injected.has(row.uniqueid)) return;
    this.injected.add(row.uniqueid);
    this.heap.push(row);
  }

  /** Whether the last chunk lay near a daylight-saving change (its `through` is an hour short). */
  get nearDst(): boolean {
    return this.lastChunkNearDst;
  }

  /** Every call ending at or before this epoch has been seen. */
  get through(): number {
    return this.seenThrough;
  }

  /** Calls read but waiting for the scan to pass their end. */
  get waiting(): number {
    return this.heap.size;
  }

  /** Finished calls read and waiting for the scan to pass their end, in no particular order. */
  waitingRows(): readonly CallRow[] {
    return this.heap.rows();
  }

  /**
   * At the end of a run: finished calls still waiting whose call_date lies before where the next run's
   * scan will start (they lasted longer than LOOKBACK_SECONDS). They must be followed by uniqueid, or a
   * run that stops while draining a backlog would drop them.
   */
  leftBehind(): CallRow[] {
    const nextStart = this.seenThrough + 1 - this.options.lookbackSeconds;
    return this.heap
      .drain()
      .filter((row) => this.injected.has(row.uniqueid) || (row as ScanRow).cd_epoch < nextStart);
  }

  /** Reads the next chunk up to `bound` (the settle bound of the database clock). */
  async next(bound: number, options?: QueryOptions): Promise<ScanChunk> {
    const limit = this.options.chunkRows;
    const fromEpoch = 'epoch' in this.from ? this.from.epoch : this.seenThrough;
    const rows = await this.calls.readScan({ from: this.from, toEpoch: bound, limit }, options);
    let complete: ScanRow[];
    let through: number;
    let caughtUp = false;
    let read = rows.length;
    if (rows.length < limit) {
      complete = rows;
      through = bound;
      caughtUp = true;
      this.from = { epoch: bound + 1 };
    } else {
      const last = (rows.at(-1) as ScanRow).call_date as string;
      const lastEpoch = (rows.at(-1) as ScanRow).cd_epoch;
      // The last second may continue past the limit: it is read again, whole, next time.
      complete = rows.filter((r) => (r.call_date as string) < last);
      if (complete.length === 0) {
        // One second holds a whole chunk (a burst): read that second entire.
        complete = await this.calls.readScan(
          { from: { local: last, inclusive: true }, toEpoch: bound, limit: undefined },
          options,
        );
        read += complete.length;
        this.from = { local: last, inclusive: false };
        through = lastEpoch;
      } else {
        this.from = { local: last, inclusive: true };
        through = lastEpoch - 1;
      }
    }
    // Local call_date repeats an hour when daylight saving ends: around a change, only calls ending an
    // hour before what was read are certain to have been seen. A chunk spanning weeks (a quiet table)
    // is treated as near one.
    const lastEpoch = rows.length > 0 ? (rows.at(-1) as ScanRow).cd_epoch : bound;
    const dstNear =
      lastEpoch - fromEpoch > 30 * 86_400 ||
      (await this.calls.offsetChanges(fromEpoch - 3600, Math.max(lastEpoch, through) + 3600, options));
    this.lastChunkNearDst = dstNear;
    if (dstNear) through -= 3600;
    through = Math.max(through, this.seenThrough);
    this.seenThrough = through;
    for (const row of complete) {
      if (this.injected.has(row.uniqueid)) continue;
      if (this.options.take(row)) this.heap.push(row);
    }
    return { read, released: this.heap.popThrough(through), through, caughtUp };
  }
}
