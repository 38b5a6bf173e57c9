import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { reconcile } from '../../functions/sync/admin/reconcile';
import { isEligible } from '../../functions/sync/calls/payload';
import { MemorySyncLog } from '../../functions/sync/log';
import { type RunOptions, type RunSummary, runSync } from '../../functions/sync/run/engine';
import type { Env, SyncSettings } from '../../functions/sync/settings';
import { type QueryOptions, type SqlClient, VicidialLog } from '../../functions/sync/source/vicidial-log';
import { bulkUpsert, type CenterCall, type CenterOptions, centerCalls, writesBetween } from './center-calls';
import type { Harness } from './sync-harness';

/**
 * A VICIdial center and the sync, minute by minute, in simulated time: the center model writes rows as
 * VICIdial does (inserted at answer, DISPO at hangup, the disposition a wrap-up later), and the engine
 * runs once a simulated minute at the defaults. The one thing substituted is the database clock the
 * sync reads (`UNIX_TIMESTAMP()`, in its own reads and in the time-zone check): every other query goes
 * to the real MariaDB, every post to the API stand-in, every state write to dynalite.
 */

/** Answers the sync's reads of the database clock from `now()`; everything else goes to `db`. */
export function simulatedClock(db: SqlClient, now: () => number): SqlClient {
  return {
    query<T>(sql: string, values: readonly unknown[], options?: QueryOptions): Promise<T[]> {
      if (sql === 'SELECT UNIX_TIMESTAMP() AS now') return Promise.resolve([{ now: now() } as T]);
      // The time-zone check samples the most recent rows relative to the clock.
      const text = sql.replaceAll('UNIX_TIMESTAMP() - ?', `${Math.floor(now())} - ?`);
      return db.query<T>(text, values, options);
    },
  };
}

export interface SimulationOptions {
  readonly syncId: string;
  /** The center's traffic. `fromEpoch`/`toEpoch` are the dial times. */
  readonly center: CenterOptions;
  /** Simulated time of the first run. */
  readonly firstRunAt: number;
  /** Simulated time of the last run (the runs go on after the traffic so every call can end). */
  readonly lastRunAt: number;
  /** The sync's settings besides the defaults (START_FROM, a zone, a cap that is the point of a test). */
  readonly env?: Env;
  /** The zone VICIdial's machines write call_date in (and the sync's session zone); default UTC. */
  readonly timeZone?: string;
  /** Called before each run, with the simulated time: faults, resets. */
  readonly beforeRun?: (at: number, run: number, sim: SimulationContext) => Promise<void> | void;
  /** Extra run options per run (a deadline, a batch limit). */
  readonly runOptions?: (at: number, run: number) => Partial<RunOptions>;
}

/** What a hook may use: the sync's own view of vicidial_log (with the simulated clock) and settings. */
export interface SimulationContext {
  readonly calls: VicidialLog;
  readonly settings: SyncSettings;
}

export interface SimulationResult {
  readonly calls: readonly CenterCall[];
  /** Calls the sync must deliver: final and eligible by the end, ending at or after its start point. */
  readonly eligible: number;
  readonly postedOnce: number;
  /** Eligible calls posted more than once (and the extra posts). */
  readonly postedTwice: number;
  readonly extraPosts: number;
  /** Eligible calls no run posted. */
  readonly neverPosted: readonly string[];
  /** Posted with another status than their final one. */
  readonly wrongStatus: readonly string[];
  /** Posted although not eligible (or before the start point). */
  readonly notEligiblePosted: number;
  /** Eligible calls in ranges a forward reset skipped, never posted (reconcile must say so). */
  readonly skipped: number;
  /** What reconcile (report only) finds missing over the sync's whole range. */
  readonly reconcileMissing: number;
  /** What it reports as skipped by a forward reset. */
  readonly reconcileSkipped: number;
  readonly pendingPeak: number;
  readonly runs: readonly RunSummary[];
  readonly log: MemorySyncLog;
}

export async function simulateCenter(h: Harness, options: SimulationOptions): Promise<SimulationResult> {
  const calls = [...centerCalls(options.center)].flat();
  const writer = await mysql.createConnection({ uri: h.dbUrl, dateStrings: true });
  await writer.query('SET time_zone = ?', [options.timeZone ?? '+00:00']);
  const env: Env = {
    SYNC_ID: options.syncId,
    ...(options.timeZone ? { VICIDIAL_DB_TIME_ZONE: options.timeZone } : {}),
    ...options.env,
  };
  const sync = h.createSync(env);
  let clock = options.firstRunAt;
  const s = sync.settings;
  const calls$ = new VicidialLog(
    simulatedClock(sync.connection, () => clock),
    {
      minDurationSeconds: s.minDurationSeconds,
      campaigns: s.campaigns,
      excludeCampaigns: s.excludeCampaigns,
      transientStatuses: [...s.transientStatuses],
    },
    s.lookbackSeconds,
  );
  const log = new MemorySyncLog();
  const runs: RunSummary[] = [];
  let pendingPeak = 0;
  let written = Number.NEGATIVE_INFINITY;
  try {
    for (let at = options.firstRunAt, run = 0; at <= options.lastRunAt; at += 60, run++) {
      clock = at;
      const rows =
        written === Number.NEGATIVE_INFINITY
          ? calls.map((c) => c.rowAt(at)).filter((r) => r !== undefined)
          : writesBetween(calls, written, at);
      for (let i = 0; i < rows.length; i += 2000) await bulkUpsert(writer, rows.slice(i, i + 2000));
      written = at;
      await options.beforeRun?.(at, run, { calls: calls$, settings: s });
      const summary = await runSync(
        { ...sync, calls: calls$, log },
        {
          owner: `sim-${run}-${randomBytes(3).toString('hex')}`,
          deadline: Date.now() + 60_000,
          ...options.runOptions?.(at, run),
        },
      );
      runs.push(summary);
      pendingPeak = Math.max(pendingPeak, summary.pending);
    }
    const state = await h.store.read(options.syncId);
    const start = state?.ledgerSince ?? 0;
    const report = await reconcile(
      { settings: s, calls: calls$, checkpoints: h.store, log: new MemorySyncLog() },
      { since: start, repair: false },
    );
    const posts = new Map<string, number>();
    const lastStatus = new Map<string, unknown>();
    for (const c of h.api.calls) {
      posts.set(c.uniqueid, (posts.get(c.uniqueid) ?? 0) + 1);
      lastStatus.set(c.uniqueid, c.body.disposition);
    }
    let eligible = 0;
    let postedOnce = 0;
    let postedTwice = 0;
    let extraPosts = 0;
    const neverPosted: string[] = [];
    const wrongStatus: string[] = [];
    const mine = new Set<string>();
    const skippedRanges = state?.skipped ?? [];
    let skipped = 0;
    for (const call of calls) {
      const row = call.rowAt(options.lastRunAt);
      if (!row || call.finalAt === undefined || call.finalAt > options.lastRunAt) continue;
      const end = Number(row.end_epoch);
      if (end < start) continue;
      if (!isEligible({ ...row, end_epoch: end }, s.transientStatuses, s.minDurationSeconds)) continue;
      if (skippedRanges.some((r) => end >= r.fromEpoch && end < r.toEpoch) && !posts.has(call.uniqueid)) {
        skipped++;
        continue;
      }
      eligible++;
      mine.add(call.uniqueid);
      const n = posts.get(call.uniqueid) ?? 0;
      if (n === 0) neverPosted.push(call.uniqueid);
      else if (n === 1) postedOnce++;
      else {
        postedTwice++;
        extraPosts += n - 1;
      }
      if (n > 0 && lastStatus.get(call.uniqueid) !== call.finalStatus) wrongStatus.push(call.uniqueid);
    }
    // A disposition never submitted: sent as it stands after PENDING_MAX_AGE_SECONDS, by design.
    const expired = new Set(log.events('pending_expired').map((e) => e.uniqueid as string));
    let notEligiblePosted = 0;
    for (const uid of posts.keys()) if (!mine.has(uid) && !expired.has(uid)) notEligiblePosted++;
    return {
      calls,
      eligible,
      postedOnce,
      postedTwice,
      extraPosts,
      neverPosted,
      wrongStatus,
      notEligiblePosted,
      skipped,
      reconcileMissing: report.missing,
      reconcileSkipped: report.skipped,
      pendingPeak,
      runs,
      log,
    };
  } finally {
    await writer.end();
  }
}
