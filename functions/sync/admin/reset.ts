import { cursorAt } from '../calls/cursor';
import { isoOf } from '../calls/time';
import type { SyncLog } from '../log';
import { instantProblem, type SyncSettings } from '../settings';
import type { VicidialLog } from '../source/vicidial-log';
import type { AdoptRange, CheckpointState, CheckpointStore, SkippedRange } from '../state/checkpoint-store';
import { readStatus, type StatusReport } from './status';

/**
 * Moving the checkpoint by hand, saying exactly what the next runs will do, and doing it:
 *
 * - **backward**: the next runs read the range again; the gate posts only the calls the ledger does
 *   not hold (the count printed). Calls the ledger records as delivered are posted again only with
 *   `resend`, once each, counted and logged by the run (`call_resent`).
 * - **forward**: the eligible calls of the skipped range that were never delivered are counted; the
 *   reset is refused unless `skipUndelivered` is given, and the range is kept so reconcile reports
 *   them as skipped by a reset, never as missing or silently out of its view.
 * - either way the start-up read is armed again from the new cursor: calls that began up to
 *   START_LOOKBACK_SECONDS before it and end after it are followed.
 *
 * Refused before anything is written: an instant after the database's clock, before 2000 or in
 * milliseconds; a reset while a run holds the lease (unless forced: that run is fenced out).
 */

/** A reset that would silently skip calls, or cannot be checked: refused before anything is written. */
export class ResetRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ResetRefusedError';
  }
}

export interface ResetOptions {
  readonly force: boolean;
  /** The database cannot be reached: check the instant against this host's clock instead. */
  readonly withoutDatabase: boolean;
  /** Backward: post the calls the ledger holds as delivered once more. */
  readonly resend?: boolean;
  /** Forward: skip the eligible calls that were never delivered (reconcile reports them as skipped). */
  readonly skipUndelivered?: boolean;
}

export interface ResetReport extends StatusReport {
  /** Calls between the new and the old cursor that the next runs will post (null: not counted). */
  readonly rePost: number | null;
  readonly direction: 'backward' | 'forward' | 'none' | 'new';
  /** Eligible calls ending between the two cursors (null: not counted). */
  readonly eligible: number | null;
  /** Of those, the ledger holds as delivered / dead-lettered. */
  readonly alreadyDelivered: number | null;
  readonly deadLettered: number | null;
  /** Backward with `resend`: delivered calls that will be posted again. */
  readonly resend: number;
  /** Forward: eligible calls never delivered that the reset skips. */
  readonly skippedUndelivered: number;
  readonly checkedAgainst: 'database' | 'host';
}

type ResetCalls = Pick<VicidialLog, 'now' | 'eligibleEnding'>;
type ResetSettings = Pick<SyncSettings, 'lookbackSeconds' | 'startLookbackSeconds'>;

interface Tally {
  readonly eligible: number;
  readonly delivered: number;
  readonly deadLettered: number;
  /** Neither in the ledger nor held (followed, parked) by the sync. */
  readonly undelivered: number;
}

/** The eligible calls ending in [from, to) and what the ledger holds of them. */
async function tally(
  store: CheckpointStore,
  calls: ResetCalls,
  syncId: string,
  from: number,
  to: number,
  settings: ResetSettings,
  before: CheckpointState,
): Promise<Tally> {
  const rows = await calls.eligibleEnding(from, to, settings.startLookbackSeconds, { timeoutMs: 60_000 });
  const outcomes = await store.ledger.outcomes(
    syncId,
    rows.map((r) => ({
      uniqueid: r.uniqueid,
      fromEpoch: r.start_epoch || r.end_epoch,
      toEpoch: r.end_epoch,
    })),
  );
  const held = new Set([...before.pending, ...before.parked].map((c) => c.uniqueid));
  let delivered = 0;
  let deadLettered = 0;
  let undelivered = 0;
  for (const r of rows) {
    const outcome = outcomes.get(r.uniqueid);
    if (outcome === 'delivered') delivered++;
    else if (outcome === 'dead_lettered') deadLettered++;
    else if (!held.has(r.uniqueid)) undelivered++;
  }
  return { eligible: rows.length, delivered, deadLettered, undelivered };
}

export async function resetCheckpoint(
  store: CheckpointStore,
  calls: ResetCalls | undefined,
  syncId: string,
  toEpoch: number,
  options: ResetOptions,
  log: SyncLog,
  settings: ResetSettings,
): Promise<ResetReport> {
  let dbNow: number | undefined;
  if (calls) {
    try {
      dbNow = await calls.now({ timeoutMs: 10_000 });
    } catch (error) {
      if (!options.withoutDatabase) {
        throw new ResetRefusedError(
          `cannot check the new cursor against the database's clock (${(error as Error).message}); to check it against this host's clock instead, say so explicitly (CLI --without-database, action "withoutDatabase": true)`,
        );
      }
    }
  } else if (!options.withoutDatabase) {
    throw new ResetRefusedError('no database to check the new cursor against');
  }
  const checkedAgainst = dbNow === undefined ? 'host' : 'database';
  const problem = instantProblem(
    toEpoch,
    dbNow ?? Math.floor(Date.now() / 1000),
    dbNow === undefined ? "this host's clock" : "the database's clock",
  );
  if (problem) throw new ResetRefusedError(`to: ${problem}`);
  const before = await store.read(syncId);
  const from = before?.cursor.endEpoch;
  const direction =
    from === undefined ? 'new' : toEpoch < from ? 'backward' : toEpoch > from ? 'forward' : 'none';
  if (options.resend && direction !== 'backward') {
    throw new ResetRefusedError(
      '--resend posts again calls behind the current cursor: it goes with a backward reset only',
    );
  }
  const counted = calls !== undefined && dbNow !== undefined && before !== undefined;
  let t: Tally | undefined;
  if (counted && from !== undefined && direction === 'backward') {
    t = await tally(store, calls, syncId, toEpoch, from, settings, before);
  } else if (counted && from !== undefined && direction === 'forward') {
    t = await tally(store, calls, syncId, from, toEpoch, settings, before);
  }
  if (direction === 'forward' && from !== undefined && !options.skipUndelivered) {
    if (!t) {
      throw new ResetRefusedError(
        'a forward reset skips calls, and without the database they cannot be counted: pass --skip-undelivered (action "skipUndelivered": true) to skip them uncounted',
      );
    }
    if (t.undelivered > 0) {
      throw new ResetRefusedError(
        `${t.undelivered} eligible call(s) ending between ${isoOf(from)} and ${isoOf(toEpoch)} were never delivered and would be skipped: pass --skip-undelivered (action "skipUndelivered": true) to skip them (reconcile then reports them as skipped by this reset)`,
      );
    }
  }
  const adopt: AdoptRange | undefined =
    settings.startLookbackSeconds > settings.lookbackSeconds
      ? {
          fromEpoch: toEpoch - settings.startLookbackSeconds,
          toEpoch: toEpoch - settings.lookbackSeconds,
          startEpoch: toEpoch,
        }
      : undefined;
  const at = new Date().toISOString();
  const skipped: SkippedRange[] | undefined =
    direction === 'forward' && from !== undefined
      ? [...(before?.skipped ?? []), { fromEpoch: from, toEpoch, at }]
      : undefined;
  const ledgerSince =
    before?.ledgerSince === null || before?.ledgerSince === undefined
      ? toEpoch
      : Math.min(before.ledgerSince, toEpoch);
  const state = await store.reset(syncId, cursorAt(toEpoch), options.force, {
    ledgerSince,
    ...(options.resend && from !== undefined ? { resend: { fromEpoch: toEpoch, toEpoch: from } } : {}),
    ...(adopt ? { adopt } : {}),
    ...(skipped ? { skipped } : {}),
  });
  const resend = options.resend ? (t?.delivered ?? 0) : 0;
  const rePost =
    direction === 'backward' ? (t ? t.undelivered + resend : null) : direction === 'forward' ? 0 : 0;
  log.log('warn', 'checkpoint_reset', {
    syncId,
    direction,
    cursorEpoch: state.cursor.endEpoch,
    cursorTime: isoOf(state.cursor.endEpoch),
    previousCursorEpoch: from ?? null,
    fence: state.fence,
    force: options.force,
    rePost,
    eligible: t?.eligible ?? null,
    alreadyDelivered: t?.delivered ?? null,
    resend,
    skippedUndelivered: direction === 'forward' ? (t?.undelivered ?? null) : 0,
    checkedAgainst,
  });
  const status = await readStatus(
    store,
    syncId,
    dbNow === undefined ? undefined : async () => dbNow as number,
  );
  return {
    ...status,
    rePost,
    direction,
    eligible: t?.eligible ?? null,
    alreadyDelivered: t?.delivered ?? null,
    deadLettered: t?.deadLettered ?? null,
    resend,
    skippedUndelivered: direction === 'forward' ? (t?.undelivered ?? 0) : 0,
    checkedAgainst,
  };
}
