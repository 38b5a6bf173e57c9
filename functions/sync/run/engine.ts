import { lagSeconds } from '../calls/cursor';
import { HeldCalls } from '../calls/held-calls';
import { isoOf } from '../calls/time';
import { describeError } from '../log';
import { PLANNED_STOPS, RunControl, type StopReason } from '../run-control';
import { followedLogOf } from '../state/followed-log';
import { CheckpointWriter } from './checkpoint-writer';
import { claim, knowledgeAt, preflight } from './claim';
import { RunDatabase } from './database';
import { dryEffects, liveEffects, type RunEffects } from './effects';
import { FollowSet } from './follow-set';
import { PostGate } from './post-gate';
import { readStartUp, revisitHeld } from './revisit';
import { RunLog } from './run-log';
import { stopFor } from './stop';
import { streamCalls } from './stream';
import { Triage } from './triage';
import { FINAL_WRITE_MS, type RunOptions, type RunOutcome, type RunSummary, type SyncDeps } from './types';

/**
 * The story of a run. The CLI and the Lambda handler are thin adapters over `runSync`.
 *
 *  1. Preflight: read the database clock; refuse a start point that cannot be meant; check that
 *     call_date is read in the zone VICIdial writes it in.
 *  2. Claim: take the lease (a dry run only reads); load the followed and parked calls and what the
 *     ledger holds of the calls the scan will read.
 *  3. Start-up read (a new sync, a reset): follow the calls that began before the start point.
 *  4. Revisit held calls: followed calls read again by uniqueid, parked calls retried, repairs sent.
 *  5. Stream: read the call_date index in order, post finished calls in (end_epoch, uniqueid) order,
 *     follow what is not finished yet.
 *  6. Triage what failed: isolated failures parked, streaks stop the run, parked calls counted.
 *  7. Finish: ledger first, then the cursor, with the lease release; one run_end line.
 *
 * The rules it keeps, each enforced in one place: R1 the cursor rule (follow-set.ts, decide), R2 the
 * ledger before the cursor and R6 the crash bound (checkpoint-writer.ts), R3 one gate before every post
 * (post-gate.ts, asked by triage.ts), R4 deadlines (run-control.ts, and the timer below), R5 every
 * possible repeat counted (delivery/call-delivery.ts, and `unrecorded`).
 */
export async function runSync(deps: SyncDeps, options: RunOptions): Promise<RunSummary> {
  const s = deps.settings;
  const now = deps.now ?? Date.now;
  const started = now();
  const control = new RunControl(options.deadline, now);
  const log = new RunLog(deps.log, s.syncId);
  const db = new RunDatabase(deps.calls, control);
  const effects: RunEffects = options.dryRun ? dryEffects(deps, log) : liveEffects(deps, control, log);
  const end = (outcome: RunOutcome, extra: Partial<RunSummary> = {}) =>
    endOf(s.syncId, outcome, control, effects, log, { durationMs: now() - started, ...extra });

  // 1, 2. Preflight and claim.
  let claimed: Exclude<Awaited<ReturnType<typeof claim>>, { holder: unknown }>;
  let known: Awaited<ReturnType<typeof knowledgeAt>>;
  try {
    if (!(await preflight(s, db, control, log))) return end('failed');
    const got = await claim(s, effects, db, control, options.owner);
    if ('holder' in got) {
      const holder = got.holder
        ? { owner: got.holder.owner, expiresAt: new Date(got.holder.expiresAt).toISOString() }
        : null;
      log.log('info', 'lease_skipped', {
        holder: holder?.owner ?? null,
        leaseExpiresAt: holder?.expiresAt ?? null,
      });
      return end('skipped', { reason: 'lease_held', lease: holder });
    }
    claimed = got;
  } catch (error) {
    stopFor(error, control, log);
    return end('failed');
  }
  try {
    known = await knowledgeAt(s, deps.checkpoints, db, claimed.state.cursor, claimed.state.ahead);
  } catch (error) {
    stopFor(error, control, log);
    const at = new Date(now()).toISOString();
    const lastRun = {
      outcome: 'failed',
      at,
      delivered: 0,
      deadLettered: 0,
      lagSeconds: null,
      reason: control.reason,
    };
    await effects.release(claimed.lease, lastRun, undefined, FINAL_WRITE_MS).catch(() => false);
    return end('failed', { cursor: claimed.state.cursor });
  }

  const { lease, state } = claimed;
  const gate = new PostGate();
  gate.learn(known.resolved);
  gate.allowResend(state.resend ?? undefined);
  const limits = { pendingMax: s.pendingMax, parkedMax: s.parkedMax, retryMaxRuns: s.retryMaxRuns };
  const follow = new FollowSet(new HeldCalls(state.pending, state.parked, limits), s, gate, db, control, log);
  const writer = new CheckpointWriter(
    effects,
    {
      lease,
      cursor: state.cursor,
      frontier: state.frontier,
      resendTo: state.resend?.toEpoch,
      followed: followedLogOf(state),
    },
    follow,
    gate,
    s,
    db,
    control,
    log,
    now,
  );
  const triage = new Triage(s, effects, gate, follow, writer, db, control, log, now);
  const parts = { s, db, control, log, effects, store: deps.checkpoints, gate, follow, writer, triage, now };
  logStart(log, options.owner, lease.fence, effects.dryRun, writer.cursor, db.now, follow);

  // 3-6. Start-up read, revisit, stream, triage, within the deadline (R4).
  writer.startTimers();
  const deadline =
    options.deadline === undefined
      ? undefined
      : setTimeout(() => control.stop('time_budget'), Math.max(0, control.timeLeft()));
  let stream = { batches: 0, callsRead: 0 };
  try {
    if (claimed.startUp) await readStartUp(parts, claimed.startUp);
    await revisitHeld(parts);
    if (!control.stopped)
      stream = await streamCalls(parts, { maxBatches: options.maxBatches, dstNear: known.dstNear });
    triage.settleSuspects(true);
  } catch (error) {
    stopFor(error, control, log);
  } finally {
    if (deadline) clearTimeout(deadline);
    await writer.stopTimers();
  }
  if (control.reason !== 'lease_lost') await triage.settleParked();

  // 7. Finish: the last checkpoint with the lease release.
  const final = await writer.finalWrite();
  const unrecorded = effects.dryRun ? 0 : writer.unrecorded();
  if (unrecorded > 0) {
    log.log('error', 'calls_unrecorded', {
      calls: unrecorded,
      detail: 'delivered, but their ledger entries could not be written: the next run posts them again',
    });
  }
  // Decided after the last write: the cursor rule or the ledger may stop the run there.
  const outcome: RunOutcome = !control.stopped
    ? 'completed'
    : PLANNED_STOPS.has(control.reason as StopReason)
      ? 'partial'
      : 'failed';
  const t = triage.tally;
  const summary: Partial<RunSummary> = {
    ...t,
    unrecorded,
    batches: stream.batches,
    callsRead: stream.callsRead,
    pending: follow.followedCount,
    parked: follow.parkedCount,
    cursor: writer.cursor,
    lagSeconds: lagSeconds(writer.cursor, db.now),
  };
  const released = await effects
    .release(
      lease,
      {
        outcome,
        at: new Date(now()).toISOString(),
        delivered: t.delivered,
        deadLettered: t.deadLettered,
        lagSeconds: summary.lagSeconds ?? null,
        ...(control.reason ? { reason: control.reason } : {}),
      },
      final ? { previous: final.previous, next: final.next, held: final.held } : undefined,
      FINAL_WRITE_MS,
    )
    .catch((error) => {
      log.log('error', 'lease_release_failed', describeError(error));
      return false;
    });
  if (released && final) await writer.finalWritten(final);
  if (!released && control.reason !== 'lease_lost') log.log('warn', 'lease_release_refused', {});
  return end(outcome, { ...summary, checkpoints: writer.checkpoints });
}

function logStart(
  log: RunLog,
  owner: string,
  fence: number,
  dryRun: boolean,
  cursor: RunSummary['cursor'] & object,
  dbNow: number,
  follow: FollowSet,
): void {
  const lag = lagSeconds(cursor, dbNow);
  log.log('info', 'run_start', {
    owner,
    fence: dryRun ? null : fence,
    dryRun,
    cursorEpoch: cursor.endEpoch,
    cursorUid: cursor.uniqueid,
    cursorTime: isoOf(cursor.endEpoch),
    lagSeconds: lag,
    pending: follow.followedCount,
    parked: follow.parkedCount,
  });
  if (lag < 0) {
    log.log('warn', 'cursor_ahead', {
      lagSeconds: lag,
      cursorTime: isoOf(cursor.endEpoch),
      dbTime: isoOf(dbNow),
    });
  }
}

/** The run's summary, and its one run_end line. */
function endOf(
  syncId: string,
  outcome: RunOutcome,
  control: RunControl,
  effects: RunEffects,
  log: RunLog,
  extra: Partial<RunSummary>,
): RunSummary {
  const summary: RunSummary = {
    syncId,
    outcome,
    ...(control.reason ? { reason: control.reason } : {}),
    ...(control.detail ? { detail: control.detail } : {}),
    dryRun: effects.dryRun,
    delivered: 0,
    deadLettered: 0,
    pending: 0,
    pendingResolved: 0,
    parked: 0,
    parkedNew: 0,
    recovered: 0,
    repaired: 0,
    skippedAhead: 0,
    resent: 0,
    unrecorded: 0,
    batches: 0,
    callsRead: 0,
    checkpoints: 0,
    cursor: null,
    lagSeconds: null,
    durationMs: 0,
    ...effects.deliveryStats(),
    ...extra,
  };
  if (outcome !== 'skipped') log.log(outcome === 'failed' ? 'error' : 'info', 'run_end', { ...summary });
  return summary;
}

export type { RunOptions, RunOutcome, RunSummary, Source, SyncDeps } from './types';
export { FINAL_WRITE_MS } from './types';
