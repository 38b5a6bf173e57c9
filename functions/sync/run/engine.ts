import { type Cursor, compareCursor, cursorAt, cursorOf, lagSeconds, sameCursor } from '../calls/cursor';
import { decideCursor, mayPass, type OpenRow, openRowOf } from '../calls/cursor-rule';
import { HeldCalls, type RunFailure } from '../calls/held-calls';
import {
  type CallResultPayload,
  type CallRow,
  isEligible,
  isFinished,
  isLive,
  payloadProblem,
  toPayload,
} from '../calls/payload';
import { duplicateTwins } from '../calls/twins';
import type { ApiKeyProvider, DidOptimizerClient } from '../delivery/api-client';
import { CallDelivery, type DeliveryResult } from '../delivery/call-delivery';
import { OutageBreaker } from '../delivery/outage-breaker';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from '../delivery/retry-policy';
import { Throttle } from '../delivery/throttle';
import { describeError, type SyncLog } from '../log';
import { forEachConcurrent, PLANNED_STOPS, RunControl, type StopReason } from '../run-control';
import { instantProblem, SettingError, type SyncSettings } from '../settings';
import { CallDateScan } from '../source/call-date-scan';
import type { HeldRow, ScanRow, VicidialLog } from '../source/vicidial-log';
import {
  type AdoptRange,
  type CheckpointState,
  type CheckpointStore,
  type HeldState,
  type Lease,
  LeaseLostError,
} from '../state/checkpoint-store';
import type { LedgerEntry, LedgerOutcome } from '../state/ledger';
import { PostGate } from './post-gate';
import { ScanWindow, type Slot } from './scan-window';

/**
 * The sync engine: one run looks again at the calls it holds (pending dispositions, parked failures),
 * then reads finished calls after the checkpoint in (end_epoch, uniqueid) order, posts them
 * concurrently, and moves the checkpoint over the calls that are resolved (delivered, dead-lettered,
 * held) under a fenced lease. The CLI and the Lambda handler are thin adapters over `runSync`.
 */

export interface SyncDeps {
  readonly settings: SyncSettings;
  readonly calls: VicidialLog;
  readonly checkpoints: CheckpointStore;
  readonly api: DidOptimizerClient;
  readonly keys: ApiKeyProvider;
  readonly log: SyncLog;
  readonly retryPolicy?: RetryPolicy;
  readonly now?: () => number;
  readonly random?: () => number;
}

export interface RunOptions {
  /** Who runs (shown to a run that finds the lease held): unique per run (host, pid and a nonce, or a Lambda request id). */
  readonly owner: string;
  /** Read and map calls, but post nothing and write nothing. */
  readonly dryRun?: boolean;
  /** Stop reading after this many non-empty batches. */
  readonly maxBatches?: number;
  /**
   * Epoch ms by which every wait of the run has ended: requests, retry sleeps, Retry-After pauses and
   * queries are cut there. The last checkpoint and the lease release come after it, within
   * FINAL_WRITE_MS.
   */
  readonly deadline?: number;
}

/** A call still live this long after it was first seen is given up on (a row VICIdial never closed). */
const OPEN_WITHOUT_END_MAX_SECONDS = 86_400;

/** What the last checkpoint write and the lease release may take after the deadline. */
export const FINAL_WRITE_MS = 1_500;

export type RunOutcome = 'completed' | 'partial' | 'skipped' | 'failed';

export interface RunSummary {
  readonly syncId: string;
  readonly outcome: RunOutcome;
  readonly reason?: StopReason | 'lease_held';
  readonly detail?: string;
  readonly dryRun: boolean;
  readonly delivered: number;
  readonly retried: number;
  /** Attempts made after one that may have been stored (the API may hold that call twice). */
  readonly ambiguous: number;
  /** 429 answers waited out. */
  readonly rateLimited: number;
  readonly deadLettered: number;
  /** Calls now waiting for their final disposition. */
  readonly pending: number;
  readonly pendingResolved: number;
  /** Calls now parked after failing every attempt. */
  readonly parked: number;
  readonly parkedNew: number;
  /** Parked calls delivered by this run. */
  readonly recovered: number;
  /** Calls reconcile had queued as missing, delivered by this run. */
  readonly repaired: number;
  /** Calls the ledger (or another path of this run) held as resolved: skipped, not posted again. */
  readonly skippedAhead: number;
  /** Calls posted again on the operator's explicit word (`reset --resend`). */
  readonly resent: number;
  /**
   * Calls this run delivered whose ledger entries could not be written: the next run posts them
   * again. Zero unless DynamoDB refused every attempt to record them.
   */
  readonly unrecorded: number;
  readonly batches: number;
  readonly callsRead: number;
  readonly checkpoints: number;
  /** Requests allowed in flight at the end (lower than CONCURRENCY after 429s). */
  readonly concurrency: number;
  readonly cursor: Cursor | null;
  /** Database clock minus the cursor; negative when the cursor is ahead of the clock. */
  readonly lagSeconds: number | null;
  readonly durationMs: number;
  readonly lease?: { owner: string; expiresAt: string } | null;
}

interface Counters {
  delivered: number;
  deadLettered: number;
  pendingResolved: number;
  parkedNew: number;
  recovered: number;
  repaired: number;
  skippedAhead: number;
  resent: number;
  batches: number;
  callsRead: number;
  checkpoints: number;
}

/** Marks a failure of the VICIdial database, as opposed to DynamoDB's, for the run's outcome. */
class SyncDatabaseError extends Error {
  override readonly cause: unknown;
  constructor(cause: unknown) {
    super((cause as Error)?.message ?? String(cause));
    this.name = 'SyncDatabaseError';
    this.cause = cause;
  }
}

export async function runSync(deps: SyncDeps, options: RunOptions): Promise<RunSummary> {
  return new SyncRun(deps, options).run();
}

type Source = 'scan' | 'pending' | 'parked' | 'repair';

/** A fresh call that failed every attempt: parked once the API is seen to accept others. */
interface Suspect {
  readonly uniqueid: string;
  readonly endEpoch: number;
  readonly failure: RunFailure;
  readonly slot?: Slot;
}

interface PendingWrite {
  readonly previous: Cursor;
  readonly next: Cursor;
  readonly held: HeldState;
  /** Calls resolved-but-unwritten this write covers (the crash bound). */
  readonly covers: number;
  /** R2: recorded before the cursor moves; kept for the next attempt if the write fails. */
  readonly ledger: LedgerEntry[];
  readonly repairs: string[];
}

/** A resolved call waiting for its ledger entry. */
interface Resolution {
  readonly endEpoch: number;
  readonly outcome: LedgerOutcome;
}

/** Ledger writes that may fail in a row before the run stops with its cursor behind them. */
const LEDGER_FAILURES_MAX = 2;

class SyncRun {
  private readonly s: SyncSettings;
  private readonly now: () => number;
  private readonly control: RunControl;
  private readonly throttle: Throttle;
  private readonly delivery: CallDelivery;
  private readonly breaker: OutageBreaker;
  private readonly started: number;
  private readonly dryRun: boolean;
  private readonly counters: Counters = {
    delivered: 0,
    deadLettered: 0,
    pendingResolved: 0,
    parkedNew: 0,
    recovered: 0,
    repaired: 0,
    skippedAhead: 0,
    resent: 0,
    batches: 0,
    callsRead: 0,
    checkpoints: 0,
  };
  private lease: Lease | undefined;
  /** The cursor as last written (or read): every call at or before it is resolved. */
  private cursor: Cursor | undefined;
  private held!: HeldCalls;
  /** R3: asked before every post. */
  private readonly gate: PostGate;
  /** Calls resolved since the last checkpoint write: recorded in the ledger before that write. */
  private readonly resolvedSinceFlush = new Map<string, Resolution>();
  /** In-between rows the scan read and left to the next run's scan (R1 decides at every write). */
  private readonly watched = new Map<string, OpenRow>();
  private scanner: CallDateScan | undefined;
  /** Whether the scan starts an hour early (a daylight-saving change near the cursor). */
  private dstNear = false;
  /** Posts started and not yet resolved: with `unwritten`, what a crash may repeat. */
  private posting = 0;
  private ledgerFailures = 0;
  /** Delivered calls whose ledger entries were never written (the run gave up on DynamoDB). */
  private unrecorded = 0;
  private pendingFullLogged = false;
  /** The end of the operator's re-send range, until the cursor passes it. */
  private resendTo: number | undefined;
  /** The start-up read still to do (null: done); `adoptChanged`: its progress is to be written. */
  private adopt: AdoptRange | null = null;
  private adoptChanged = false;
  /** The latest end resolved beyond the cursor, as last written. */
  private frontier = 0;
  /** Repair items (calls reconcile found missing) this run resolved: deleted after the ledger write. */
  private readonly repairsDone: string[] = [];
  private readonly repairIds = new Set<string>();
  private window: ScanWindow | undefined;
  private suspects: Suspect[] = [];
  /** Parked calls that failed again in this run, with their last answer. */
  private readonly parkedFailures = new Map<string, RunFailure>();
  private readonly heldRows = new Map<string, HeldRow>();
  /** Something besides the cursor changed since the last write. */
  private dirty = false;
  /** Calls delivered or dead-lettered since the last checkpoint write: what a crash would repeat. */
  private unwritten = 0;
  private dbNow = 0;
  /** A checkpoint write queued but not started yet. */
  private flushQueued: Promise<void> | undefined;
  /** Serializes checkpoint writes: each one is conditioned on the cursor the previous one wrote. */
  private writes: Promise<void> = Promise.resolve();
  private lastWriteAt = 0;

  constructor(
    private readonly deps: SyncDeps,
    private readonly options: RunOptions,
  ) {
    this.s = deps.settings;
    this.now = deps.now ?? Date.now;
    this.started = this.now();
    this.dryRun = options.dryRun ?? false;
    this.control = new RunControl(options.deadline, this.now);
    this.gate = new PostGate();
    this.throttle = new Throttle(this.s.concurrency, this.now);
    this.breaker = new OutageBreaker(this.s.failureStop);
    this.delivery = new CallDelivery(
      deps.api,
      deps.keys,
      {
        policy: { ...(deps.retryPolicy ?? DEFAULT_RETRY_POLICY), maxAttempts: this.s.apiMaxAttempts },
        apiTimeoutMs: this.s.apiTimeoutMs,
      },
      this.control,
      this.throttle,
      deps.log,
      deps.random,
    );
  }

  private log(
    level: 'debug' | 'info' | 'warn' | 'error',
    event: string,
    fields: Record<string, unknown> = {},
  ) {
    this.deps.log.log(level, event, { syncId: this.s.syncId, ...fields });
  }

  private get leaseMs(): number {
    return this.s.leaseSeconds * 1000;
  }

  /** Runs a query of the VICIdial database within the run's time left. */
  private async database<T>(query: (options: { timeoutMs: number }) => Promise<T>): Promise<T> {
    try {
      return await query({ timeoutMs: this.control.timeLeft() });
    } catch (error) {
      throw new SyncDatabaseError(error);
    }
  }

  async run(): Promise<RunSummary> {
    const { checkpoints } = this.deps;
    const syncId = this.s.syncId;
    try {
      this.dbNow = await this.database((o) => this.deps.calls.now(o));
    } catch (error) {
      this.fail(error);
      return this.finish('failed');
    }
    if (this.s.startFrom !== undefined) {
      const problem = instantProblem(this.s.startFrom, this.dbNow);
      if (problem) throw new SettingError('START_FROM', problem);
    }
    // A session zone other than the one VICIdial writes call_date in shifts every call_date bound by
    // hours: runs would "complete" and read nothing. Measured, not assumed, before anything is read.
    try {
      const zone = await this.database((o) => this.deps.calls.timeZone(o));
      if (zone.status === 'mismatch') {
        this.control.stop('time_zone_mismatch', zone.message);
        this.log('error', 'time_zone_mismatch', {
          sessionTimeZone: zone.sessionTimeZone,
          differenceSeconds: zone.differenceSeconds,
          suggestedTimeZone: zone.suggestedTimeZone,
          error: zone.message,
        });
        return this.finish('failed');
      }
      if (zone.status === 'unknown') this.log('warn', 'time_zone_unchecked', { reason: zone.message });
    } catch (error) {
      this.fail(error);
      return this.finish('failed');
    }
    const initial = cursorAt(this.s.startFrom ?? this.dbNow - 3600);
    const limits = {
      pendingMax: this.s.pendingMax,
      parkedMax: this.s.parkedMax,
      retryMaxRuns: this.s.retryMaxRuns,
    };
    if (this.dryRun) {
      const state = await checkpoints.read(syncId);
      this.cursor = state?.cursor ?? initial;
      this.held = new HeldCalls(state?.pending ?? [], state?.parked ?? [], limits);
      if (state) await this.loadKnowledge(state);
    } else {
      const acquired = await checkpoints.acquire(syncId, this.options.owner, this.leaseMs, initial, {
        timeoutMs: this.control.timeLeft(),
      });
      if (!acquired.acquired) {
        const holder = acquired.holder;
        this.log('info', 'lease_skipped', {
          holder: holder?.owner ?? null,
          leaseExpiresAt: holder ? new Date(holder.expiresAt).toISOString() : null,
        });
        return this.summary('skipped', 'lease_held', {
          lease: holder ? { owner: holder.owner, expiresAt: new Date(holder.expiresAt).toISOString() } : null,
        });
      }
      this.lease = acquired.lease;
      this.cursor = acquired.state.cursor;
      this.held = new HeldCalls(acquired.state.pending, acquired.state.parked, limits);
      this.lastWriteAt = this.now();
      try {
        this.adopt = acquired.state.adopt;
        if (acquired.state.ledgerSince === null) {
          const start = acquired.state.cursor.endEpoch;
          // A brand-new sync adopts the calls that began before its start point and end after it; an
          // upgraded one (its first fenced run was long ago) has followed them all along.
          const adopt =
            acquired.state.fence === 1 && this.s.startLookbackSeconds > this.s.lookbackSeconds
              ? {
                  fromEpoch: start - this.s.startLookbackSeconds,
                  toEpoch: start - this.s.lookbackSeconds,
                  startEpoch: start,
                }
              : undefined;
          await checkpoints.startLedger(this.lease, start, adopt, { timeoutMs: this.control.timeLeft() });
          this.adopt ??= adopt ?? null;
        }
        await this.loadKnowledge(acquired.state);
      } catch (error) {
        this.fail(error);
        return this.finish('failed');
      }
    }
    const lag = lagSeconds(this.cursor, this.dbNow);
    this.log('info', 'run_start', {
      owner: this.options.owner,
      fence: this.lease?.fence ?? null,
      dryRun: this.dryRun,
      cursorEpoch: this.cursor.endEpoch,
      cursorUid: this.cursor.uniqueid,
      cursorTime: new Date(this.cursor.endEpoch * 1000).toISOString(),
      lagSeconds: lag,
      pending: this.held.pendingCount,
      parked: this.held.parkedCount,
      watched: this.watched.size,
    });
    if (lag < 0) {
      this.log('warn', 'cursor_ahead', {
        lagSeconds: lag,
        cursorTime: new Date(this.cursor.endEpoch * 1000).toISOString(),
        dbTime: new Date(this.dbNow * 1000).toISOString(),
      });
    }

    const renewal = this.lease
      ? setInterval(() => this.renewIfIdle(), Math.floor(this.leaseMs / 3))
      : undefined;
    // R4: whatever the run is waiting on, it ends at its deadline (every wait listens for the stop).
    const deadline =
      this.options.deadline === undefined
        ? undefined
        : setTimeout(() => this.control.stop('time_budget'), Math.max(0, this.control.timeLeft()));
    const flushes = setInterval(() => void this.flush(), this.s.checkpointIntervalMs);
    try {
      if (this.adopt && !this.dryRun) await this.adoptCalls(this.adopt);
      await this.resolveHeld();
      if (!this.control.stopped) await this.scan();
      this.settleSuspects(true);
    } catch (error) {
      this.fail(error);
    } finally {
      if (renewal) clearInterval(renewal);
      if (deadline) clearTimeout(deadline);
      clearInterval(flushes);
      await this.writes;
    }
    if (this.control.reason !== 'lease_lost') await this.settleParked();
    return this.finish();
  }

  /** Writes the last checkpoint together with the lease release, and logs the run's end. */
  private async finish(failed?: 'failed'): Promise<RunSummary> {
    let final = this.lease && this.control.reason !== 'lease_lost' ? this.pendingWrite() : undefined;
    // Without their ledger entries neither the cursor nor the followed set may move past those calls.
    if (final && !(await this.recordLedger(final))) final = undefined;
    if (final) this.written(final);
    const unrecorded = [...this.resolvedSinceFlush.values()].filter((r) => r.outcome === 'delivered').length;
    if (unrecorded > 0 && !this.dryRun) {
      this.unrecorded = unrecorded;
      this.log('error', 'calls_unrecorded', {
        calls: unrecorded,
        detail: 'delivered, but their ledger entries could not be written: the next run posts them again',
      });
    }
    // Decided after the last write: the cursor rule or the ledger may stop the run there.
    let outcome: RunOutcome = failed ?? 'completed';
    if (!failed && this.control.stopped) {
      outcome = PLANNED_STOPS.has(this.control.reason as StopReason) ? 'partial' : 'failed';
    }
    const summary = this.summary(
      outcome,
      this.control.reason,
      this.control.detail ? { detail: this.control.detail } : {},
    );
    if (this.lease) {
      const released = await this.deps.checkpoints
        .release(
          this.lease,
          {
            outcome,
            at: new Date(this.now()).toISOString(),
            delivered: summary.delivered,
            deadLettered: summary.deadLettered,
            lagSeconds: summary.lagSeconds,
            ...(summary.reason ? { reason: summary.reason } : {}),
          },
          final ? { previous: final.previous, next: final.next, held: final.held } : undefined,
          { timeoutMs: FINAL_WRITE_MS },
        )
        .catch((error) => {
          this.log('error', 'lease_release_failed', describeError(error));
          return false;
        });
      if (released && final) {
        this.counters.checkpoints++;
        await this.dropRepairs(final);
        this.logCheckpoint(final.next, final.held, true);
      }
      if (!released && this.control.reason !== 'lease_lost') this.log('warn', 'lease_release_refused', {});
    }
    const ended = { ...summary, checkpoints: this.counters.checkpoints };
    this.log(outcome === 'failed' ? 'error' : 'info', 'run_end', { ...ended });
    return ended;
  }

  private fail(error: unknown): void {
    if (error instanceof SettingError) throw error;
    if (error instanceof LeaseLostError) {
      this.control.stop('lease_lost', error.message);
      this.log('error', 'lease_lost', describeError(error));
      return;
    }
    const database = error instanceof SyncDatabaseError;
    const cause = database ? error.cause : error;
    if (cause instanceof SettingError) throw cause;
    const reason: StopReason = database ? 'database_error' : 'checkpoint_error';
    this.control.stop(reason, (cause as Error).message);
    this.log('error', reason, describeError(cause));
  }

  private summary(
    outcome: RunOutcome,
    reason?: StopReason | 'lease_held',
    extra: Partial<RunSummary> = {},
  ): RunSummary {
    const lag = this.cursor && this.dbNow ? lagSeconds(this.cursor, this.dbNow) : null;
    return {
      syncId: this.s.syncId,
      outcome,
      ...(reason ? { reason } : {}),
      ...extra,
      dryRun: this.dryRun,
      delivered: this.counters.delivered,
      retried: this.delivery.retries,
      ambiguous: this.delivery.ambiguous,
      rateLimited: this.delivery.rateLimited,
      deadLettered: this.counters.deadLettered,
      pending: this.held?.pendingCount ?? 0,
      pendingResolved: this.counters.pendingResolved,
      parked: this.held?.parkedCount ?? 0,
      parkedNew: this.counters.parkedNew,
      recovered: this.counters.recovered,
      repaired: this.counters.repaired,
      skippedAhead: this.counters.skippedAhead,
      resent: this.counters.resent,
      unrecorded: this.unrecorded,
      batches: this.counters.batches,
      callsRead: this.counters.callsRead,
      checkpoints: this.counters.checkpoints,
      concurrency: this.throttle.current,
      cursor: this.cursor ?? null,
      lagSeconds: lag,
      durationMs: this.now() - this.started,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Held calls: pending dispositions and parked failures, looked at again before the scan.

  private async resolveHeld(): Promise<void> {
    const pending = this.held.pendingCalls();
    const parked = this.held.parkedCalls();
    const repairs = this.dryRun
      ? []
      : await this.deps.checkpoints.repairs(this.s.syncId, { timeoutMs: this.control.timeLeft() });
    if (pending.length + parked.length + repairs.length === 0) return;
    const cursor = this.cursor as Cursor;
    const rows = await this.database((o) =>
      this.deps.calls.readByUniqueid(
        [...pending, ...parked, ...repairs].map((p) => p.uniqueid),
        cursor,
        o,
      ),
    );
    for (const row of rows) this.heldRows.set(row.uniqueid, row);
    const toSend: { row: CallRow; source: Source }[] = [];
    for (const p of pending) {
      const row = this.heldRows.get(p.uniqueid);
      if (!row) {
        if (await this.deletedAsTwin(p)) continue;
        await this.giveUp(
          p,
          'pending',
          null,
          'row left vicidial_log (archived or deleted) before it finished',
        );
        continue;
      }
      if (isFinished(row, this.s.transientStatuses)) {
        if (!isEligible(row, this.s.transientStatuses, this.s.minDurationSeconds)) {
          // Finished as a call the sync does not send (no length, say): nothing more to follow.
          this.held.release(p.uniqueid);
          this.dirty = true;
          this.log('info', 'pending_dropped', this.callFields(row));
        } else {
          // Sent now, wherever it ends: the ledger makes the scan skip it when it reads it again, and it
          // leaves the follow set at once (held back for the cursor, a slow run would follow hundreds).
          toSend.push({ row, source: 'pending' });
        }
        continue;
      }
      if (!isLive(row) && this.dbNow - row.end_epoch > this.s.pendingMaxAgeSeconds) {
        this.log('warn', 'pending_expired', {
          ...this.callFields(row),
          ageSeconds: this.dbNow - row.end_epoch,
        });
        toSend.push({ row, source: 'pending' });
      } else if (isLive(row) && this.dbNow - p.firstSeen > OPEN_WITHOUT_END_MAX_SECONDS) {
        await this.giveUp(
          p,
          'pending',
          row,
          'still going 24 hours after it was first seen (VICIdial never closed the row)',
        );
      }
    }
    for (const p of parked) {
      const row = this.heldRows.get(p.uniqueid);
      if (!row) {
        await this.giveUp(
          p,
          'parked',
          null,
          `row left vicidial_log while parked (last answer: HTTP ${p.lastStatus ?? 'none'})`,
        );
        continue;
      }
      toSend.push({ row, source: 'parked' });
    }
    for (const r of repairs) {
      const row = this.heldRows.get(r.uniqueid);
      this.repairIds.add(r.uniqueid);
      if (!row || this.held.isPending(r.uniqueid) || this.held.isParked(r.uniqueid)) {
        // Gone from vicidial_log, or followed by this sync already: nothing for the repair to do.
        this.repairsDone.push(r.uniqueid);
        this.log('info', 'repair_dropped', { uniqueid: r.uniqueid, reason: row ? 'held' : 'row gone' });
        continue;
      }
      toSend.push({ row, source: 'repair' });
    }
    // R3 for calls at or before the cursor: the ledger is asked about each by the minutes its end can
    // have been recorded under (a crash after the ledger write, a reset, a repair queued twice).
    if (!this.dryRun && toSend.length > 0) {
      const outcomes = await this.deps.checkpoints.ledger.outcomes(
        this.s.syncId,
        toSend.map(({ row }) => ({
          uniqueid: row.uniqueid,
          fromEpoch: Number(row.start_epoch ?? row.end_epoch) || row.end_epoch,
          toEpoch: row.end_epoch,
        })),
      );
      this.gate.learn(outcomes.keys());
    }
    // Repairs first: they are the oldest calls.
    toSend.sort((a, b) => (a.source === 'repair' ? 0 : 1) - (b.source === 'repair' ? 0 : 1));
    // Parked retries are not fresh calls: a run of them failing says nothing about an outage, but it is
    // no use spending the run's time on the rest.
    let parkedInRow = 0;
    await forEachConcurrent(
      toSend,
      this.s.concurrency,
      () => this.control.stopped,
      async ({ row, source }) => {
        if (source === 'parked' && parkedInRow >= this.s.failureStop) return;
        const result = await this.resolveCall(row, source);
        if (source === 'parked') parkedInRow = result === 'failed' ? parkedInRow + 1 : 0;
      },
    );
  }

  /**
   * The start-up read of a new sync or a reset: calls that began up to START_LOOKBACK_SECONDS before
   * the start point (before the first scan's reach) and end after it, or are still going, are followed
   * like any call seen unfinished, and delivered by the ordinary paths. Read by call_date a quarter of
   * an hour at a time, so rows examined per query stay bounded at a big center, and spread over the
   * first runs: it uses at most half of a run's time, and its progress is written with the checkpoint.
   */
  private async adoptCalls(adopt: AdoptRange): Promise<void> {
    const SLICE_SECONDS = 900;
    const budgetEnd = this.now() + this.control.timeLeft() / 2;
    let from = adopt.fromEpoch;
    let rows = 0;
    let adopted = 0;
    while (from < adopt.toEpoch && !this.control.stopped && this.now() < budgetEnd) {
      const to = Math.min(from + SLICE_SECONDS, adopt.toEpoch);
      const slice = await this.database((o) => this.deps.calls.readAdopt(from, to, adopt.startEpoch, o));
      rows += slice.length;
      let full = false;
      for (const row of slice) {
        if (this.gate.isResolved(row.uniqueid) || this.held.isPending(row.uniqueid)) continue;
        if (!this.follow(row)) {
          full = true;
          break;
        }
        adopted++;
      }
      if (full) break;
      from = to;
    }
    this.adopt = from >= adopt.toEpoch ? null : { ...adopt, fromEpoch: from };
    this.adoptChanged = true;
    this.dirty = true;
    this.log('info', 'start_up_read', {
      fromTime: new Date(adopt.fromEpoch * 1000).toISOString(),
      throughTime: new Date(from * 1000).toISOString(),
      startTime: new Date(adopt.startEpoch * 1000).toISOString(),
      rowsReturned: rows,
      adopted,
      done: this.adopt === null,
    });
  }

  /**
   * A followed row that vanished because VICIdial's cleanup deleted it as a duplicate: its twin (same
   * uniqueid prefix, same end) is still there and is the one delivered. Anything else that vanishes is
   * still a dead letter.
   */
  private async deletedAsTwin(call: { uniqueid: string; endEpoch: number }): Promise<boolean> {
    const rows = await this.database((o) => this.deps.calls.samePrefix(call.uniqueid, o));
    const twin = rows.find(
      (r) => r.uniqueid !== call.uniqueid && (call.endEpoch === 0 || r.end_epoch === call.endEpoch),
    );
    if (!twin) return false;
    this.held.release(call.uniqueid);
    this.dirty = true;
    this.log('info', 'followed_duplicate_removed', {
      uniqueid: call.uniqueid,
      twin: twin.uniqueid,
      endEpoch: call.endEpoch,
    });
    return true;
  }

  /** A held call that can never be delivered in order: a dead letter, then no longer held. */
  private async giveUp(
    call: { uniqueid: string; endEpoch: number },
    set: 'pending' | 'parked',
    row: CallRow | null,
    reason: string,
  ): Promise<void> {
    const details = row ? { row } : { endEpoch: call.endEpoch };
    if (!(await this.deadLetter(call.uniqueid, row ? toPayload(row) : null, reason, details))) return;
    if (set === 'pending') this.held.release(call.uniqueid);
    else this.held.unpark(call.uniqueid);
    this.dirty = true;
  }

  // ---------------------------------------------------------------------------------------------
  // The scan: reads ahead while workers post, so no worker waits for a batch boundary.

  private async scan(): Promise<void> {
    const window = new ScanWindow(this.cursor as Cursor, {
      maxResolvedAhead: this.s.batchSize,
      readAheadBelow: Math.max(2 * this.s.concurrency, Math.ceil(this.s.batchSize / 2)),
      maxWindow: 2 * this.s.batchSize,
    });
    this.window = window;
    // Workers wait on a prefix held by failed calls with nothing in flight: those failures were isolated,
    // or, when nothing was delivered at all, the run can go no further.
    window.onStall = () => this.settleSuspects(true);
    const reader = this.readLoop(window)
      .catch((error) => {
        this.fail(error);
      })
      .finally(() => window.endOfInput());
    const workers = Array.from({ length: this.s.concurrency }, async () => {
      for (;;) {
        const slot = await window.next(this.control);
        if (!slot) return;
        const result = await this.resolveCall(slot.row as CallRow, 'scan', slot);
        if (result === 'resolved') window.resolve(slot);
        else if (result === 'skipped') window.resolve(slot, false);
        window.release();
      }
    });
    await Promise.all([reader, ...workers]);
    if (window.limitReached && !window.caughtUp) this.control.stop('max_batches');
  }

  private async readLoop(window: ScanWindow): Promise<void> {
    // What the scan leaves unresolved when it stops is the cursor rule's to settle (pendingWrite).
    await this.readChunks(window, await this.openScan());
  }

  private async openScan(): Promise<CallDateScan> {
    const scan = new CallDateScan(
      this.deps.calls,
      this.cursor as Cursor,
      {
        lookbackSeconds: this.s.lookbackSeconds,
        chunkRows: this.s.batchSize,
        take: (row) => {
          if (isFinished(row, this.s.transientStatuses)) return true;
          this.notFinished(row as ScanRow);
          return false;
        },
      },
      // A daylight-saving change near the cursor: local call_date values repeat, start an hour earlier.
      this.dstNear,
    );
    this.scanner = scan;
    return scan;
  }

  /**
   * A row read in an in-between state (QUEUE, INCALL, DISPO, no status yet). Followed now if even the
   * furthest cursor this run can write would pass it (R1); otherwise watched, and the rule is applied
   * again at every checkpoint write. A call already resolved (read again in a daylight-saving hour, or
   * sent as it was when it could not be followed) is never followed again.
   */
  private notFinished(row: ScanRow): void {
    const uid = row.uniqueid;
    if (this.gate.isResolved(uid) || this.held.isPending(uid) || this.held.isParked(uid)) return;
    const open = openRowOf(row, this.s.transientStatuses, this.dbNow);
    // The furthest cursor this run can write: the settle bound, an hour less near a daylight-saving
    // change (local call_date repeats there, so the scan vouches only for an hour before what it read).
    const furthest = cursorAt(this.dbNow - this.s.settleSeconds + 1 - (this.scanner?.nearDst ? 3600 : 0));
    if (!mayPass(furthest, open, this.s.lookbackSeconds) && this.follow(row)) return;
    this.watched.set(uid, open);
  }

  private async readChunks(window: ScanWindow, scan: CallDateScan): Promise<void> {
    let bound: number;
    for (;;) {
      await window.wantMore(this.control);
      if (this.control.stopped) return;
      if (this.options.maxBatches !== undefined && this.counters.batches >= this.options.maxBatches) {
        window.limitReached = true;
        return;
      }
      if (!this.control.mayStart(500)) return;
      this.dbNow = await this.database((o) => this.deps.calls.now(o));
      bound = this.dbNow - this.s.settleSeconds;
      if (scan.through >= bound) {
        window.caughtUp = true;
        return;
      }
      const chunk = await this.database((o) => scan.next(bound, o));
      if (chunk.read > 0) {
        this.counters.batches++;
        this.counters.callsRead += chunk.read;
        this.log('info', 'batch', {
          batch: this.counters.batches,
          rows: chunk.read,
          released: chunk.released.length,
          waiting: scan.waiting,
          through: chunk.through,
          lagSeconds: this.dbNow - chunk.through,
        });
      }
      const twins = duplicateTwins(chunk.released);
      for (const row of chunk.released) {
        const survivor = twins.get(row.uniqueid);
        if (survivor === undefined) this.intake(window, row);
        else this.duplicateRow(row, survivor);
      }
      window.readThrough(chunk.through);
      if (chunk.caughtUp) {
        window.caughtUp = true;
        return;
      }
    }
  }

  /**
   * Follows a call by uniqueid until it is final and delivered. False when PENDING_MAX calls are
   * followed already: then the cursor rule holds the cursor before it instead.
   */
  private follow(row: { uniqueid: string; end_epoch: number | null }): boolean {
    if (this.held.isPending(row.uniqueid) || this.held.isParked(row.uniqueid)) return true;
    if (this.held.hold({ uniqueid: row.uniqueid, endEpoch: row.end_epoch ?? 0, firstSeen: this.dbNow })) {
      this.dirty = true;
      this.watched.delete(row.uniqueid);
      this.log('info', 'pending', { uniqueid: row.uniqueid, endEpoch: row.end_epoch ?? null });
      return true;
    }
    return false;
  }

  /**
   * A twin VICIdial's cleanup will delete: only its survivor is posted. It is recorded as delivered
   * (by its twin) so reconcile never reports it, and the cursor passes it as it passes the survivor.
   */
  private duplicateRow(row: CallRow, survivor: string): void {
    if (compareCursor(cursorOf(row), this.cursor as Cursor) <= 0 || this.gate.isResolved(row.uniqueid))
      return;
    this.gate.settle(row.uniqueid);
    if (!this.dryRun)
      this.resolvedSinceFlush.set(row.uniqueid, { endEpoch: row.end_epoch, outcome: 'delivered' });
    this.window?.add(row, 'skip');
    this.log('info', 'duplicate_row_skipped', { uniqueid: row.uniqueid, survivor, endEpoch: row.end_epoch });
  }

  /** Decides what a finished call read in order needs: a post, or nothing because it was handled. */
  private intake(window: ScanWindow, row: CallRow): void {
    // At or before the cursor: resolved before this run, or followed (R1 saw to that when it was written).
    if (compareCursor(cursorOf(row), this.cursor as Cursor) <= 0) return;
    this.watched.delete(row.uniqueid);
    if (this.gate.isResolved(row.uniqueid)) {
      this.counters.skippedAhead++;
      window.add(row, 'skip');
      return;
    }
    if (this.held.isParked(row.uniqueid)) {
      window.add(row, 'skip');
      return;
    }
    // A followed call that finished is delivered here, in order, and stops being followed once resolved.
    window.add(row, 'send');
  }

  // ---------------------------------------------------------------------------------------------
  // One call.

  private callFields(row: CallRow): Record<string, unknown> {
    return {
      uniqueid: row.uniqueid,
      campaignId: row.campaign_id,
      disposition: row.status,
      duration: row.length_in_sec,
      endEpoch: row.end_epoch,
    };
  }

  /**
   * Delivers, dead-letters or (through the suspects) parks one call. `resolved`: the cursor may pass
   * it; `failed`: it failed every attempt (a suspect, or a parked call that failed again);
   * `unresolved`: the run is stopping and the call waits for the next one.
   */
  private async resolveCall(
    row: CallRow,
    source: Source,
    slot?: Slot,
  ): Promise<'resolved' | 'failed' | 'unresolved' | 'skipped'> {
    // R3: nothing is posted that the ledger or another path of this run has resolved or taken.
    const admission = this.gate.admit(row);
    if (admission === 'resolved' || admission === 'taken') {
      this.counters.skippedAhead++;
      this.afterSkipped(row, source);
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
    const fields = this.callFields(row);
    if (this.dryRun) {
      this.log('info', 'call_would_send', { ...fields, source });
      this.counters.delivered++;
      this.afterResolved(row, source, true);
      return 'resolved';
    }
    // R6, the crash bound: calls posted (or being posted) whose ledger entries are not written yet never
    // exceed BATCH_SIZE. The check and the count are one synchronous step, so concurrent workers cannot
    // all pass it at BATCH_SIZE - 1.
    while (this.unwritten + this.posting >= this.s.batchSize && !this.control.stopped) await this.flush();
    if (this.control.stopped) return 'unresolved';
    if (admission === 'resend') {
      this.counters.resent++;
      this.log('warn', 'call_resent', { ...fields, source });
    }
    const started = this.now();
    let result: DeliveryResult;
    this.posting++;
    try {
      result = await this.delivery.deliver(payload, fields);
    } catch (error) {
      // Only the key provider throws here (a secret that cannot be read).
      this.control.stop('api_auth', (error as Error).message);
      this.log('error', 'api_key_unavailable', describeError(error));
      return 'unresolved';
    } finally {
      this.posting--;
    }
    switch (result.kind) {
      case 'delivered':
        this.counters.delivered++;
        this.resolved(row.uniqueid, row.end_epoch, 'delivered');
        this.log('info', 'call_sent', {
          ...fields,
          httpStatus: result.status,
          attempt: result.attempts,
          durationMs: this.now() - started,
          source,
        });
        this.afterResolved(row, source, true);
        return 'resolved';
      case 'rejected':
        if (
          !(await this.deadLetter(row.uniqueid, payload, `rejected by the API: HTTP ${result.status}`, {
            row,
            httpStatus: result.status,
            excerpt: result.excerpt,
            attempts: result.attempts,
          }))
        ) {
          return 'unresolved';
        }
        this.afterResolved(row, source, false);
        return 'resolved';
      case 'failed': {
        const failure = { status: result.status, error: result.error };
        this.log('warn', 'call_failed', {
          ...fields,
          httpStatus: result.status,
          attempt: result.attempts,
          error: result.error,
          source,
        });
        if (source === 'parked') {
          this.parkedFailures.set(row.uniqueid, failure);
          return 'failed';
        }
        if (this.breaker.failure(result.failure)) {
          const reason = this.breaker.reason();
          this.control.stop(
            reason,
            `${this.breaker.failuresInRow} calls in a row failed; last: ${result.error}`,
          );
          this.log('error', reason, {
            ...fields,
            httpStatus: result.status,
            error: result.error,
            failuresInRow: this.breaker.failuresInRow,
          });
          return 'failed';
        }
        this.suspects.push({
          uniqueid: row.uniqueid,
          endEpoch: row.end_epoch,
          failure,
          ...(slot ? { slot } : {}),
        });
        return 'failed';
      }
      case 'misconfigured':
        this.control.stop('api_misconfigured', result.detail);
        this.log('error', 'api_misconfigured', {
          ...fields,
          httpStatus: result.status,
          detail: result.detail,
        });
        return 'unresolved';
      case 'auth_failed':
        this.control.stop('api_auth', `HTTP ${result.status} with a freshly fetched key`);
        this.log('error', 'api_auth_failed', { ...fields, httpStatus: result.status });
        return 'unresolved';
      case 'stopped':
        return 'unresolved';
    }
  }

  /** A resolved call waits for its ledger entry (R2) and is never posted again by this run (R3). */
  private resolved(uniqueid: string, endEpoch: number, outcome: LedgerOutcome): void {
    this.gate.settle(uniqueid);
    this.resolvedSinceFlush.set(uniqueid, { endEpoch, outcome });
  }

  /** A call the gate found resolved already: whichever set held it lets it go, nothing is posted. */
  private afterSkipped(row: CallRow, source: Source): void {
    if (source === 'repair') this.repairsDone.push(row.uniqueid);
    if (this.held.isPending(row.uniqueid)) {
      this.held.release(row.uniqueid);
      this.dirty = true;
    } else if (source === 'parked' && this.held.isParked(row.uniqueid)) {
      this.held.unpark(row.uniqueid);
      this.dirty = true;
    }
    this.log('info', 'call_skipped', { uniqueid: row.uniqueid, endEpoch: row.end_epoch, source });
  }

  /** Book-keeping after a call is delivered or dead-lettered. */
  private afterResolved(row: CallRow, source: Source, delivered: boolean): void {
    this.unwritten++;
    if (source === 'repair') {
      this.repairsDone.push(row.uniqueid);
      if (delivered) this.counters.repaired++;
    }
    if (source === 'pending' || this.held.isPending(row.uniqueid)) {
      this.held.release(row.uniqueid);
      this.counters.pendingResolved++;
      this.dirty = true;
    } else if (source === 'parked') {
      this.held.unpark(row.uniqueid);
      this.dirty = true;
      if (delivered) {
        this.counters.recovered++;
        this.log('info', 'call_recovered', this.callFields(row));
      }
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
   * again: an outage must not fill the parked set. At the end of a run that delivered nothing, they
   * fail the run the way the breaker would.
   */
  private settleSuspects(end = false): void {
    if (this.suspects.length === 0) return;
    const reason = this.control.reason;
    if (
      reason === 'api_unavailable' ||
      reason === 'api_misconfigured' ||
      reason === 'api_auth' ||
      reason === 'lease_lost'
    ) {
      return;
    }
    if (this.counters.delivered === 0) {
      if (end) {
        const last = this.suspects.at(-1);
        const why = this.breaker.reason();
        this.control.stop(
          why,
          `${this.suspects.length} call(s) failed every attempt and none was delivered; last: ${last?.failure.error}`,
        );
        this.log('error', why, { failuresInRow: this.breaker.failuresInRow, error: last?.failure.error });
      }
      return;
    }
    const suspects = this.suspects;
    this.suspects = [];
    for (const [i, suspect] of suspects.entries()) {
      if (!this.held.park(suspect, suspect.failure, this.dbNow)) {
        this.control.stop(
          'parked_full',
          `${this.s.parkedMax} calls are parked (PARKED_MAX); the cursor waits at the next failed call`,
        );
        this.log('error', 'parked_full', { uniqueid: suspect.uniqueid, parkedMax: this.s.parkedMax });
        this.suspects = suspects.slice(i);
        return;
      }
      this.dirty = true;
      this.counters.parkedNew++;
      if (this.repairIds.has(suspect.uniqueid)) this.repairsDone.push(suspect.uniqueid);
      this.parkedFailures.set(suspect.uniqueid, suspect.failure);
      this.log('warn', 'call_parked', {
        uniqueid: suspect.uniqueid,
        endEpoch: suspect.endEpoch,
        httpStatus: suspect.failure.status,
        reason: suspect.failure.error,
      });
      if (suspect.slot) this.window?.resolve(suspect.slot);
    }
  }

  /** Counts this run's failures of parked calls and dead-letters those that failed RETRY_MAX_RUNS runs. */
  private async settleParked(): Promise<void> {
    if (this.parkedFailures.size === 0 || this.dryRun) return;
    const exhausted = this.held.settleRun(this.parkedFailures, this.counters.delivered > 0);
    if (exhausted.length > 0) this.dirty = true;
    for (const call of exhausted) {
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
      if (!ok) this.held.park(call, failure ?? { status: call.lastStatus, error: '' }, call.firstFailedAt);
    }
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
      ...(details.row ? this.callFields(details.row) : { uniqueid }),
      reason,
      httpStatus: details.httpStatus ?? null,
    };
    if (this.dryRun) {
      this.counters.deadLettered++;
      this.log('warn', 'call_would_dead_letter', fields);
      return true;
    }
    try {
      const nowMs = this.now();
      await this.deps.checkpoints.putDeadLetter(
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
        { timeoutMs: Math.max(FINAL_WRITE_MS, this.control.timeLeft()) },
      );
    } catch (error) {
      this.control.stop('dead_letter_error', (error as Error).message);
      this.log('error', 'dead_letter_failed', { ...fields, ...describeError(error) });
      return false;
    }
    this.counters.deadLettered++;
    const endEpoch = details.row?.end_epoch ?? details.endEpoch;
    if (endEpoch) this.resolved(uniqueid, endEpoch, 'dead_lettered');
    else this.gate.settle(uniqueid);
    this.log('warn', 'call_dead_lettered', fields);
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Checkpoints.

  /**
   * What the next checkpoint write would store, or undefined when nothing changed. The cursor is the
   * window's resolved prefix, cut where the cursor rule (R1) says; the ledger entries it must not pass
   * (R2) go with it, and stay queued until a write of them succeeds.
   */
  private pendingWrite(): PendingWrite | undefined {
    const previous = this.cursor as Cursor;
    const covers = this.unwritten;
    const next = this.applyCursorRule(previous, this.window?.prefixCursor() ?? previous);
    let frontier = this.frontier > next.endEpoch ? this.frontier : 0;
    for (const row of this.window?.resolvedBeyondPrefix() ?? []) frontier = Math.max(frontier, row.end_epoch);
    const aheadChanged = this.window?.takeAheadChanged() ?? false;
    if (
      sameCursor(previous, next) &&
      !this.dirty &&
      !aheadChanged &&
      this.resolvedSinceFlush.size === 0 &&
      this.repairsDone.length === 0 &&
      frontier === this.frontier
    ) {
      return undefined;
    }
    this.dirty = false;
    const ledger = [...this.resolvedSinceFlush].map(([uniqueid, r]) => ({
      uniqueid,
      endEpoch: r.endEpoch,
      outcome: r.outcome,
    }));
    return {
      previous,
      next,
      held: {
        pending: this.held.pendingCalls(),
        parked: this.held.parkedCalls(),
        frontier,
        ...(this.resendTo !== undefined && next.endEpoch >= this.resendTo ? { resendDone: true } : {}),
        ...(this.adoptChanged ? { adopt: this.adopt } : {}),
      },
      covers,
      ledger,
      repairs: [...this.repairsDone],
    };
  }

  /**
   * R1, enforced here and nowhere else: every row this run read and has not resolved (watched
   * in-between rows, finished calls waiting in the scan's reorder heap, calls queued or in flight) is
   * followed before a cursor that would pass it is written; one that cannot be followed (PENDING_MAX)
   * holds the cursor, and the run ends `pending_full`.
   */
  private applyCursorRule(previous: Cursor, candidate: Cursor): Cursor {
    const open = (function* (run: SyncRun): Generator<OpenRow> {
      const unresolved = (row: CallRow) =>
        !run.held.isPending(row.uniqueid) &&
        !run.held.isParked(row.uniqueid) &&
        !run.gate.isResolved(row.uniqueid);
      for (const o of run.watched.values()) if (unresolved({ uniqueid: o.uniqueid } as CallRow)) yield o;
      const finished = (row: CallRow): OpenRow | undefined =>
        'cd_epoch' in row && unresolved(row)
          ? { uniqueid: row.uniqueid, cdEpoch: (row as ScanRow).cd_epoch, earliestEnd: row.end_epoch }
          : undefined;
      for (const row of run.scanner?.waitingRows() ?? []) {
        const o = finished(row);
        if (o) yield o;
      }
      for (const row of run.window?.unresolvedRows() ?? []) {
        const o = finished(row);
        if (o) yield o;
      }
    })(this);
    const decision = decideCursor(previous, candidate, open, this.s.lookbackSeconds, (o) =>
      this.follow({ uniqueid: o.uniqueid, end_epoch: o.earliestEnd }),
    );
    if (decision.held.length > 0) {
      const first = decision.held[0] as OpenRow;
      this.control.stop(
        'pending_full',
        `${this.s.pendingMax} calls are followed (PENDING_MAX): the cursor waits before ${decision.held.length} call(s) it could not follow`,
      );
      if (!this.pendingFullLogged) {
        this.pendingFullLogged = true;
        this.log('error', 'pending_full', {
          uniqueid: first.uniqueid,
          pendingMax: this.s.pendingMax,
          notFollowed: decision.held.length,
          cursorHeldAt: decision.cursor.endEpoch,
        });
      }
    }
    return decision.cursor;
  }

  /** A write succeeded: what it covered is durable, the rest stays queued for the next one. */
  private written(write: PendingWrite): void {
    if (write.held.adopt !== undefined && write.held.adopt === this.adopt) this.adoptChanged = false;
    this.commit(write.next);
    this.frontier = write.held.frontier;
    this.unwritten -= write.covers;
    this.repairsDone.splice(0, write.repairs.length);
  }

  /** The ledger holds these: they are not written again, whatever happens to the checkpoint. */
  private recorded(write: PendingWrite): void {
    for (const e of write.ledger) {
      const queued = this.resolvedSinceFlush.get(e.uniqueid);
      if (queued && queued.endEpoch === e.endEpoch && queued.outcome === e.outcome) {
        this.resolvedSinceFlush.delete(e.uniqueid);
      }
    }
  }

  /** A write failed: nothing it carried is forgotten, the next attempt writes it again. */
  private notWritten(): void {
    this.dirty = true;
  }

  /**
   * R2, the ledger first: a crash after it and before the checkpoint repeats nothing it holds. A failed
   * write keeps its entries for the next attempt and no cursor is written past them; after
   * LEDGER_FAILURES_MAX failures in a row the run stops with its cursor behind them. False: not written.
   */
  private async recordLedger(write: PendingWrite): Promise<boolean> {
    if (this.dryRun || write.ledger.length === 0) return true;
    try {
      await this.deps.checkpoints.ledger.record(this.s.syncId, write.ledger, {
        ledgerDays: this.s.ledgerDays,
        timeoutMs: Math.max(FINAL_WRITE_MS, this.control.timeLeft()),
      });
      this.ledgerFailures = 0;
      this.recorded(write);
      return true;
    } catch (error) {
      this.notWritten();
      this.ledgerFailures++;
      this.log('error', 'ledger_write_failed', {
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

  /** Repair items go once the ledger holds their calls. */
  private async dropRepairs(write: PendingWrite): Promise<void> {
    if (this.dryRun) return;
    for (const uniqueid of write.repairs) {
      await this.deps.checkpoints
        .deleteRepair(this.s.syncId, uniqueid, { timeoutMs: FINAL_WRITE_MS })
        .catch((error) => this.log('warn', 'repair_delete_failed', { uniqueid, ...describeError(error) }));
    }
  }

  /**
   * What the ledger holds for every call this run's scan will read (from LOOKBACK_SECONDS before the
   * cursor, an hour more near a daylight-saving change), whatever earlier runs wrote or failed to write
   * afterwards, and the list older versions kept in the checkpoint item: the gate posts none of them.
   */
  private async loadKnowledge(state: CheckpointState): Promise<void> {
    this.frontier = state.frontier;
    this.gate.learn(state.ahead.map((a) => a.uniqueid));
    this.gate.allowResend(state.resend ?? undefined);
    this.resendTo = state.resend?.toEpoch;
    const low = state.cursor.endEpoch - this.s.lookbackSeconds;
    this.dstNear = await this.database((o) =>
      this.deps.calls.offsetChanges(low - 3600, state.cursor.endEpoch + 3600, o),
    );
    const from = low - (this.dstNear ? 3600 : 0);
    this.gate.learn(await this.deps.checkpoints.ledger.loadAfter(this.s.syncId, from));
  }

  private commit(next: Cursor): void {
    this.cursor = next;
  }

  /** Queues a conditional checkpoint write; a refused one stops the run (the lease was lost). */
  private flush(): Promise<void> {
    // Workers that reach the batch bound together share one queued write instead of each adding one.
    if (this.flushQueued) return this.flushQueued;
    this.flushQueued = this.writes.then(async () => {
      this.flushQueued = undefined;
      if (this.control.reason === 'lease_lost' || this.control.reason === 'checkpoint_error') return;
      const write = this.pendingWrite();
      if (!write) return;
      if (!this.dryRun && this.lease) {
        if (!(await this.recordLedger(write))) return;
        try {
          await this.deps.checkpoints.advance(
            this.lease,
            write.previous,
            write.next,
            write.held,
            this.leaseMs,
            {
              timeoutMs: Math.max(FINAL_WRITE_MS, this.control.timeLeft()),
            },
          );
        } catch (error) {
          this.notWritten();
          this.fail(error);
          return;
        }
        this.counters.checkpoints++;
        this.lastWriteAt = this.now();
      }
      this.written(write);
      await this.dropRepairs(write);
      this.logCheckpoint(write.next, write.held, false);
    });
    this.writes = this.flushQueued;
    return this.flushQueued;
  }

  /** `final`: written with the lease release at the end of the run. */
  private logCheckpoint(next: Cursor, held: HeldState, final: boolean): void {
    this.log('info', 'checkpoint', {
      cursorEpoch: next.endEpoch,
      cursorUid: next.uniqueid,
      cursorTime: new Date(next.endEpoch * 1000).toISOString(),
      pending: held.pending.length,
      parked: held.parked.length,
      frontier: held.frontier,
      lagSeconds: lagSeconds(next, this.dbNow),
      final,
      dryRun: this.dryRun,
    });
  }

  /** Keeps the lease alive through long waits (API retries) when no checkpoint write has renewed it. */
  private renewIfIdle(): void {
    const lease = this.lease;
    if (!lease || this.now() - this.lastWriteAt < this.leaseMs / 3) return;
    this.writes = this.writes.then(async () => {
      if (this.control.reason === 'lease_lost') return;
      try {
        await this.deps.checkpoints.renew(lease, this.leaseMs);
        this.lastWriteAt = this.now();
      } catch (error) {
        this.fail(error);
      }
    });
  }
}
