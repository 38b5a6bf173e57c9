import { cursorAt } from '../calls/cursor';
import { type CallRow, isEligible } from '../calls/payload';
import { isoOf } from '../calls/time';
import { twinKey } from '../calls/twins';
import type { SyncLog } from '../log';
import { RunControl } from '../run-control';
import { EARLIEST_INSTANT, MILLISECONDS_THRESHOLD, type SyncSettings } from '../settings';
import { CallDateScan } from '../source/call-date-scan';
import type { VicidialLog } from '../source/vicidial-log';
import type { CheckpointStore } from '../state/checkpoint-store';
import { hourOf } from '../state/ledger';

/**
 * Proves, hour by hour, that every eligible call reached the API, and repairs what did not: a keyset
 * cursor cannot see a row that became visible behind it (a clock that lags, an UPDATE held by a table
 * lock, a status filled in late, a lagging replica). For each hour of end_epoch in the range it counts
 * the eligible calls in vicidial_log (the sync's own filters) and looks each one up in the delivery
 * ledger, the dead letters, the followed and parked calls and the repair queue; a call in none of them is
 * **missing**. With `repair`, each missing call is queued (an idempotent put) and the next run delivers
 * it through the ordinary path. Read-only otherwise, and it takes no lease: a run is never skipped for it.
 *
 * It reads the call_date index in order once over the range (from RECONCILE_MARGIN_SECONDS before it,
 * for calls written complete at their end), so rows read per hour reconciled are about the rows of that
 * hour. It stops before its deadline and names the hours it did not reach: never a false total.
 */

/** Calls written complete at their end that lasted up to this long are found by reconcile. */
export const RECONCILE_MARGIN_SECONDS = 2 * 3600;
const MISSING_LISTED = 100;

/** Eligible calls of a range, by what became of them. */
export interface Counts {
  readonly eligible: number;
  readonly delivered: number;
  readonly deadLettered: number;
  /** Followed calls (read again each run until final); `pending` in the JSON, a contract. */
  readonly pending: number;
  readonly parked: number;
  /** Missing calls in the repair queue (queued by this reconcile or an earlier one). */
  readonly queued: number;
  /** In a range a forward reset skipped on the operator's word: not delivered, and not missing. */
  readonly skipped: number;
  readonly missing: number;
}

export interface HourReport extends Counts {
  readonly hour: string;
}

export interface ReconcileReport extends Counts {
  readonly syncId: string;
  /** The range as asked, before it was narrowed. */
  readonly requested: { readonly since: string; readonly until: string | null };
  readonly since: string;
  readonly until: string;
  /** How the asked range was narrowed (ledger start, expired ledger hours, the cursor), one line each. */
  readonly notes: readonly string[];
  /** The ledger's start: nothing before it is reported. */
  readonly ledgerSince: string | null;
  readonly missingUniqueids: readonly string[];
  readonly hours: readonly HourReport[];
  /** Hours of the range not reconciled before the deadline. */
  readonly notReached: readonly string[];
  readonly rowsRead: number;
  readonly repair: boolean;
  readonly durationMs: number;
}

export interface ReconcileDeps {
  readonly settings: SyncSettings;
  readonly calls: VicidialLog;
  readonly checkpoints: CheckpointStore;
  readonly log: SyncLog;
}

export interface ReconcileOptions {
  /** Epoch seconds; clipped to the ledger's start. */
  readonly since: number;
  /** Epoch seconds, exclusive; default and at most the sync's cursor. */
  readonly until?: number;
  readonly repair: boolean;
  /** Epoch ms by which it has ended. */
  readonly deadline?: number;
}

/** A range that cannot be meant: refused before anything is read, with the fix in the message. */
export class ReconcileRangeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReconcileRangeError';
  }
}

export interface RangeContext {
  /** The database's clock, epoch seconds. */
  readonly now: number;
  readonly cursor: number;
  readonly ledgerSince: number | null;
  readonly ledgerDays: number;
}

/**
 * Checks and narrows a reconcile range. Refused: milliseconds, before 2000, a start or end after the
 * database's clock, a start not before the end, a start the sync has not reached. Narrowed, with a
 * note: to the ledger's start (calls before it were delivered without being recorded), to the first
 * hour whose ledger items have not expired (LEDGER_DAYS: an expired hour would report every call as
 * missing, and a repair would post them all again), and to the cursor.
 */
export function checkRange(
  asked: { readonly since: number; readonly until?: number | undefined },
  ctx: RangeContext,
): { since: number; until: number; notes: string[] } {
  for (const [name, value] of [
    ['since', asked.since],
    ['until', asked.until],
  ] as const) {
    if (value === undefined) continue;
    if (value > MILLISECONDS_THRESHOLD)
      throw new ReconcileRangeError(`${name}: ${value} looks like milliseconds; give epoch seconds`);
    if (value < EARLIEST_INSTANT)
      throw new ReconcileRangeError(`${name}: ${isoOf(value)} is before 2000-01-01`);
    if (value > ctx.now)
      throw new ReconcileRangeError(
        `${name}: ${isoOf(value)} is after the database's clock (${isoOf(ctx.now)})${name === 'until' ? '; leave until out to reconcile up to the cursor' : ''}`,
      );
  }
  if (asked.until !== undefined && asked.since >= asked.until)
    throw new ReconcileRangeError(
      `since (${isoOf(asked.since)}) must be before until (${isoOf(asked.until)})`,
    );
  if (asked.since >= ctx.cursor)
    throw new ReconcileRangeError(
      `since: ${isoOf(asked.since)} is at or after the sync's cursor (${isoOf(ctx.cursor)}): the sync has not read those calls yet`,
    );
  const notes: string[] = [];
  let since = asked.since;
  let until = asked.until ?? ctx.cursor;
  if (until > ctx.cursor) {
    notes.push(`until narrowed to the cursor ${isoOf(ctx.cursor)}: the sync has not read later calls yet`);
    until = ctx.cursor;
  }
  const ledgerStart = ctx.ledgerSince ?? ctx.cursor;
  if (since < ledgerStart) {
    notes.push(
      `since narrowed to the ledger start ${isoOf(ledgerStart)}: calls before it were delivered before the ledger recorded them`,
    );
    since = ledgerStart;
  }
  // An hour's ledger items expire LEDGER_DAYS after the hour; the next hour on is whole (an hour's margin
  // for DynamoDB's clock).
  const unexpired = hourOf(ctx.now - ctx.ledgerDays * 86_400) + 3600;
  if (since < unexpired) {
    notes.push(
      `since narrowed to ${isoOf(unexpired)}: ledger hours before it have expired (LEDGER_DAYS=${ctx.ledgerDays}); their calls cannot be checked`,
    );
    since = unexpired;
  }
  if (since > until) since = until;
  return { since, until, notes };
}

interface Bucket {
  hour: number;
  rows: CallRow[];
}

export async function reconcile(deps: ReconcileDeps, options: ReconcileOptions): Promise<ReconcileReport> {
  const started = Date.now();
  const { syncId } = deps.settings;
  const control = new RunControl(options.deadline);
  const state = await deps.checkpoints.read(syncId);
  if (!state) throw new ReconcileRangeError(`sync "${syncId}" has no checkpoint yet: nothing to reconcile`);
  const ledgerSince = state.ledgerSince;
  const { since, until, notes } = checkRange(
    { since: options.since, until: options.until },
    {
      now: await deps.calls.now({ timeoutMs: control.timeLeft() }),
      cursor: state.cursor.endEpoch,
      ledgerSince,
      ledgerDays: deps.settings.ledgerDays,
    },
  );
  for (const note of notes) deps.log.log('info', 'reconcile_range_narrowed', { syncId, note });
  const held = {
    followed: new Set(state.pending.map((p) => p.uniqueid)),
    parked: new Set(state.parked.map((p) => p.uniqueid)),
  };
  const [deadLetters, queuedBefore] = await Promise.all([
    (async () => {
      const out = new Set<string>();
      for await (const l of deps.checkpoints.deadLetters(syncId)) out.add(l.uniqueid);
      return out;
    })(),
    deps.checkpoints.repairs(syncId).then((r) => new Set(r.map((x) => x.uniqueid))),
  ]);

  const hours: HourReport[] = [];
  const notReached: string[] = [];
  const missingUniqueids: string[] = [];
  let rowsRead = 0;
  const zero = (): { -readonly [K in keyof Counts]: number } => ({
    eligible: 0,
    delivered: 0,
    deadLettered: 0,
    pending: 0,
    parked: 0,
    queued: 0,
    skipped: 0,
    missing: 0,
  });
  const totals = zero();

  const settle = async (bucket: Bucket) => {
    const hourEnd = bucket.hour + 3600;
    const ledger =
      (await deps.checkpoints.ledger.load(syncId, bucket.hour, hourEnd)).get(bucket.hour) ?? new Set();
    const report = zero();
    // A call whose end moved after it was delivered (sent as it was, then closed) sits under another
    // minute, perhaps another hour: looked up by every minute its end can have been recorded under.
    const elsewhere = await deps.checkpoints.ledger.outcomes(
      syncId,
      bucket.rows
        .filter((r) => !ledger.has(r.uniqueid) && !deadLetters.has(r.uniqueid))
        .map((r) => ({
          uniqueid: r.uniqueid,
          fromEpoch: Number(r.start_epoch ?? r.end_epoch) || r.end_epoch,
          toEpoch: r.end_epoch,
        })),
    );
    const accounted = (uid: string) => deadLetters.has(uid) || ledger.has(uid) || elsewhere.has(uid);
    // Twins VICIdial's cleanup will delete: one accounted copy accounts for the others.
    const twinsAccounted = new Set<string>();
    for (const row of bucket.rows) {
      const key = twinKey(row);
      if (key && accounted(row.uniqueid)) twinsAccounted.add(key);
    }
    const skippedByReset = (end: number) => state.skipped.some((r) => end >= r.fromEpoch && end < r.toEpoch);
    for (const row of bucket.rows) {
      report.eligible++;
      const uid = row.uniqueid;
      const key = twinKey(row);
      if (deadLetters.has(uid) || elsewhere.get(uid) === 'dead_lettered') report.deadLettered++;
      else if (ledger.has(uid) || elsewhere.has(uid)) report.delivered++;
      else if (key && twinsAccounted.has(key)) report.delivered++;
      else if (held.followed.has(uid)) report.pending++;
      else if (held.parked.has(uid)) report.parked++;
      else if (queuedBefore.has(uid)) report.queued++;
      else if (skippedByReset(row.end_epoch)) report.skipped++;
      else {
        report.missing++;
        if (missingUniqueids.length < MISSING_LISTED) missingUniqueids.push(uid);
        deps.log.log('warn', 'call_missing', {
          syncId,
          uniqueid: uid,
          hour: isoOf(bucket.hour),
          endEpoch: row.end_epoch,
          campaignId: row.campaign_id,
          behindCursorSeconds: state.cursor.endEpoch - row.end_epoch,
          repair: options.repair,
        });
        if (options.repair) {
          await deps.checkpoints.putRepair(
            syncId,
            { uniqueid: uid, endEpoch: row.end_epoch },
            Math.floor(Date.now() / 1000) + deps.settings.ledgerDays * 86_400,
          );
          report.queued++;
        }
      }
    }
    for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += report[k];
    hours.push({ hour: isoOf(bucket.hour), ...report });
  };

  const buckets = new Map<number, Bucket>();
  for (let hour = hourOf(since); hour < until; hour += 3600) buckets.set(hour, { hour, rows: [] });
  let next = hourOf(since);
  if (since < until) {
    const filters = deps.settings;
    const scan = new CallDateScan(
      deps.calls,
      cursorAt(since),
      {
        lookbackSeconds: RECONCILE_MARGIN_SECONDS,
        chunkRows: 2000,
        take: (row) =>
          row.end_epoch >= since &&
          row.end_epoch < until &&
          isEligible(row, filters.transientStatuses, filters.minDurationSeconds),
      },
      await deps.calls.offsetChanges(since - RECONCILE_MARGIN_SECONDS - 3600, since + 3600),
    );
    for (;;) {
      if (!control.mayStart(2_000)) break;
      const chunk = await scan.next(until, { timeoutMs: control.timeLeft() });
      rowsRead += chunk.read;
      for (const row of chunk.released) buckets.get(hourOf(row.end_epoch))?.rows.push(row);
      // An hour is complete once the scan has passed its last second.
      while (next < until && Math.min(next + 3600, until) - 1 <= chunk.through) {
        const bucket = buckets.get(next) as Bucket;
        buckets.delete(next);
        await settle(bucket);
        next += 3600;
      }
      if (chunk.caughtUp || next >= until) break;
    }
  }
  for (const bucket of buckets.values()) notReached.push(isoOf(bucket.hour));
  const report: ReconcileReport = {
    syncId,
    requested: {
      since: isoOf(options.since),
      until: options.until === undefined ? null : isoOf(options.until),
    },
    since: isoOf(since),
    until: isoOf(until),
    notes,
    ledgerSince: ledgerSince === null ? null : isoOf(ledgerSince),
    ...totals,
    missingUniqueids,
    hours,
    notReached,
    rowsRead,
    repair: options.repair,
    durationMs: Date.now() - started,
  };
  deps.log.log(totals.missing > 0 || notReached.length > 0 ? 'warn' : 'info', 'reconcile_end', {
    syncId,
    since: report.since,
    until: report.until,
    eligible: totals.eligible,
    delivered: totals.delivered,
    deadLettered: totals.deadLettered,
    pending: totals.pending,
    parked: totals.parked,
    queued: totals.queued,
    skipped: totals.skipped,
    missing: totals.missing,
    notReached: notReached.length,
    rowsRead,
    durationMs: report.durationMs,
  });
  return report;
}
