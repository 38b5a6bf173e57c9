import { type Cursor, lagSeconds } from '../calls/cursor';
import { isoOf } from '../calls/time';
import type { CheckpointStore, LastRun, ParkedCall } from '../state/checkpoint-store';
import type { RunHistory, RunRecord } from '../state/run-history';

/** `did-sync status` and the handler's `{"action":"status"}`: where the sync stands and what needs a look. */

export interface StatusReport {
  readonly syncId: string;
  readonly exists: boolean;
  readonly cursor: Cursor | null;
  readonly cursorTime: string | null;
  /** Clock minus cursor; negative when the cursor is ahead of the clock (then `warning` says so). */
  readonly lagSeconds: number | null;
  /** Which clock the lag is measured against: the database's, or this host's when it was unreachable. */
  readonly clock: 'database' | 'host';
  /** The first of `warnings` (kept for scripts written against it). */
  readonly warning: string | null;
  /** Everything that needs a look: a failed last run, a cursor ahead, no database clock. */
  readonly warnings: readonly string[];
  /** No warning and the last run did not fail. */
  readonly healthy: boolean;
  readonly lease: { owner: string; expiresAt: string } | null;
  /** Followed calls: read again each run until their disposition is final. */
  readonly pending: number;
  readonly parked: number;
  readonly parkedCalls: readonly ParkedCall[];
  /** Calls reconcile queued as missing, delivered by the next run. */
  readonly queuedRepairs: number;
  readonly deadLetters: number;
  readonly updatedAt: string | null;
  /** The latest run: the run record when there is one (it also sees runs that failed before the lease). */
  readonly lastRun: (LastRun & { detail?: string; by?: string }) | null;
  readonly lastSuccess: RunRecord | null;
  /** Why the database clock was unavailable, when it was. */
  readonly clockError: string | null;
}

/** Where the database clock comes from, when the caller can reach the database. */
export type DbClock = () => Promise<number>;

async function clockNow(
  dbClock: DbClock | undefined,
): Promise<{ now: number; clock: 'database' | 'host'; error: string | null }> {
  if (dbClock) {
    try {
      return { now: await dbClock(), clock: 'database', error: null };
    } catch (error) {
      // status must answer while the database is down; the lag is then measured on this host's clock
      return { now: Math.floor(Date.now() / 1000), clock: 'host', error: (error as Error).message };
    }
  }
  return { now: Math.floor(Date.now() / 1000), clock: 'host', error: 'no database settings' };
}

/** The newer of the checkpoint's last run and the run record (which also sees runs before the lease). */
function latestRun(
  fromCheckpoint: LastRun | null,
  record: RunRecord | null,
): (LastRun & { detail?: string; by?: string }) | null {
  if (!record) return fromCheckpoint;
  if (!fromCheckpoint || Date.parse(record.at) >= Date.parse(fromCheckpoint.at)) return record;
  return fromCheckpoint;
}

export async function readStatus(
  store: CheckpointStore,
  syncId: string,
  dbClock?: DbClock,
  history?: Pick<RunHistory, 'read'>,
): Promise<StatusReport> {
  const [state, deadLetters, repairs, runs, { now, clock, error: clockError }] = await Promise.all([
    store.read(syncId),
    store.countDeadLetters(syncId),
    store.repairs(syncId),
    history?.read(syncId),
    clockNow(dbClock),
  ]);
  const lease = state?.lease && state.lease.expiresAt > Date.now() ? state.lease : null;
  const lag = state ? lagSeconds(state.cursor, now) : null;
  const lastRun = latestRun(state?.lastRun ?? null, runs?.lastAttempt ?? null);
  const warnings: string[] = [];
  if (lastRun?.outcome === 'failed') {
    warnings.push(
      `the last run failed at ${lastRun.at}: ${lastRun.reason ?? 'unknown'}${lastRun.detail ? ` (${lastRun.detail})` : ''}`,
    );
  }
  if (lag !== null && lag < 0) {
    warnings.push(
      `the cursor is ${-lag} s ahead of the ${clock} clock: no call is read until the clock passes it (reset it with did-sync reset --to)`,
    );
  }
  if (clock === 'host') {
    warnings.push(
      `the database clock is unavailable (${clockError}): the lag is measured on this host's clock, which may differ from the database's`,
    );
  }
  return {
    syncId,
    exists: state !== undefined,
    cursor: state?.cursor ?? null,
    cursorTime: state ? isoOf(state.cursor.endEpoch) : null,
    lagSeconds: lag,
    clock,
    warning: warnings[0] ?? null,
    warnings,
    healthy: warnings.length === 0,
    lease: lease ? { owner: lease.owner, expiresAt: new Date(lease.expiresAt).toISOString() } : null,
    pending: state?.pending.length ?? 0,
    parked: state?.parked.length ?? 0,
    parkedCalls: state?.parked ?? [],
    queuedRepairs: repairs.length,
    deadLetters,
    updatedAt: state?.updatedAt ?? null,
    lastRun,
    lastSuccess:
      runs?.lastSuccess ??
      (state?.lastRun && state.lastRun.outcome !== 'failed' ? { ...state.lastRun, by: 'unknown' } : null),
    clockError,
  };
}
