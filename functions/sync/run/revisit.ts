import { type CallRow, isEligible, isFinished, isLive } from '../calls/payload';
import { isoOf } from '../calls/time';
import { forEachConcurrent, type RunControl } from '../run-control';
import type { SyncSettings } from '../settings';
import type { AdoptRange, CheckpointStore } from '../state/checkpoint-store';
import type { CheckpointWriter } from './checkpoint-writer';
import type { RunDatabase } from './database';
import type { RunEffects } from './effects';
import type { FollowSet } from './follow-set';
import type { PostGate } from './post-gate';
import { callFields, type RunLog } from './run-log';
import type { Triage } from './triage';
import type { Source } from './types';

/**
 * The steps before the stream: the start-up read that adopts calls begun before a sync's start point,
 * and the revisit of the calls the run holds (followed, parked, queued for repair), each read again by
 * uniqueid and sent when it is ready, after the gate has asked the ledger about it.
 */
export interface HeldParts {
  readonly s: SyncSettings;
  readonly db: RunDatabase;
  readonly control: RunControl;
  readonly log: RunLog;
  readonly effects: RunEffects;
  readonly store: CheckpointStore;
  readonly gate: PostGate;
  readonly follow: FollowSet;
  readonly writer: CheckpointWriter;
  readonly triage: Triage;
  readonly now: () => number;
}

/** A call still live this long after it was first seen is given up on (a row VICIdial never closed). */
const OPEN_WITHOUT_END_MAX_SECONDS = 86_400;
/** call_date read per query by the start-up read: rows examined stay bounded at a big center. */
const START_UP_SLICE_SECONDS = 900;

/**
 * The start-up read of a new sync or a reset: calls that began up to START_LOOKBACK_SECONDS before the
 * start point (before the first scan's reach) and end after it, or are still going, are followed like
 * any call seen unfinished, and delivered by the ordinary paths. It uses at most half of a run's time;
 * its progress goes with the next checkpoint, so a big center's read is spread over the first runs.
 */
export async function readStartUp(p: HeldParts, range: AdoptRange): Promise<void> {
  const budgetEnd = p.now() + p.control.timeLeft() / 2;
  let from = range.fromEpoch;
  let rows = 0;
  let adopted = 0;
  let full = false;
  while (from < range.toEpoch && !full && !p.control.stopped && p.now() < budgetEnd) {
    const to = Math.min(from + START_UP_SLICE_SECONDS, range.toEpoch);
    const slice = await p.db.query((o) => p.db.calls.readAdopt(from, to, range.startEpoch, o));
    rows += slice.length;
    for (const row of slice) {
      if (p.gate.isResolved(row.uniqueid) || p.follow.isFollowed(row.uniqueid)) continue;
      if (!p.follow.follow(row)) {
        full = true;
        break;
      }
      adopted++;
    }
    if (!full) from = to;
  }
  const left = from >= range.toEpoch ? null : { ...range, fromEpoch: from };
  p.writer.adoptProgress(left);
  p.log.log('info', 'start_up_read', {
    fromTime: isoOf(range.fromEpoch),
    throughTime: isoOf(from),
    startTime: isoOf(range.startEpoch),
    rowsReturned: rows,
    adopted,
    done: left === null,
  });
}

export async function revisitHeld(p: HeldParts): Promise<void> {
  const followed = p.follow.followedCalls();
  const parked = p.follow.parkedCalls();
  const repairs = await p.effects.repairs(p.control.timeLeft());
  if (followed.length + parked.length + repairs.length === 0) return;
  const rows = new Map(
    (
      await p.db.query((o) =>
        p.db.calls.readByUniqueid(
          [...followed, ...parked, ...repairs].map((c) => c.uniqueid),
          p.writer.cursor,
          o,
        ),
      )
    ).map((r) => [r.uniqueid, r as CallRow]),
  );
  p.triage.knowRows(rows.values());
  const toSend: { row: CallRow; source: Source }[] = [];
  for (const f of followed) {
    const row = rows.get(f.uniqueid);
    if (!row) {
      if (await deletedAsTwin(p, f)) continue;
      await p.triage.giveUp(
        f,
        'followed',
        null,
        'row left vicidial_log (archived or deleted) before it finished',
      );
      continue;
    }
    if (isFinished(row, p.s.transientStatuses)) {
      if (!isEligible(row, p.s.transientStatuses, p.s.minDurationSeconds)) {
        // Finished as a call the sync does not send (no length, say): nothing more to follow.
        p.follow.unfollow(f.uniqueid);
        p.log.log('info', 'pending_dropped', callFields(row));
      } else {
        // Sent now, wherever it ends: the ledger makes the scan skip it when it reads it again, and it
        // leaves the follow set at once (held back for the cursor, a slow run would follow hundreds).
        toSend.push({ row, source: 'pending' });
      }
      continue;
    }
    const age = p.db.now - row.end_epoch;
    if (!isLive(row) && age > p.s.pendingMaxAgeSeconds) {
      p.log.log('warn', 'pending_expired', { ...callFields(row), ageSeconds: age });
      toSend.push({ row, source: 'pending' });
    } else if (isLive(row) && p.db.now - f.firstSeen > OPEN_WITHOUT_END_MAX_SECONDS) {
      const reason = 'still going 24 hours after it was first seen (VICIdial never closed the row)';
      await p.triage.giveUp(f, 'followed', row, reason);
    }
  }
  for (const k of parked) {
    const row = rows.get(k.uniqueid);
    if (row) toSend.push({ row, source: 'parked' });
    else {
      const reason = `row left vicidial_log while parked (last answer: HTTP ${k.lastStatus ?? 'none'})`;
      await p.triage.giveUp(k, 'parked', null, reason);
    }
  }
  for (const r of repairs) {
    const row = rows.get(r.uniqueid);
    p.triage.isRepair(r.uniqueid);
    if (!row || p.follow.isFollowed(r.uniqueid) || p.follow.isParked(r.uniqueid)) {
      // Gone from vicidial_log, or held by this sync already: nothing for the repair to do.
      p.writer.repairDone(r.uniqueid);
      p.log.log('info', 'repair_dropped', { uniqueid: r.uniqueid, reason: row ? 'held' : 'row gone' });
      continue;
    }
    toSend.push({ row, source: 'repair' });
  }
  // R3 for held calls: the ledger is asked about each by every minute its end can have been recorded
  // under (a crash between the ledger and checkpoint writes, a reset, a repair queued twice).
  if (toSend.length > 0) {
    const outcomes = await p.store.ledger.outcomes(
      p.s.syncId,
      toSend.map(({ row }) => ({
        uniqueid: row.uniqueid,
        fromEpoch: Number(row.start_epoch ?? row.end_epoch) || row.end_epoch,
        toEpoch: row.end_epoch,
      })),
    );
    p.gate.learn(outcomes.keys());
  }
  // Repairs first: they are the oldest calls.
  toSend.sort((a, b) => (a.source === 'repair' ? 0 : 1) - (b.source === 'repair' ? 0 : 1));
  // Parked retries are not fresh calls: a run of them failing says nothing about an outage, but it is
  // no use spending the run's time on the rest.
  let parkedInRow = 0;
  await forEachConcurrent(
    toSend,
    p.s.concurrency,
    () => p.control.stopped,
    async ({ row, source }) => {
      if (source === 'parked' && parkedInRow >= p.s.failureStop) return;
      const result = await p.triage.resolveCall(row, source);
      if (source === 'parked') parkedInRow = result === 'failed' ? parkedInRow + 1 : 0;
    },
  );
}

/**
 * A followed row that vanished because VICIdial's cleanup deleted it as a duplicate: its twin (same
 * uniqueid prefix, same end) is still there and is the one delivered. Anything else that vanishes is a
 * dead letter.
 */
async function deletedAsTwin(p: HeldParts, call: { uniqueid: string; endEpoch: number }): Promise<boolean> {
  const rows = await p.db.query((o) => p.db.calls.samePrefix(call.uniqueid, o));
  const twin = rows.find(
    (r) => r.uniqueid !== call.uniqueid && (call.endEpoch === 0 || r.end_epoch === call.endEpoch),
  );
  if (!twin) return false;
  p.follow.unfollow(call.uniqueid);
  p.log.log('info', 'followed_duplicate_removed', {
    uniqueid: call.uniqueid,
    twin: twin.uniqueid,
    endEpoch: call.endEpoch,
  });
  return true;
}
