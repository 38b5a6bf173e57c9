import { type Cursor, cursorAt } from '../calls/cursor';
import type { RunControl } from '../run-control';
import { instantProblem, SettingError, type SyncSettings } from '../settings';
import type { AdoptRange, CheckpointState, CheckpointStore, Lease } from '../state/checkpoint-store';
import type { RunDatabase } from './database';
import type { RunEffects } from './effects';
import type { RunLog } from './run-log';

/**
 * The steps before any call is read: preflight (the database clock, the start point, the zone
 * call_date is read in) and the claim (the lease, and what the run knows before it starts: the
 * checkpoint, the start-up read still to do, and the ledger's record of every call the scan will read).
 */

/** False: the run stops here (it says why through the control). */
export async function preflight(
  s: SyncSettings,
  db: RunDatabase,
  control: RunControl,
  log: RunLog,
): Promise<boolean> {
  const now = await db.readClock();
  if (s.startFrom !== undefined) {
    const problem = instantProblem(s.startFrom, now);
    if (problem) throw new SettingError('START_FROM', problem);
  }
  // A session zone other than the one VICIdial writes call_date in shifts every call_date bound by
  // hours: runs would "complete" and read nothing. Measured, not assumed, before anything is read.
  const zone = await db.query((o) => db.calls.timeZone(o));
  if (zone.status === 'mismatch') {
    control.stop('time_zone_mismatch', zone.message);
    log.log('error', 'time_zone_mismatch', {
      sessionTimeZone: zone.sessionTimeZone,
      differenceSeconds: zone.differenceSeconds,
      suggestedTimeZone: zone.suggestedTimeZone,
      error: zone.message,
    });
    return false;
  }
  if (zone.status === 'unknown') log.log('warn', 'time_zone_unchecked', { reason: zone.message });
  return true;
}

export interface Claimed {
  readonly lease: Lease;
  readonly state: CheckpointState;
  /** The start-up read still to do, if any. */
  readonly startUp: AdoptRange | null;
}

export type Claim = Claimed | { readonly holder: { owner: string; expiresAt: number } | null };

/** Takes the lease (free or expired), raising the fencing token; a new sync starts its ledger here. */
export async function claim(
  s: SyncSettings,
  effects: RunEffects,
  db: RunDatabase,
  control: RunControl,
  owner: string,
): Promise<Claim> {
  const initial = cursorAt(s.startFrom ?? db.now - 3600);
  const acquired = await effects.claim(owner, s.leaseSeconds * 1000, initial, control.timeLeft());
  if (!acquired.acquired) return { holder: acquired.holder };
  const { lease, state } = acquired;
  let startUp = state.adopt;
  if (state.ledgerSince === null) {
    const start = state.cursor.endEpoch;
    // A brand-new sync adopts the calls that began before its start point and end after it; an upgraded
    // one (its first fenced run was long ago) has followed them all along.
    const adopt =
      state.fence === 1 && s.startLookbackSeconds > s.lookbackSeconds
        ? { fromEpoch: start - s.startLookbackSeconds, toEpoch: start - s.lookbackSeconds, startEpoch: start }
        : undefined;
    await effects.startLedger(lease, start, adopt, control.timeLeft());
    startUp ??= adopt ?? null;
  }
  return { lease, state, startUp };
}

export interface Knowledge {
  /** Calls the ledger holds among those the scan will read: the gate posts none of them. */
  readonly resolved: Set<string>;
  /** A daylight-saving change near the cursor: the scan starts an hour earlier. */
  readonly dstNear: boolean;
}

/**
 * What the ledger holds for every call this run's scan will read (from LOOKBACK_SECONDS before the
 * cursor, an hour more near a daylight-saving change), whatever earlier runs wrote or failed to write
 * afterwards, and the list older versions kept in the checkpoint item.
 */
export async function knowledgeAt(
  s: SyncSettings,
  store: CheckpointStore,
  db: RunDatabase,
  cursor: Cursor,
  ahead: readonly { uniqueid: string }[],
): Promise<Knowledge> {
  const low = cursor.endEpoch - s.lookbackSeconds;
  const dstNear = await db.query((o) => db.calls.offsetChanges(low - 3600, cursor.endEpoch + 3600, o));
  const resolved = await store.ledger.loadAfter(s.syncId, low - (dstNear ? 3600 : 0));
  for (const a of ahead) resolved.add(a.uniqueid);
  return { resolved, dstNear };
}
