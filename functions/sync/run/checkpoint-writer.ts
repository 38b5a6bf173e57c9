import { type Cursor, lagSeconds, sameCursor } from '../calls/cursor';
import { isoOf } from '../calls/time';
import { describeError } from '../log';
import type { RunControl } from '../run-control';
import type { SyncSettings } from '../settings';
import type { CallDateScan } from '../source/call-date-scan';
import type { AdoptRange, HeldState, Lease } from '../state/checkpoint-store';
import { type FollowedLogState, type FollowedWrite, planFollowedWrite } from '../state/followed-log';
import type { LedgerEntry, LedgerOutcome } from '../state/ledger';
import type { RunDatabase } from './database';
import type { RunEffects } from './effects';
import type { FollowSet } from './follow-set';
import type { PostGate } from './post-gate';
import type { RunLog } from './run-log';
import type { ScanWindow } from './scan-window';
import { stopFor } from './stop';
import { FINAL_WRITE_MS } from './types';

/**
 * The run's checkpoint: where the cursor may go, and writing it.
 *
 * - **R2, the ledger first.** Every call resolved (delivered, dead-lettered) waits here for its ledger
 *   entry; the entries go to the ledger before the checkpoint write that could pass them, and stay
 *   queued until a ledger write of them succeeds. After LEDGER_FAILURES_MAX failed ledger writes in a
 *   row the run stops with its cursor behind them.
 * - **R6, the crash bound.** Calls posted (or being posted) and not yet in the ledger never exceed
 *   BATCH_SIZE: a post waits for a write first (`reserve`).
 * - The cursor written is the stream's resolved prefix, as far as the follow set's cursor rule (R1)
 *   lets it go; writes are serialized and each is conditioned on the cursor the previous one wrote.
 * - Between writes the lease is renewed when nothing else renewed it.
 */
export interface PendingWrite {
  readonly previous: Cursor;
  /** The followed calls' items to put first, when the set changed. */
  readonly followed: FollowedWrite | undefined;
  readonly next: Cursor;
  readonly held: HeldState;
  /** Calls resolved-but-unwritten this write covers (the crash bound). */
  readonly covers: number;
  readonly ledger: readonly LedgerEntry[];
  readonly repairs: readonly string[];
}

/** Ledger writes that may fail in a row before the run stops with its cursor behind them. */
const LEDGER_FAILURES_MAX = 2;

export interface WriterStart {
  readonly lease: Lease;
  readonly cursor: Cursor;
  /** The followed calls as their items hold them. */
  readonly followed: FollowedLogState;
  readonly frontier: number;
  /** The end of the operator's re-send range, until the cursor passes it. */
  readonly resendTo: number | undefined;
}

export class CheckpointWriter {
  private cursorNow: Cursor;
  private frontier: number;
  private followedLog: FollowedLogState;
  private readonly queued = new Map<string, { endEpoch: number; outcome: LedgerOutcome }>();
  private readonly repairsDone: string[] = [];
  private adopt: AdoptRange | null | undefined;
  /** Calls resolved since the last checkpoint write. */
  private unwritten = 0;
  /** Posts started and not yet resolved. */
  private posting = 0;
  /** Workers waiting for a post to end (posts alone fill BATCH_SIZE). */
  private postEnded: (() => void)[] = [];
  private ledgerFailures = 0;
  private window: ScanWindow | undefined;
  private scanner: CallDateScan | undefined;
  private queuedWrite: Promise<void> | undefined;
  /** A write is queued or under way. */
  private writing = false;
  private writes: Promise<void> = Promise.resolve();
  private lastWriteAt: number;
  private timers: ReturnType<typeof setInterval>[] = [];
  /** Checkpoint writes made (the final one included). */
  checkpoints = 0;

  constructor(
    private readonly effects: RunEffects,
    private readonly start: WriterStart,
    private readonly follow: FollowSet,
    private readonly gate: PostGate,
    private readonly s: SyncSettings,
    private readonly db: RunDatabase,
    private readonly control: RunControl,
    private readonly log: RunLog,
    private readonly now: () => number,
  ) {
    this.cursorNow = start.cursor;
    this.frontier = start.frontier;
    this.followedLog = start.followed;
    this.lastWriteAt = now();
  }

  get cursor(): Cursor {
    return this.cursorNow;
  }

  /** The stream's window and scan: where the cursor candidate and the unresolved rows come from. */
  track(window: ScanWindow, scanner: CallDateScan): void {
    this.window = window;
    this.scanner = scanner;
  }

  /** A call was delivered or dead-lettered: it waits for its ledger entry, and is never posted again. */
  resolved(uniqueid: string, endEpoch: number, outcome: LedgerOutcome): void {
    this.gate.settle(uniqueid);
    if (!this.effects.dryRun) this.queued.set(uniqueid, { endEpoch, outcome });
  }

  /** One more call resolved since the last write (what a crash would repeat). */
  countResolved(): void {
    this.unwritten++;
  }

  repairDone(uniqueid: string): void {
    this.repairsDone.push(uniqueid);
  }

  /** The start-up read's progress, written with the next checkpoint. */
  adoptProgress(range: AdoptRange | null): void {
    this.adopt = range;
  }

  /** R6: waits until one more post keeps the calls not in the ledger within BATCH_SIZE. */
  async reserve(): Promise<boolean> {
    // A write started a little before the bound usually lands before any worker reaches it: the bound
    // holds without a pause at every batch.
    // One such write at a time: behind it, the calls resolved meanwhile wait for the next one.
    if (!this.writing && this.unwritten + this.posting >= this.s.batchSize - this.s.concurrency) {
      void this.flush();
    }
    while (this.unwritten + this.posting >= this.s.batchSize && !this.control.stopped) {
      // Calls resolved and not yet written: a write frees room. Only posts in flight (CONCURRENCY above
      // BATCH_SIZE): one of them ending does; waiting on a write that has nothing to write would spin.
      if (this.unwritten > 0) await this.flush();
      else await new Promise<void>((resolve) => this.postEnded.push(resolve));
    }
    if (this.control.stopped) return false;
    this.posting++;
    return true;
  }

  unreserve(): void {
    this.posting--;
    if (this.postEnded.length === 0) return;
    const waiting = this.postEnded;
    this.postEnded = [];
    for (const wake of waiting) wake();
  }

  /** Delivered calls whose ledger entries were never written: the next run posts them again. */
  unrecorded(): number {
    let n = 0;
    for (const q of this.queued.values()) if (q.outcome === 'delivered') n++;
    return n;
  }

  /** Periodic writes, and lease renewal through long waits. */
  startTimers(): void {
    this.timers = [
      setInterval(() => void this.flush(), this.s.checkpointIntervalMs),
      setInterval(() => this.renewIfIdle(), Math.floor((this.s.leaseSeconds * 1000) / 3)),
    ];
  }

  async stopTimers(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await this.writes;
  }

  /** Queues a conditional checkpoint write; a refused one stops the run (the lease was lost). */
  flush(): Promise<void> {
    // Workers that reach the batch bound together share one queued write instead of each adding one.
    if (this.queuedWrite) return this.queuedWrite;
    this.writing = true;
    this.queuedWrite = this.writes.then(async () => {
      this.queuedWrite = undefined;
      try {
        await this.writeOnce();
      } finally {
        this.writing = this.queuedWrite !== undefined;
      }
    });
    this.writes = this.queuedWrite;
    return this.queuedWrite;
  }

  /** One conditional checkpoint write, the ledger and the followed calls' items first. */
  private async writeOnce(): Promise<void> {
    if (this.control.reason === 'lease_lost' || this.control.reason === 'checkpoint_error') return;
    const write = this.pending(false);
    if (!write) return;
    if (!(await this.recordLedger(write))) return;
    try {
      await this.writeFollowed(write);
      await this.effects.advance(this.start.lease, write.previous, write.next, write.held, this.timeLeft());
    } catch (error) {
      this.follow.markChanged();
      stopFor(error, this.control, this.log);
      return;
    }
    this.checkpoints++;
    this.lastWriteAt = this.now();
    this.written(write);
    await this.dropRepairs(write);
    this.logCheckpoint(write, false);
  }

  /** The last write, ledger first, to go with the lease release; undefined when it must not move. */
  async finalWrite(): Promise<PendingWrite | undefined> {
    if (this.control.reason === 'lease_lost') return undefined;
    const write = this.pending(true);
    // Without their ledger entries neither the cursor nor the follow set may move past those calls.
    if (!write || !(await this.recordLedger(write))) return undefined;
    try {
      await this.writeFollowed(write);
    } catch (error) {
      stopFor(error, this.control, this.log);
      return undefined;
    }
    this.written(write);
    return write;
  }

  /** The release carried the final write. */
  async finalWritten(write: PendingWrite): Promise<void> {
    this.checkpoints++;
    await this.dropRepairs(write);
    this.logCheckpoint(write, true);
  }

  /** What the next checkpoint write would store, or undefined when nothing changed. `last`: the run's. */
  private pending(last: boolean): PendingWrite | undefined {
    const previous = this.cursorNow;
    const covers = this.unwritten;
    const candidate = this.window?.prefixCursor() ?? previous;
    const unresolved = [...(this.scanner?.waitingRows() ?? []), ...(this.window?.unresolvedRows() ?? [])];
    const next = this.follow.decide(previous, candidate, unresolved, last);
    let frontier = this.frontier > next.endEpoch ? this.frontier : 0;
    for (const row of this.window?.resolvedBeyondPrefix() ?? []) frontier = Math.max(frontier, row.end_epoch);
    const aheadChanged = this.window?.takeAheadChanged() ?? false;
    const heldChanged = this.follow.takeChanged();
    const followed = planFollowedWrite(this.followedLog, this.follow.followedCalls(), this.start.lease.fence);
    if (
      sameCursor(previous, next) &&
      !heldChanged &&
      !aheadChanged &&
      this.adopt === undefined &&
      this.queued.size === 0 &&
      this.repairsDone.length === 0 &&
      frontier === this.frontier
    ) {
      return undefined;
    }
    const resendTo = this.start.resendTo;
    return {
      previous,
      next,
      followed,
      held: {
        // The followed calls live in items of their own; the checkpoint names them when they change.
        pending: [],
        ...(followed ? { followedItems: followed.next.items } : {}),
        parked: this.follow.parkedCalls(),
        frontier,
        ...(resendTo !== undefined && next.endEpoch >= resendTo ? { resendDone: true } : {}),
        ...(this.adopt !== undefined ? { adopt: this.adopt } : {}),
      },
      covers,
      ledger: [...this.queued].map(([uniqueid, q]) => ({ uniqueid, ...q })),
      repairs: [...this.repairsDone],
    };
  }

  /** R2. False: not written (the entries stay queued). */
  private async recordLedger(write: PendingWrite): Promise<boolean> {
    if (write.ledger.length === 0) return true;
    try {
      await this.effects.recordLedger(write.ledger, this.timeLeft());
      this.ledgerFailures = 0;
      for (const e of write.ledger) {
        const q = this.queued.get(e.uniqueid);
        if (q && q.endEpoch === e.endEpoch && q.outcome === e.outcome) this.queued.delete(e.uniqueid);
      }
      return true;
    } catch (error) {
      this.follow.markChanged();
      this.ledgerFailures++;
      this.log.log('error', 'ledger_write_failed', {
        calls: write.ledger.length,
        failuresInRow: this.ledgerFailures,
        ...describeError(error),
      });
      if (this.ledgerFailures >= LEDGER_FAILURES_MAX) {
        this.control.stop('checkpoint_error', `ledger write failed: ${(error as Error).message}`);
      }
      return false;
    }
  }

  /** A write succeeded: what it covered is durable, the rest stays queued for the next one. */
  /** The followed set's items first: the checkpoint write names them. */
  private async writeFollowed(write: PendingWrite): Promise<void> {
    if (write.followed) await this.effects.writeFollowed(write.followed.puts, this.timeLeft());
  }

  private written(write: PendingWrite): void {
    if (write.followed) {
      this.followedLog = write.followed.next;
      const drop = write.followed.drop;
      if (drop.length > 0) void this.effects.dropFollowed(drop).catch(() => undefined);
    }
    if (write.held.adopt !== undefined && write.held.adopt === this.adopt) this.adopt = undefined;
    this.cursorNow = write.next;
    this.frontier = write.held.frontier;
    this.unwritten -= write.covers;
    this.repairsDone.splice(0, write.repairs.length);
  }

  /** Repair items go once the ledger holds their calls. */
  private async dropRepairs(write: PendingWrite): Promise<void> {
    for (const uniqueid of write.repairs) {
      await this.effects
        .deleteRepair(uniqueid, FINAL_WRITE_MS)
        .catch((error) =>
          this.log.log('warn', 'repair_delete_failed', { uniqueid, ...describeError(error) }),
        );
    }
  }

  private logCheckpoint(write: PendingWrite, final: boolean): void {
    this.log.log('info', 'checkpoint', {
      cursorEpoch: write.next.endEpoch,
      cursorUid: write.next.uniqueid,
      cursorTime: isoOf(write.next.endEpoch),
      pending: write.held.pending.length,
      parked: write.held.parked.length,
      frontier: write.held.frontier,
      lagSeconds: lagSeconds(write.next, this.db.now),
      final,
      dryRun: this.effects.dryRun,
    });
  }

  /** Keeps the lease alive through long waits (API retries) when no checkpoint write has renewed it. */
  private renewIfIdle(): void {
    const leaseMs = this.s.leaseSeconds * 1000;
    if (this.now() - this.lastWriteAt < leaseMs / 3) return;
    this.writes = this.writes.then(async () => {
      if (this.control.reason === 'lease_lost') return;
      try {
        await this.effects.renew(this.start.lease);
        this.lastWriteAt = this.now();
      } catch (error) {
        stopFor(error, this.control, this.log);
      }
    });
  }

  private timeLeft(): number {
    return Math.max(FINAL_WRITE_MS, this.control.timeLeft());
  }
}
