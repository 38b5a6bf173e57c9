import { type Cursor, cursorAt } from '../calls/cursor';
import { decideCursor, mayPass, type OpenRow, openRowOf } from '../calls/cursor-rule';
import type { HeldCalls, ParkedCall, PendingCall, RunFailure } from '../calls/held-calls';
import type { CallRow } from '../calls/payload';
import type { RunControl } from '../run-control';
import type { SyncSettings } from '../settings';
import type { ScanRow } from '../source/vicidial-log';
import type { RunDatabase } from './database';
import type { PostGate } from './post-gate';
import type { RunLog } from './run-log';

/**
 * The calls the cursor may pass without having delivered them, and R1, the cursor rule, which decides
 * when it may:
 * - **followed** calls, read in an in-between state (or finished and not yet posted when a cursor
 *   would pass them): re-read by uniqueid every run until they are final and delivered;
 * - **parked** calls, which failed every attempt while the API took others;
 * - **watched** rows: read in an in-between state and left to the next run's scan, as long as every
 *   cursor written leaves them to it.
 * Owns these sets and whether they changed since the last checkpoint write.
 */
export class FollowSet {
  private readonly watched = new Map<string, OpenRow>();
  private changed = false;
  private fullLogged = false;

  constructor(
    private readonly held: HeldCalls,
    private readonly s: SyncSettings,
    private readonly gate: PostGate,
    private readonly db: RunDatabase,
    private readonly control: RunControl,
    private readonly log: RunLog,
  ) {}

  isFollowed(uniqueid: string): boolean {
    return this.held.isPending(uniqueid);
  }

  isParked(uniqueid: string): boolean {
    return this.held.isParked(uniqueid);
  }

  get followedCount(): number {
    return this.held.pendingCount;
  }

  get parkedCount(): number {
    return this.held.parkedCount;
  }

  followedCalls(): PendingCall[] {
    return this.held.pendingCalls();
  }

  parkedCalls(): ParkedCall[] {
    return this.held.parkedCalls();
  }

  /** Something the checkpoint item holds changed; cleared by the write that stores it. */
  takeChanged(): boolean {
    const changed = this.changed;
    this.changed = false;
    return changed;
  }

  /** A write failed: what it carried is still to be written. */
  markChanged(): void {
    this.changed = true;
  }

  /**
   * Follows a call by uniqueid until it is final and delivered. False when PENDING_MAX calls are
   * followed already: then the cursor rule holds the cursor before it instead.
   */
  follow(row: { uniqueid: string; end_epoch: number | null }): boolean {
    if (this.held.isPending(row.uniqueid) || this.held.isParked(row.uniqueid)) return true;
    if (!this.held.hold({ uniqueid: row.uniqueid, endEpoch: row.end_epoch ?? 0, firstSeen: this.db.now })) {
      return false;
    }
    this.changed = true;
    this.watched.delete(row.uniqueid);
    this.log.log('info', 'pending', { uniqueid: row.uniqueid, endEpoch: row.end_epoch ?? null });
    return true;
  }

  unfollow(uniqueid: string): boolean {
    if (!this.held.isPending(uniqueid)) return false;
    this.held.release(uniqueid);
    this.changed = true;
    return true;
  }

  park(call: { uniqueid: string; endEpoch: number }, failure: RunFailure, nowEpoch: number): boolean {
    if (!this.held.park(call, failure, nowEpoch)) return false;
    this.changed = true;
    return true;
  }

  unpark(uniqueid: string): boolean {
    if (!this.held.isParked(uniqueid)) return false;
    this.held.unpark(uniqueid);
    this.changed = true;
    return true;
  }

  /** Counts a run's failures of parked calls; returns those that reached RETRY_MAX_RUNS, let go. */
  settleParked(failed: ReadonlyMap<string, RunFailure>, apiAcceptedOthers: boolean): ParkedCall[] {
    const exhausted = this.held.settleRun(failed, apiAcceptedOthers);
    // Failure counts changed, or calls left the set: either way the checkpoint item must say so.
    if (failed.size > 0) this.changed = true;
    return exhausted;
  }

  /**
   * A row the scan read in an in-between state (QUEUE, INCALL, DISPO, no status yet). Followed now if
   * even the furthest cursor this run can write would pass it; otherwise watched, and the rule is
   * applied again at every checkpoint write. A call already resolved (read again in a daylight-saving
   * hour, or sent as it stood after PENDING_MAX_AGE_SECONDS) is never followed again.
   */
  sawUnfinished(row: ScanRow, nearDst: boolean): void {
    const uid = row.uniqueid;
    if (this.gate.isResolved(uid) || this.held.isPending(uid) || this.held.isParked(uid)) return;
    const open = openRowOf(row, this.s.transientStatuses, this.db.now);
    // The furthest cursor this run can write: the settle bound, an hour less near a daylight-saving
    // change (local call_date repeats there, so the scan vouches only for an hour before what it read).
    const furthest = cursorAt(this.db.now - this.s.settleSeconds + 1 - (nearDst ? 3600 : 0));
    if (!mayPass(furthest, open, this.s.lookbackSeconds) && this.follow(row)) return;
    this.watched.set(uid, open);
  }

  /** A watched row came back finished: the scan hands it out like any call. */
  sawFinished(uniqueid: string): void {
    this.watched.delete(uniqueid);
  }

  /**
   * R1, enforced here and nowhere else: every row this run read and has not resolved (watched
   * in-between rows, and `unresolved`: finished calls waiting in the reorder heap, queued or in flight)
   * is followed before a cursor that would pass it is written; one that cannot be followed
   * (PENDING_MAX) holds the cursor, and the run stops `pending_full`. During the run a finished call
   * still queued may hold it instead (HOLD_FOR_FINISHED_SECONDS); at the `last` write it is followed.
   */
  decide(previous: Cursor, candidate: Cursor, unresolved: Iterable<CallRow>, last: boolean): Cursor {
    const decision = decideCursor(
      previous,
      candidate,
      this.openRows(unresolved),
      this.s.lookbackSeconds,
      (o) => this.follow({ uniqueid: o.uniqueid, end_epoch: o.earliestEnd }),
      last,
    );
    if (decision.held.length > 0) {
      this.control.stop(
        'pending_full',
        `${this.s.pendingMax} calls are followed (PENDING_MAX): the cursor waits before ${decision.held.length} call(s) it could not follow`,
      );
      if (!this.fullLogged) {
        this.fullLogged = true;
        this.log.log('error', 'pending_full', {
          uniqueid: (decision.held[0] as OpenRow).uniqueid,
          pendingMax: this.s.pendingMax,
          notFollowed: decision.held.length,
          cursorHeldAt: decision.cursor.endEpoch,
        });
      }
    }
    return decision.cursor;
  }

  private *openRows(unresolved: Iterable<CallRow>): Generator<OpenRow> {
    const open = (uid: string) =>
      !this.held.isPending(uid) && !this.held.isParked(uid) && !this.gate.isResolved(uid);
    for (const o of this.watched.values()) if (open(o.uniqueid)) yield o;
    for (const row of unresolved) {
      // A row without its call_date epoch did not come from this run's scan: it is followed already.
      if ('cd_epoch' in row && open(row.uniqueid)) {
        yield {
          uniqueid: row.uniqueid,
          cdEpoch: (row as ScanRow).cd_epoch,
          earliestEnd: row.end_epoch,
          finished: true,
        };
      }
    }
  }
}
