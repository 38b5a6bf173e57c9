import type { CallRow } from '../calls/payload';
import type { ResendRange } from '../state/checkpoint-item';

/**
 * R3, one gate before every post. Every path that posts a call (the scan, followed calls, parked
 * calls, repairs, an explicit re-send; dead-letter replay asks the same question of the ledger) asks
 * it first, and a call it has seen resolved is not posted again: the real API stores every POST and
 * counts the DID's usage again, so a repeat is a defect.
 *
 * What it knows: the durable ledger's record of resolved calls (loaded by the run for the range its
 * scan reads, and looked up for held calls before they are sent) and every call this run has taken.
 * A re-send range (an operator's `reset --resend`) lets a call the ledger holds through once, counted.
 * Pure: no I/O.
 */
export type Admission =
  /** Post it. */
  | 'post'
  /** Post it again, on the operator's explicit word; counted and logged. */
  | 'resend'
  /** The ledger (or this run) has it resolved already. */
  | 'resolved'
  /** Another path of this run has taken it. */
  | 'taken';

export type { ResendRange } from '../state/checkpoint-item';

export class PostGate {
  private readonly resolved = new Set<string>();
  private readonly taken = new Set<string>();
  /** Calls of the re-send range already re-sent by this run. */
  private readonly resent = new Set<string>();

  private resend: ResendRange | undefined;

  /** The operator's re-send range, from the checkpoint a reset wrote. */
  allowResend(range: ResendRange | undefined): void {
    this.resend = range;
  }

  /** The ledger says these calls are resolved (delivered or dead-lettered). */
  learn(uniqueids: Iterable<string>): void {
    for (const uid of uniqueids) this.resolved.add(uid);
  }

  /** Known resolved: by the ledger, or by this run. */
  isResolved(uniqueid: string): boolean {
    return this.resolved.has(uniqueid);
  }

  /** Asked once per post: a call admitted is taken until `settle`. */
  admit(row: Pick<CallRow, 'uniqueid' | 'end_epoch'>): Admission {
    const uid = row.uniqueid;
    if (this.taken.has(uid)) return 'taken';
    if (this.resolved.has(uid)) {
      if (
        !this.resend ||
        this.resent.has(uid) ||
        row.end_epoch < this.resend.fromEpoch ||
        row.end_epoch >= this.resend.toEpoch
      ) {
        return 'resolved';
      }
      this.resent.add(uid);
      this.taken.add(uid);
      return 'resend';
    }
    this.taken.add(uid);
    return 'post';
  }

  /** The call was delivered or dead-lettered: it is resolved for every path from now on. */
  settle(uniqueid: string): void {
    this.resolved.add(uniqueid);
  }
}
