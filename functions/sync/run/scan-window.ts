import { type Cursor, compareCursor, cursorAfter, cursorOf } from '../calls/cursor';
import type { CallRow } from '../calls/payload';
import type { RunControl } from '../run-control';

/**
 * The rows a run has read but not yet checkpointed, in (end_epoch, uniqueid) order, shared by the
 * reader and the workers. The reader appends batches while workers post, so no worker waits at a batch
 * boundary; the checkpoint may only move over the contiguous resolved prefix, so a crash never skips an
 * unresolved call. Calls resolved beyond that prefix are bounded (`maxResolvedAhead`, a batch): they are
 * what the checkpoint records as delivered ahead, and what a crash between two writes may repeat.
 */
export interface Slot {
  /** null for the end of a finished time slice: a position the cursor may move to without a call. */
  readonly row: CallRow | null;
  readonly cursor: Cursor;
  done: boolean;
  /**
   * Whether it counts toward `maxResolvedAhead` once done: a call this run resolved does; one an
   * earlier run resolved (already in the ledger) and a time-slice marker do not, so a prefix held by
   * one failing call never stops the run from reaching calls it can deliver.
   */
  counts: boolean;
}

interface Waiter {
  readonly mayGoOn: () => boolean;
  readonly resume: () => void;
}

export interface WindowLimits {
  /** Resolved calls beyond the prefix at most; workers wait for the prefix past that. */
  readonly maxResolvedAhead: number;
  /** The reader reads again when fewer calls than this wait to be sent. */
  readonly readAheadBelow: number;
  /** Unresolved-or-ahead slots at most: the memory a run holds, whatever the backlog. */
  readonly maxWindow: number;
}

export class ScanWindow {
  private slots: Slot[] = [];
  private head = 0;
  private queue: Slot[] = [];
  private queueHead = 0;
  private resolvedAhead = 0;
  private aheadChanged = false;
  private inputDone = false;
  private prefix: Cursor;
  /** Each waits for its own condition: a wake only resumes the waits it can serve. */
  private waiters: Waiter[] = [];
  private stopHooked = false;
  /** Called when workers would wait on the prefix with nothing in flight that could move it. */
  onStall: (() => void) | undefined;
  private inFlight = 0;
  caughtUp = false;
  limitReached = false;

  constructor(
    start: Cursor,
    private readonly limits: WindowLimits,
  ) {
    this.prefix = start;
  }

  /** `skip`: resolved by an earlier run (the ledger holds it); `send`: for the workers. */
  add(row: CallRow, state: 'skip' | 'send'): void {
    const slot: Slot = { row, cursor: cursorOf(row), done: state === 'skip', counts: state === 'send' };
    this.slots.push(slot);
    if (slot.done) {
      this.settle();
    } else {
      this.queue.push(slot);
    }
  }

  /** Every call ending at or before `through` has been read: the cursor may move past it. */
  readThrough(through: number): void {
    const marker = cursorAfter(through);
    const last = this.slots.length > this.head ? (this.slots.at(-1) as Slot).cursor : this.prefix;
    if (compareCursor(marker, last) > 0) {
      this.slots.push({ row: null, cursor: marker, done: true, counts: false });
      this.settle();
    }
    this.wake();
  }

  /** No more rows will come (caught up, a limit, or the run stopped). */
  endOfInput(): void {
    this.inputDone = true;
    this.wake();
  }

  /** `counts`: false for a call found resolved already (by the ledger or another path of this run). */
  resolve(slot: Slot, counts = true): void {
    if (slot.done) return;
    slot.done = true;
    slot.counts = counts;
    if (counts) this.resolvedAhead++;
    this.aheadChanged = true;
    this.settle();
    this.wake();
  }

  /** The next call to send; undefined when there is none left or the run stopped. */
  async next(control: RunControl): Promise<Slot | undefined> {
    for (;;) {
      if (control.stopped) return undefined;
      if (this.mayTake()) {
        const slot = this.queue[this.queueHead++] as Slot;
        if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
          this.queue = this.queue.slice(this.queueHead);
          this.queueHead = 0;
        }
        this.inFlight++;
        // The reader waits for the queue to run low.
        if (this.queue.length - this.queueHead < this.limits.readAheadBelow) this.wake();
        return slot;
      }
      if (this.drained()) return undefined;
      if (this.stalled()) this.onStall?.();
      await this.wait(control, this.workerMayGoOn);
    }
  }

  /** A queued call a worker may take: within the calls allowed resolved ahead of the prefix. */
  private mayTake(): boolean {
    return this.resolvedAhead < this.limits.maxResolvedAhead && this.queueHead < this.queue.length;
  }

  /** Nothing queued and nothing more to come. */
  private drained(): boolean {
    return this.inputDone && this.queueHead >= this.queue.length;
  }

  /** Workers wait on the prefix with nothing in flight that could move it. */
  private stalled(): boolean {
    return this.resolvedAhead >= this.limits.maxResolvedAhead && this.inFlight === 0;
  }

  /** What ends a worker's wait in `next`: a call it may take, the end of input, or a stall to report. */
  private readonly workerMayGoOn = (): boolean => this.mayTake() || this.drained() || this.stalled();

  /** The reader waits while enough calls are queued or the window is full. */
  private readonly readerWaits = (): boolean =>
    this.queue.length - this.queueHead >= this.limits.readAheadBelow ||
    this.slots.length - this.head >= this.limits.maxWindow;

  private readonly readerMayGoOn = (): boolean => !this.readerWaits();

  /** A worker is done with the slot it took (resolved or not). */
  release(): void {
    this.inFlight--;
    this.wake();
  }

  /** Resolves when the reader should read again. */
  async wantMore(control: RunControl): Promise<void> {
    while (!control.stopped && this.readerWaits()) {
      await this.wait(control, this.readerMayGoOn);
    }
  }

  /** The position the checkpoint may move to: the last slot of the resolved prefix. */
  prefixCursor(): Cursor {
    return this.prefix;
  }

  /** Rows read and not resolved yet: queued, in flight, or failed and waiting to be parked. */
  *unresolvedRows(): Generator<CallRow> {
    for (let i = this.head; i < this.slots.length; i++) {
      const slot = this.slots[i] as Slot;
      if (!slot.done && slot.row) yield slot.row;
    }
  }

  /** Rows resolved beyond the prefix: delivered (or held) already, to be skipped after a stop. */
  resolvedBeyondPrefix(): CallRow[] {
    const out: CallRow[] = [];
    for (let i = this.head; i < this.slots.length; i++) {
      const slot = this.slots[i] as Slot;
      if (slot.done && slot.row) out.push(slot.row);
    }
    return out;
  }

  /** Whether a call was resolved beyond the prefix since the last call of this. */
  takeAheadChanged(): boolean {
    const changed = this.aheadChanged;
    this.aheadChanged = false;
    return changed;
  }

  /** Moves the prefix over resolved slots and drops them: memory stays bounded by the window. */
  private settle(): void {
    while (this.head < this.slots.length && (this.slots[this.head] as Slot).done) {
      const slot = this.slots[this.head] as Slot;
      this.prefix = slot.cursor;
      this.head++;
      if (slot.counts) this.resolvedAhead--;
    }
    if (this.head > 1024 && this.head * 2 > this.slots.length) {
      this.slots = this.slots.slice(this.head);
      this.head = 0;
    }
  }

  private wait(control: RunControl, mayGoOn: () => boolean): Promise<void> {
    if (!this.stopHooked) {
      // One hook for the run's stop: every wait ends with it (a wait per call would cost a listener each).
      this.stopHooked = true;
      control.onStop(() => this.wakeAll());
    }
    if (control.stopped) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ mayGoOn, resume: resolve }));
  }

  /** Something changed: resumes the waits whose condition now holds; the others keep waiting. */
  private wake(): void {
    const waiters = this.waiters;
    if (waiters.length === 0) return;
    let kept = 0;
    for (const w of waiters) {
      if (w.mayGoOn()) w.resume();
      else waiters[kept++] = w;
    }
    waiters.length = kept;
  }

  private wakeAll(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resume();
  }
}
