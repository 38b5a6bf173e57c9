import type { RunFailure } from '../calls/held-calls';
import { type CallResultPayload, type CallRow, payloadProblem, toPayload } from '../calls/payload';
import type { DeliveryResult } from '../delivery/call-delivery';
import { OutageBreaker } from '../delivery/outage-breaker';
import { describeError } from '../log';
import { isApiFault, type RunControl } from '../run-control';
import type { SyncSettings } from '../settings';
import type { CheckpointWriter } from './checkpoint-writer';
import type { RunDatabase } from './database';
import type { RunEffects } from './effects';
import type { FollowSet } from './follow-set';
import type { PostGate } from './post-gate';
import { callFields, type RunLog } from './run-log';
import { FINAL_WRITE_MS, type Source } from './types';

/**
 * One call's fate, whichever path brought it: the gate first (R3), then the post, then what its answer
 * means. Delivered and dead-lettered calls are resolved; a fresh call that failed every attempt is a
 * suspect, parked once the API is seen to take other calls (an outage must not fill the parked set);
 * a streak of failures stops the run as an outage. Owns the run's delivery counters, its suspects and
 * the parked calls that failed again.
 */
export type CallResult = 'resolved' | 'skipped' | 'failed' | 'unresolved';

interface Suspect {
  readonly uniqueid: string;
  readonly endEpoch: number;
  readonly failure: RunFailure;
  /** Lets the stream's window move past it once it is parked. */
  readonly onParked?: () => void;
}

export interface Tally {
  delivered: number;
  deadLettered: number;
  pendingResolved: number;
  parkedNew: number;
  recovered: number;
  repaired: number;
  skippedAhead: number;
  resent: number;
}

export class Triage {
  readonly tally: Tally = {
    delivered: 0,
    deadLettered: 0,
    pendingResolved: 0,
    parkedNew: 0,
    recovered: 0,
    repaired: 0,
    skippedAhead: 0,
    resent: 0,
  };
  private readonly breaker: OutageBreaker;
  private suspects: Suspect[] = [];
  /** Parked calls that failed again in this run, with their last answer. */
  private readonly parkedFailures = new Map<string, RunFailure>();
  /** Rows of held calls as read this run: what a dead letter keeps. */
  private readonly heldRows = new Map<string, CallRow>();
  /** Calls reconcile queued for repair: a repair parked or resolved is done as a repair. */
  private readonly repairIds = new Set<string>();

  constructor(
    private readonly s: SyncSettings,
    private readonly effects: RunEffects,
    private readonly gate: PostGate,
    private readonly follow: FollowSet,
    private readonly writer: CheckpointWriter,
    private readonly db: RunDatabase,
    private readonly control: RunControl,
    private readonly log: RunLog,
    private readonly now: () => number,
  ) {
    this.breaker = new OutageBreaker(s.failureStop);
  }

  /** Rows of held calls, read by uniqueid before they are revisited. */
  knowRows(rows: Iterable<CallRow>): void {
    for (const row of rows) this.heldRows.set(row.uniqueid, row);
  }

  /** The scan passed over a call the ledger holds. */
  skippedAhead(): void {
    this.tally.skippedAhead++;
  }

  isRepair(uniqueid: string): void {
    this.repairIds.add(uniqueid);
  }

  async resolveCall(row: CallRow, source: Source, onParked?: () => void): Promise<CallResult> {
    const admission = this.gate.admit(row);
    if (admission === 'resolved' || admission === 'taken') {
      this.tally.skippedAhead++;
      this.letGo(row, source);
      return 'skipped';
    }
    const payload = toPayload(row);
    const problem = payloadProblem(payload);
    if (problem) {
      if (!(await this.deadLetter(row.uniqueid, payload, `invalid row: ${problem}`, { row })))
        return 'unresolved';
      this.afterResolved(row, source, false);
      return 'resolved';
    }
    const fields = callFields(row);
    if (!(await this.writer.reserve())) return 'unresolved';
    if (admission === 'resend') {
      this.tally.resent++;
      this.log.log('warn', 'call_resent', { ...fields, source });
    }
    const started = this.now();
    let result: DeliveryResult;
    try {
      result = await this.effects.post(payload, fields);
    } catch (error) {
      // Only the key provider throws here (a secret that cannot be read).
      this.control.stop('api_auth', (error as Error).message);
      this.log.log('error', 'api_key_unavailable', describeError(error));
      return 'unresolved';
    } finally {
      this.writer.unreserve();
    }
    return this.answer(row, source, payload, fields, result, started, onParked);
  }

  private async answer(
    row: CallRow,
    source: Source,
    payload: CallResultPayload,
    fields: Record<string, unknown>,
    result: DeliveryResult,
    started: number,
    onParked: (() => void) | undefined,
  ): Promise<CallResult> {
    switch (result.kind) {
      case 'delivered':
        this.tally.delivered++;
        this.writer.resolved(row.uniqueid, row.end_epoch, 'delivered');
        this.effects.sent(fields, {
          httpStatus: result.status,
          attempt: result.attempts,
          durationMs: this.now() - started,
          source,
        });
        this.afterResolved(row, source, true);
        return 'resolved';
      case 'rejected': {
        const reason = `rejected by the API: HTTP ${result.status}`;
        const details = {
          row,
          httpStatus: result.status,
          excerpt: result.excerpt,
          attempts: result.attempts,
        };
        if (!(await this.deadLetter(row.uniqueid, payload, reason, details))) return 'unresolved';
        this.afterResolved(row, source, false);
        return 'resolved';
      }
      case 'failed': {
        const failure = { status: result.status, error: result.error };
        const at = { httpStatus: result.status, attempt: result.attempts, error: result.error };
        this.log.log('warn', 'call_failed', { ...fields, ...at, source });
        if (source === 'parked') {
          this.parkedFailures.set(row.uniqueid, failure);
          return 'failed';
        }
        if (this.breaker.failure(result.failure)) {
          const reason = this.breaker.reason();
          const inRow = this.breaker.failuresInRow;
          this.control.stop(reason, `${inRow} calls in a row failed; last: ${result.error}`);
          this.log.log('error', reason, { ...fields, ...at, failuresInRow: inRow });
          return 'failed';
        }
        this.suspects.push({ uniqueid: row.uniqueid, endEpoch: row.end_epoch, failure, onParked });
        return 'failed';
      }
      case 'misconfigured':
        this.control.stop('api_misconfigured', result.detail);
        this.log.log('error', 'api_misconfigured', {
          ...fields,
          httpStatus: result.status,
          detail: result.detail,
        });
        return 'unresolved';
      case 'auth_failed':
        this.control.stop('api_auth', `HTTP ${result.status} with a freshly fetched key`);
        this.log.log('error', 'api_auth_failed', { ...fields, httpStatus: result.status });
        return 'unresolved';
      case 'stopped':
        return 'unresolved';
    }
  }

  /** A call the gate found resolved already: whichever set held it lets it go, nothing is posted. */
  private letGo(row: CallRow, source: Source): void {
    if (source === 'repair') this.writer.repairDone(row.uniqueid);
    if (!this.follow.unfollow(row.uniqueid) && source === 'parked') this.follow.unpark(row.uniqueid);
    this.log.log('info', 'call_skipped', { uniqueid: row.uniqueid, endEpoch: row.end_epoch, source });
  }

  private afterResolved(row: CallRow, source: Source, delivered: boolean): void {
    this.writer.countResolved();
    if (source === 'repair') {
      this.writer.repairDone(row.uniqueid);
      if (delivered) this.tally.repaired++;
    }
    if (this.follow.unfollow(row.uniqueid)) {
      this.tally.pendingResolved++;
    } else if (source === 'parked' && this.follow.unpark(row.uniqueid) && delivered) {
      this.tally.recovered++;
      this.log.log('info', 'call_recovered', callFields(row));
    }
    if (delivered && source !== 'parked') {
      this.breaker.success();
      // The API takes other calls: the failures before this one were about those calls.
      this.settleSuspects();
    }
  }

  /**
   * Parks the suspects once the API has accepted other calls in this run. Otherwise (the breaker
   * stopped the run, or nothing was delivered at all) they stay unresolved and the next run sends them
   * again: an outage must not fill the parked set. `stuck`: the run can go no further (its end, or a
   * window held by them with nothing in flight); if nothing was delivered, the run stops as the
   * breaker would.
   */
  settleSuspects(stuck = false): void {
    if (this.suspects.length === 0) return;
    const reason = this.control.reason;
    if (isApiFault(reason) || reason === 'lease_lost') return;
    if (this.tally.delivered === 0) {
      if (stuck) {
        const last = this.suspects.at(-1);
        const why = this.breaker.reason();
        this.control.stop(
          why,
          `${this.suspects.length} call(s) failed every attempt and none was delivered; last: ${last?.failure.error}`,
        );
        this.log.log('error', why, { failuresInRow: this.breaker.failuresInRow, error: last?.failure.error });
      }
      return;
    }
    const suspects = this.suspects;
    this.suspects = [];
    for (const [i, suspect] of suspects.entries()) {
      if (!this.follow.park(suspect, suspect.failure, this.db.now)) {
        this.control.stop(
          'parked_full',
          `${this.s.parkedMax} calls are parked (PARKED_MAX); the cursor waits at the next failed call`,
        );
        this.log.log('error', 'parked_full', { uniqueid: suspect.uniqueid, parkedMax: this.s.parkedMax });
        this.suspects = suspects.slice(i);
        return;
      }
      this.tally.parkedNew++;
      if (this.repairIds.has(suspect.uniqueid)) this.writer.repairDone(suspect.uniqueid);
      this.parkedFailures.set(suspect.uniqueid, suspect.failure);
      this.log.log('warn', 'call_parked', {
        uniqueid: suspect.uniqueid,
        endEpoch: suspect.endEpoch,
        httpStatus: suspect.failure.status,
        reason: suspect.failure.error,
      });
      suspect.onParked?.();
    }
  }

  /** Counts this run's failures of parked calls and dead-letters those that failed RETRY_MAX_RUNS runs. */
  async settleParked(): Promise<void> {
    if (this.parkedFailures.size === 0 || this.effects.dryRun) return;
    for (const call of this.follow.settleParked(this.parkedFailures, this.tally.delivered > 0)) {
      const failure = this.parkedFailures.get(call.uniqueid);
      const row = this.heldRows.get(call.uniqueid);
      const ok = await this.deadLetter(
        call.uniqueid,
        row ? toPayload(row) : null,
        `failed in ${call.failures} runs while the API accepted other calls: ${failure?.error ?? 'no answer'}`,
        {
          ...(row ? { row } : { endEpoch: call.endEpoch }),
          httpStatus: call.lastStatus ?? undefined,
          attempts: this.s.apiMaxAttempts,
        },
      );
      if (!ok) this.follow.park(call, failure ?? { status: call.lastStatus, error: '' }, call.firstFailedAt);
    }
  }

  /** A held call that can never be delivered: a dead letter, then no longer held. */
  async giveUp(
    call: { uniqueid: string; endEpoch: number },
    set: 'followed' | 'parked',
    row: CallRow | null,
    reason: string,
  ): Promise<void> {
    const details = row ? { row } : { endEpoch: call.endEpoch };
    if (!(await this.deadLetter(call.uniqueid, row ? toPayload(row) : null, reason, details))) return;
    if (set === 'followed') this.follow.unfollow(call.uniqueid);
    else this.follow.unpark(call.uniqueid);
  }

  private async deadLetter(
    uniqueid: string,
    payload: CallResultPayload | null,
    reason: string,
    details: {
      row?: CallRow;
      endEpoch?: number;
      httpStatus?: number | undefined;
      excerpt?: string;
      attempts?: number;
    },
  ): Promise<boolean> {
    const fields = {
      ...(details.row ? callFields(details.row) : { uniqueid }),
      reason,
      httpStatus: details.httpStatus ?? null,
    };
    const nowMs = this.now();
    try {
      await this.effects.putDeadLetter(
        {
          syncId: this.s.syncId,
          uniqueid,
          reason,
          httpStatus: details.httpStatus ?? null,
          responseExcerpt: details.excerpt ?? null,
          payload: payload ? JSON.stringify(payload) : null,
          endEpoch: details.row?.end_epoch ?? details.endEpoch ?? null,
          campaignId: details.row?.campaign_id ?? null,
          createdAt: new Date(nowMs).toISOString(),
          attempts: details.attempts ?? 0,
          expiresAt: Math.floor(nowMs / 1000) + this.s.deadLetterDays * 86_400,
        },
        Math.max(FINAL_WRITE_MS, this.control.timeLeft()),
      );
    } catch (error) {
      this.control.stop('dead_letter_error', (error as Error).message);
      this.log.log('error', 'dead_letter_failed', { ...fields, ...describeError(error) });
      return false;
    }
    this.tally.deadLettered++;
    const endEpoch = details.row?.end_epoch ?? details.endEpoch;
    if (endEpoch) this.writer.resolved(uniqueid, endEpoch, 'dead_lettered');
    else this.gate.settle(uniqueid);
    this.effects.deadLettered(fields);
    return true;
  }
}
