import { type CallRow, isEligible } from '../calls/payload';
import { isoOf } from '../calls/time';
import type { SyncSettings } from '../settings';
import type { HeldRow, VicidialLog } from '../source/vicidial-log';
import type { CheckpointState, DeadLetter, ParkedCall, PendingCall } from '../state/checkpoint-store';
import { hourOf } from '../state/ledger';
import { listDeadLetters } from './dead-letters';

/**
 * `did-sync trace <uniqueid>`: one call's fate, the question operators ask most ("did call X reach the
 * optimizer?"). The facts come from every place the sync keeps a trace of a call (its row, the ledger
 * around its end, the checkpoint's followed and parked calls, the repair queue, the dead letters); the
 * verdict is a pure function of them. The API cannot be asked: it has no read-back by uniqueid.
 */

export type TraceVerdict =
  | 'delivered'
  | 'dead_lettered'
  | 'followed'
  | 'parked'
  | 'queued'
  | 'not_reached'
  | 'not_eligible'
  | 'before_ledger'
  | 'missing'
  | 'never_seen';

/** Verdicts that mean nothing needs doing: delivered, on its way, or not for the API by the sync's rules. */
export const SETTLED_VERDICTS: ReadonlySet<TraceVerdict> = new Set([
  'delivered',
  'followed',
  'parked',
  'queued',
  'not_reached',
  'not_eligible',
  'before_ledger',
]);

export interface TraceFacts {
  readonly uniqueid: string;
  readonly row: HeldRow | null;
  readonly eligible: boolean | null;
  readonly whyNotEligible: string | null;
  /** The ledger hour (ISO) holding it, and the hours looked at. */
  readonly ledgerHour: string | null;
  readonly hoursSearched: readonly string[];
  /** Followed: read again each run until its disposition is final (`pending` in the JSON, a contract). */
  readonly pending: PendingCall | null;
  readonly parked: ParkedCall | null;
  readonly queued: { readonly endEpoch: number } | null;
  readonly deadLetter: DeadLetter | null;
  readonly cursor: { readonly endEpoch: number; readonly uniqueid: string } | null;
  readonly ledgerSince: string | null;
}

export interface TraceReport extends TraceFacts {
  readonly syncId: string;
  readonly verdict: TraceVerdict;
  /** One sentence for a person. */
  readonly summary: string;
  readonly settled: boolean;
}

function whyNot(row: CallRow, settings: SyncSettings): string | null {
  if (!isEligible(row, settings.transientStatuses, settings.minDurationSeconds)) {
    if (!(row.end_epoch > 0)) return 'no end yet (the call is live or was never closed)';
    if (row.status === null || settings.transientStatuses.has(row.status.toUpperCase()))
      return `status ${row.status ?? '(none)'} is not final yet`;
    return `length ${row.length_in_sec ?? 0} s is not above MIN_DURATION_SECONDS=${settings.minDurationSeconds}`;
  }
  const campaign = row.campaign_id ?? '';
  if (settings.campaigns.length > 0 && !settings.campaigns.includes(campaign))
    return `campaign ${campaign || '(none)'} is not in CAMPAIGNS`;
  if (settings.excludeCampaigns.includes(campaign)) return `campaign ${campaign} is in EXCLUDE_CAMPAIGNS`;
  return null;
}

export function judgeTrace(syncId: string, f: TraceFacts): TraceReport {
  const verdict = ((): [TraceVerdict, string] => {
    const dl = f.deadLetter;
    if (dl) {
      return [
        'dead_lettered',
        `dead-lettered ${dl.createdAt} after ${dl.attempts} attempt(s): ${dl.reason}${dl.responseExcerpt ? `; the API answered: ${dl.responseExcerpt}` : ''}`,
      ];
    }
    if (f.ledgerHour) return ['delivered', `delivered: recorded in the ledger hour ${f.ledgerHour}`];
    if (f.pending)
      return [
        'followed',
        `followed since ${isoOf(f.pending.firstSeen)}: read again each run until its disposition is final (now ${f.row?.status ?? 'row gone'})`,
      ];
    if (f.parked)
      return [
        'parked',
        `parked: failed in ${f.parked.failures} run(s) since ${isoOf(f.parked.firstFailedAt)}, last HTTP ${f.parked.lastStatus ?? 'none'}; retried each run`,
      ];
    if (f.queued) return ['queued', 'queued by reconcile as missing: the next run delivers it'];
    if (!f.row) return ['never_seen', 'never seen: no row in vicidial_log and no record of it in the sync'];
    if (f.row.beyond_cursor === 1)
      return [
        'not_reached',
        `not reached yet: it ends after the cursor${f.cursor ? ` (${isoOf(f.cursor.endEpoch)})` : ''}`,
      ];
    if (f.eligible === false) return ['not_eligible', `not sent by the sync's rules: ${f.whyNotEligible}`];
    if (f.ledgerSince && f.row.end_epoch < Date.parse(f.ledgerSince) / 1000)
      return [
        'before_ledger',
        `ended before the ledger start ${f.ledgerSince}: delivered then if the sync ran, but not recorded`,
      ];
    return [
      'missing',
      'missing: behind the cursor, eligible, and in no record (run did-sync reconcile --repair over its hour)',
    ];
  })();
  return {
    syncId,
    ...f,
    verdict: verdict[0],
    summary: verdict[1],
    settled: SETTLED_VERDICTS.has(verdict[0]),
  };
}

export interface TraceDeps {
  readonly settings: SyncSettings;
  readonly calls: Pick<VicidialLog, 'readByUniqueid'> | undefined;
  readonly checkpoints: {
    read(syncId: string): Promise<CheckpointState | undefined>;
    repairs(syncId: string): Promise<{ uniqueid: string; endEpoch: number }[]>;
    deadLetters(syncId: string): AsyncGenerator<DeadLetter>;
    readonly ledger: { load(syncId: string, from: number, to: number): Promise<Map<number, Set<string>>> };
  };
}

export async function traceCall(deps: TraceDeps, uniqueid: string): Promise<TraceReport> {
  const { syncId } = deps.settings;
  const state = await deps.checkpoints.read(syncId);
  const cursor = state?.cursor ?? { endEpoch: 0, uniqueid: '' };
  const [rows, repairs, letters] = await Promise.all([
    deps.calls ? deps.calls.readByUniqueid([uniqueid], cursor, { timeoutMs: 10_000 }) : Promise.resolve([]),
    deps.checkpoints.repairs(syncId),
    listDeadLetters(deps.checkpoints as Parameters<typeof listDeadLetters>[0], syncId, { uniqueid }),
  ]);
  const row = rows[0] ?? null;
  // Where to look in the ledger: around its end (which can move, so the neighbouring hours too), or,
  // with no row, around the epoch its uniqueid starts with (Asterisk's "<epoch>.<counter>").
  const prefix = Number(uniqueid.split('.')[0]);
  const anchor =
    row && row.end_epoch > 0 ? row.end_epoch : Number.isFinite(prefix) && prefix > 0 ? prefix : null;
  let ledgerHour: string | null = null;
  const hoursSearched: string[] = [];
  if (anchor !== null) {
    const from = hourOf(anchor) - 3600;
    const to = hourOf(anchor) + 3 * 3600;
    const hours = await deps.checkpoints.ledger.load(syncId, from, to);
    for (const [hour, uids] of hours) {
      hoursSearched.push(isoOf(hour));
      if (uids.has(uniqueid) && ledgerHour === null) ledgerHour = isoOf(hour);
    }
  }
  const queued = repairs.find((r) => r.uniqueid === uniqueid);
  const eligibility = row ? whyNot(row, deps.settings) : null;
  return judgeTrace(syncId, {
    uniqueid,
    row,
    eligible: row ? eligibility === null : null,
    whyNotEligible: eligibility,
    ledgerHour,
    hoursSearched,
    pending: state?.pending.find((p) => p.uniqueid === uniqueid) ?? null,
    parked: state?.parked.find((p) => p.uniqueid === uniqueid) ?? null,
    queued: queued ? { endEpoch: queued.endEpoch } : null,
    deadLetter: letters[0] ?? null,
    cursor: state ? state.cursor : null,
    ledgerSince: state?.ledgerSince ? isoOf(state.ledgerSince) : null,
  });
}
