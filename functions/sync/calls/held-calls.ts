/**
 * Calls the cursor has moved past without delivering them, kept in the checkpoint item:
 * - **pending**: seen with a transient status (INCALL, DISPO, QUEUE): re-read by uniqueid until the
 *   final disposition arrives (or they are too old), capped by PENDING_MAX;
 * - **parked**: failed every attempt of a run while the API accepted other calls (a poison payload, a
 *   WAF rule): retried at the start of later runs, dead-lettered after RETRY_MAX_RUNS such runs, capped
 *   by PARKED_MAX.
 * Two separate caps, so poison calls never crowd out late dispositions. Pure: no I/O.
 */

export interface PendingCall {
  readonly uniqueid: string;
  readonly endEpoch: number;
  /** Database epoch when it was first held. */
  readonly firstSeen: number;
}

export interface ParkedCall {
  readonly uniqueid: string;
  readonly endEpoch: number;
  /** Runs in which it failed while the API accepted other calls. */
  readonly failures: number;
  /** Epoch seconds of its first failure. */
  readonly firstFailedAt: number;
  /** HTTP status of its last failed attempt (null: no answer, a network error or timeout). */
  readonly lastStatus: number | null;
}

export interface HeldLimits {
  readonly pendingMax: number;
  readonly parkedMax: number;
  readonly retryMaxRuns: number;
}

/** A parked call's failure in this run, with the answer a dead letter would keep. */
export interface RunFailure {
  readonly status: number | null;
  readonly error: string;
}

export class HeldCalls {
  private readonly pending: Map<string, PendingCall>;
  private readonly parked: Map<string, ParkedCall>;

  constructor(
    pending: readonly PendingCall[],
    parked: readonly ParkedCall[],
    private readonly limits: HeldLimits,
  ) {
    this.pending = new Map(pending.map((p) => [p.uniqueid, p]));
    this.parked = new Map(parked.map((p) => [p.uniqueid, p]));
  }

  isPending(uniqueid: string): boolean {
    return this.pending.has(uniqueid);
  }

  isParked(uniqueid: string): boolean {
    return this.parked.has(uniqueid);
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  get parkedCount(): number {
    return this.parked.size;
  }

  pendingCalls(): PendingCall[] {
    return [...this.pending.values()];
  }

  parkedCalls(): ParkedCall[] {
    return [...this.parked.values()];
  }

  /** Holds a call until its disposition arrives; false when PENDING_MAX is reached. */
  hold(call: PendingCall): boolean {
    if (this.pending.has(call.uniqueid)) return true;
    if (this.pending.size >= this.limits.pendingMax) return false;
    this.pending.set(call.uniqueid, call);
    return true;
  }

  release(uniqueid: string): void {
    this.pending.delete(uniqueid);
  }

  /** Parks a call that failed this run; false when PARKED_MAX is reached (the run must stop). */
  park(call: { uniqueid: string; endEpoch: number }, failure: RunFailure, nowEpoch: number): boolean {
    if (this.parked.has(call.uniqueid)) return true;
    if (this.parked.size >= this.limits.parkedMax) return false;
    this.pending.delete(call.uniqueid);
    this.parked.set(call.uniqueid, {
      uniqueid: call.uniqueid,
      endEpoch: call.endEpoch,
      // Counted at the end of the run, once it is known whether the API accepted other calls.
      failures: 0,
      firstFailedAt: nowEpoch,
      lastStatus: failure.status,
    });
    return true;
  }

  unpark(uniqueid: string): void {
    this.parked.delete(uniqueid);
  }

  /**
   * At the end of a run: each parked call that failed in it counts one more failed run if the API
   * accepted other calls in that run (an outage is nobody's verdict on one call). Returns the calls that
   * reached RETRY_MAX_RUNS, removed from the set: they become dead letters with their last answer.
   */
  settleRun(failed: ReadonlyMap<string, RunFailure>, apiAcceptedOthers: boolean): ParkedCall[] {
    const exhausted: ParkedCall[] = [];
    for (const [uniqueid, failure] of failed) {
      const call = this.parked.get(uniqueid);
      if (!call) continue;
      const updated: ParkedCall = {
        ...call,
        failures: call.failures + (apiAcceptedOthers ? 1 : 0),
        lastStatus: failure.status,
      };
      if (updated.failures >= this.limits.retryMaxRuns) {
        this.parked.delete(uniqueid);
        exhausted.push(updated);
      } else {
        this.parked.set(uniqueid, updated);
      }
    }
    return exhausted;
  }
}
