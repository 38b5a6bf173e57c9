import { compareCursor, cursorOf } from '../calls/cursor';
import { type CallRow, isFinished } from '../calls/payload';
import { duplicateTwins } from '../calls/twins';
import type { RunControl } from '../run-control';
import type { SyncSettings } from '../settings';
import { CallDateScan } from '../source/call-date-scan';
import type { ScanRow } from '../source/vicidial-log';
import type { CheckpointWriter } from './checkpoint-writer';
import type { RunDatabase } from './database';
import type { FollowSet } from './follow-set';
import type { PostGate } from './post-gate';
import type { RunLog } from './run-log';
import { ScanWindow } from './scan-window';
import { stopFor } from './stop';
import type { Triage } from './triage';

/**
 * The stream step: reads the call_date index in order from LOOKBACK_SECONDS before the cursor while
 * workers post, so no worker waits at a batch boundary. Finished calls go out in (end_epoch, uniqueid)
 * order; calls not finished yet go to the follow set; calls the ledger holds are passed over; of two
 * twins VICIdial's cleanup will delete one of, only the survivor is posted.
 */
export interface StreamParts {
  readonly s: SyncSettings;
  readonly db: RunDatabase;
  readonly control: RunControl;
  readonly log: RunLog;
  readonly gate: PostGate;
  readonly follow: FollowSet;
  readonly writer: CheckpointWriter;
  readonly triage: Triage;
}

export interface StreamReport {
  /** Non-empty chunks read, and the rows they returned. */
  readonly batches: number;
  readonly callsRead: number;
}

export async function streamCalls(
  p: StreamParts,
  options: { readonly maxBatches: number | undefined; readonly dstNear: boolean },
): Promise<StreamReport> {
  const { s, control } = p;
  const start = p.writer.cursor;
  const window = new ScanWindow(start, {
    maxResolvedAhead: s.batchSize,
    readAheadBelow: Math.max(2 * s.concurrency, Math.ceil(s.batchSize / 2)),
    maxWindow: 2 * s.batchSize,
  });
  // Workers wait on a prefix held by failed calls with nothing in flight: those failures were isolated,
  // or, when nothing was delivered at all, the run can go no further.
  window.onStall = () => p.triage.settleSuspects(true);
  const scan: CallDateScan = new CallDateScan(
    p.db.calls,
    start,
    {
      lookbackSeconds: s.lookbackSeconds,
      chunkRows: s.batchSize,
      take: (row) => {
        if (isFinished(row, s.transientStatuses)) return true;
        p.follow.sawUnfinished(row as ScanRow, scan.nearDst);
        return false;
      },
    },
    // A daylight-saving change near the cursor: local call_date values repeat, start an hour earlier.
    options.dstNear,
  );
  p.writer.track(window, scan);
  const report = { batches: 0, callsRead: 0 };
  const reader = readChunks(p, window, scan, options.maxBatches, report)
    .catch((error) => stopFor(error, control, p.log))
    .finally(() => window.endOfInput());
  const workers = Array.from({ length: s.concurrency }, async () => {
    for (;;) {
      const slot = await window.next(control);
      if (!slot) return;
      const result = await p.triage.resolveCall(slot.row as CallRow, 'scan', () => window.resolve(slot));
      if (result === 'resolved') window.resolve(slot);
      else if (result === 'skipped') window.resolve(slot, false);
      window.release();
    }
  });
  await Promise.all([reader, ...workers]);
  if (window.limitReached && !window.caughtUp) control.stop('max_batches');
  return report;
}

async function readChunks(
  p: StreamParts,
  window: ScanWindow,
  scan: CallDateScan,
  maxBatches: number | undefined,
  report: { batches: number; callsRead: number },
): Promise<void> {
  const { s, control, db } = p;
  for (;;) {
    await window.wantMore(control);
    if (control.stopped) return;
    if (maxBatches !== undefined && report.batches >= maxBatches) {
      window.limitReached = true;
      return;
    }
    if (!control.mayStart(500)) return;
    const bound = (await db.readClock()) - s.settleSeconds;
    if (scan.through >= bound) {
      window.caughtUp = true;
      return;
    }
    const chunk = await db.query((o) => scan.next(bound, o));
    if (chunk.read > 0) {
      report.batches++;
      report.callsRead += chunk.read;
      p.log.log('info', 'batch', {
        batch: report.batches,
        rows: chunk.read,
        released: chunk.released.length,
        waiting: scan.waiting,
        through: chunk.through,
        lagSeconds: db.now - chunk.through,
      });
    }
    const twins = duplicateTwins(chunk.released);
    for (const row of chunk.released) {
      const survivor = twins.get(row.uniqueid);
      if (survivor === undefined) intake(p, window, row);
      else duplicateRow(p, window, row, survivor);
    }
    window.readThrough(chunk.through);
    if (chunk.caughtUp) {
      window.caughtUp = true;
      return;
    }
  }
}

/** Decides what a finished call read in order needs: a post, or nothing because it was handled. */
function intake(p: StreamParts, window: ScanWindow, row: CallRow): void {
  // At or before the cursor: resolved before this run, or followed (R1 saw to that when it was written).
  if (compareCursor(cursorOf(row), p.writer.cursor) <= 0) return;
  p.follow.sawFinished(row.uniqueid);
  if (p.gate.isResolved(row.uniqueid)) {
    p.triage.skippedAhead();
    window.add(row, 'skip');
    return;
  }
  if (p.follow.isParked(row.uniqueid)) {
    window.add(row, 'skip');
    return;
  }
  // A followed call that finished is delivered here, in order, and stops being followed once resolved.
  window.add(row, 'send');
}

/**
 * A twin VICIdial's cleanup will delete: only its survivor is posted. It is recorded as delivered (by
 * its twin) so reconcile never reports it, and the cursor passes it as it passes the survivor.
 */
function duplicateRow(p: StreamParts, window: ScanWindow, row: CallRow, survivor: string): void {
  if (compareCursor(cursorOf(row), p.writer.cursor) <= 0 || p.gate.isResolved(row.uniqueid)) return;
  p.writer.resolved(row.uniqueid, row.end_epoch, 'delivered');
  window.add(row, 'skip');
  p.log.log('info', 'duplicate_row_skipped', { uniqueid: row.uniqueid, survivor, endEpoch: row.end_epoch });
}
