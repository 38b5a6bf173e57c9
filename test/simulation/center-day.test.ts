import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { resetCheckpoint } from '../../functions/sync/admin/reset';
import { MemorySyncLog } from '../../functions/sync/log';
import { type SimulationOptions, type SimulationResult, simulateCenter } from '../support/center-simulation';
import { type Harness, startHarness } from '../support/sync-harness';
import { loadTimeZone } from '../support/time-zones';

/**
 * The ordinary day, at the defaults: a center writes rows as VICIdial does (test/support/center-calls)
 * while the sync runs once a simulated minute; only the database clock the sync reads is simulated.
 * Every variant asserts exact numbers: every eligible call posted once, with its final status, by the
 * runs themselves; none twice; none left to the hourly repair; reconcile finds nothing missing.
 */
let h: Harness;
let hasNewYork = false;
beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'sim');
  hasNewYork = await loadTimeZone(inject('mysqlUrl'), 'America/New_York');
});
afterAll(async () => {
  await h?.close();
});
afterEach(async () => {
  await h.db.query('TRUNCATE vicidial_log');
  h.api.reset();
});

const MINUTE = 60;
/** A fixed past instant, on a minute: nothing depends on the machine's clock. */
const T0 = 1_795_000_020;

function simulate(options: Omit<SimulationOptions, 'lastRunAt'> & { lastRunAt?: number }) {
  // Runs go on 20 minutes after the last dial: the longest call (15 min) and its wrap-up end by then.
  const lastRunAt = options.lastRunAt ?? options.center.toEpoch + 20 * MINUTE;
  return simulateCenter(h, { ...options, lastRunAt });
}

/** The numbers every variant must show, side by side with what it showed. */
function tally(r: SimulationResult) {
  return {
    postedOnce: r.postedOnce,
    postedTwice: r.postedTwice,
    neverPostedByARun: r.neverPosted.length,
    wrongStatus: r.wrongStatus.length,
    notEligiblePosted: r.notEligiblePosted,
    reconcileMissing: r.reconcileMissing,
  };
}
function perfect(r: SimulationResult) {
  return {
    postedOnce: r.eligible,
    postedTwice: 0,
    neverPostedByARun: 0,
    wrongStatus: 0,
    notEligiblePosted: 0,
    reconcileMissing: 0,
  };
}

describe('a center, one run a simulated minute, at the defaults', () => {
  it('an ordinary hour: every eligible call once, by the runs', async () => {
    const r = await simulate({
      syncId: 'ordinary',
      center: { callsPerMinute: 40, fromEpoch: T0 - 10 * MINUTE, toEpoch: T0 + 60 * MINUTE, seed: 7 },
      firstRunAt: T0,
      env: { START_FROM: String(T0 - 5 * MINUTE) },
    });
    expect(tally(r)).toEqual(perfect(r));
    expect(r.eligible).toBeGreaterThan(1000);
    expect(r.runs.every((run) => run.outcome === 'completed')).toBe(true);
  }, 120_000);

  it('a busy center (200 calls a minute)', async () => {
    const r = await simulate({
      syncId: 'busy',
      center: { callsPerMinute: 200, fromEpoch: T0 - 10 * MINUTE, toEpoch: T0 + 60 * MINUTE, seed: 11 },
      firstRunAt: T0,
      env: { START_FROM: String(T0 - 5 * MINUTE) },
    });
    expect(tally(r)).toEqual(perfect(r));
    expect(r.eligible).toBeGreaterThan(6000);
    expect(r.runs.every((run) => run.outcome === 'completed')).toBe(true);
  }, 120_000);

  it('the fall-back hour in America/New_York: nothing twice, the follow set near its UTC size', async (ctx) => {
    if (!hasNewYork) ctx.skip();
    // 2026-11-01 06:00 UTC: 02:00 EDT becomes 01:00 EST; local call_date repeats 01:00-02:00.
    const change = 1_793_512_800;
    const center = {
      callsPerMinute: 40,
      fromEpoch: change - 50 * MINUTE,
      toEpoch: change + 40 * MINUTE,
      seed: 5,
    };
    const ny = await simulate({
      syncId: 'dst',
      center,
      firstRunAt: change - 40 * MINUTE,
      // Near a change the cursor waits an hour (local call_date repeats): the runs go on until it is past.
      lastRunAt: center.toEpoch + 100 * MINUTE,
      timeZone: 'America/New_York',
      env: { START_FROM: String(change - 45 * MINUTE) },
    });
    expect(tally(ny)).toEqual(perfect(ny));
    await h.db.query('TRUNCATE vicidial_log');
    h.api.reset();
    const utc = await simulate({
      syncId: 'dst-utc',
      center,
      firstRunAt: change - 40 * MINUTE,
      lastRunAt: center.toEpoch + 100 * MINUTE,
      env: { START_FROM: String(change - 45 * MINUTE) },
    });
    expect(tally(utc)).toEqual(perfect(utc));
    // The repeated hour costs no followed calls of its own: a resolved call is never followed again.
    // A call once resolved is never followed again.
    const sent = new Set<string>();
    let followedAfterSent = 0;
    for (const e of ny.log.entries) {
      if (e.event === 'call_sent') sent.add(e.uniqueid as string);
      if (e.event === 'pending' && sent.has(e.uniqueid as string)) followedAfterSent++;
    }
    expect(followedAfterSent).toBe(0);
    // The follow set stays near its UTC size. One run, where the cursor leaves the repeated hour and
    // an hour of calls is released at once, follows the long calls whose local call_date reads an hour
    // earlier than it was (an ambiguous time) until they are posted a moment later.
    const sorted = ny.runs.map((r) => r.pending).sort((a, b) => a - b);
    const p95 = sorted[Math.floor(sorted.length * 0.95)] ?? 0;
    expect(p95).toBeLessThanOrEqual(utc.pendingPeak + 15);
    expect(ny.runs.filter((r) => r.pending > utc.pendingPeak + 15).length).toBeLessThanOrEqual(1);
  }, 120_000);

  it('runs that stop part-way (an outage, deadlines) with long calls queued', async () => {
    const cut = new Set([22, 35, 50]);
    const r = await simulate({
      syncId: 'stops',
      center: {
        callsPerMinute: 60,
        fromEpoch: T0 - 10 * MINUTE,
        toEpoch: T0 + 60 * MINUTE,
        seed: 13,
        meanTalkSeconds: 400,
      },
      firstRunAt: T0,
      env: { START_FROM: String(T0 - 5 * MINUTE) },
      beforeRun: (_at, run) => {
        // Runs 20 and 21: the API is down; run 22 drains the backlog and is cut by its deadline, as
        // are runs 35 and 50: a slow API, calls (long ones among them) queued when the time is up.
        h.api.failWhen(() => run === 20 || run === 21, { status: 503 });
        h.api.setLatency(cut.has(run) ? 300 : 0);
      },
      runOptions: (_at, run) => (cut.has(run) ? { deadline: Date.now() + (run === 22 ? 2_200 : 1_300) } : {}),
    });
    expect(tally(r)).toEqual(perfect(r));
    const stopped = r.runs.filter((run) => run.outcome !== 'completed');
    expect(stopped.map((run) => run.reason)).toContain('api_unavailable');
    expect(stopped.map((run) => run.reason)).toContain('time_budget');
  }, 120_000);

  it('a small PENDING_MAX: the cursor waits, nothing is dropped', async () => {
    const r = await simulate({
      syncId: 'cap',
      center: { callsPerMinute: 40, fromEpoch: T0 - 10 * MINUTE, toEpoch: T0 + 60 * MINUTE, seed: 17 },
      firstRunAt: T0,
      // The cap is the point of the test: below the calls a 40-a-minute center has going at once.
      env: { START_FROM: String(T0 - 5 * MINUTE), PENDING_MAX: '25' },
    });
    expect(tally(r)).toEqual(perfect(r));
    expect(r.runs.some((run) => run.reason === 'pending_full')).toBe(true);
    expect(r.log.events('pending_full').length).toBeGreaterThan(0);
  }, 120_000);

  it('a new sync in the middle of traffic: calls that began hours before its start point are posted', async () => {
    const r = await simulate({
      syncId: 'newsync',
      center: {
        callsPerMinute: 30,
        fromEpoch: T0 - 6 * 60 * MINUTE,
        toEpoch: T0 + 30 * MINUTE,
        seed: 19,
        // Long agent calls: some last hours, and were going when the sync started.
        meanTalkSeconds: 900,
        maxTalkSeconds: 5 * 3600,
      },
      firstRunAt: T0,
      lastRunAt: T0 + 60 * MINUTE,
      env: { START_FROM: String(T0 - 30 * MINUTE) },
    });
    expect(tally(r)).toEqual(perfect(r));
    const longBeforeStart = r.calls.filter(
      (c) =>
        c.agent &&
        c.dialAt < T0 - 2 * 60 * MINUTE &&
        (c.rowAt(T0 + 60 * MINUTE)?.end_epoch ?? 0) >= T0 - 30 * MINUTE,
    );
    expect(longBeforeStart.length).toBeGreaterThan(0);
    expect(r.log.events('start_up_read')[0]).toMatchObject({ done: true });
  }, 120_000);

  it('a backward and a forward reset in the middle of traffic do exactly what they say', async () => {
    const log = new MemorySyncLog();
    let backward: Awaited<ReturnType<typeof resetCheckpoint>> | undefined;
    let forward: Awaited<ReturnType<typeof resetCheckpoint>> | undefined;
    let refused: Error | undefined;
    const r = await simulate({
      syncId: 'resets',
      center: { callsPerMinute: 40, fromEpoch: T0 - 10 * MINUTE, toEpoch: T0 + 60 * MINUTE, seed: 23 },
      firstRunAt: T0,
      env: { START_FROM: String(T0 - 5 * MINUTE) },
      beforeRun: async (at, run, sim) => {
        if (run === 20) {
          backward = await resetCheckpoint(
            h.store,
            sim.calls,
            'resets',
            at - 15 * MINUTE,
            { force: false, withoutDatabase: false },
            log,
            sim.settings,
          );
        }
        if (run === 40) {
          const cursor = (await h.store.read('resets'))?.cursor.endEpoch ?? at;
          refused = await resetCheckpoint(
            h.store,
            sim.calls,
            'resets',
            cursor + 20,
            { force: false, withoutDatabase: false },
            log,
            sim.settings,
          ).then(
            () => undefined,
            (e: Error) => e,
          );
          forward = await resetCheckpoint(
            h.store,
            sim.calls,
            'resets',
            cursor + 20,
            { force: false, withoutDatabase: false, skipUndelivered: true },
            log,
            sim.settings,
          );
        }
      },
    });
    expect(tally(r)).toEqual(perfect(r));
    // Backward: the calls it printed are the calls the next run posted (none: the ledger holds them all).
    expect(backward).toMatchObject({ direction: 'backward', rePost: 0 });
    expect(backward?.alreadyDelivered).toBeGreaterThan(100);
    // Forward: refused without the flag, then the undelivered calls it counted are the ones skipped.
    expect(refused?.message).toMatch(/were never delivered and would be skipped/);
    expect(forward?.skippedUndelivered).toBe(r.skipped);
    expect(r.skipped).toBeGreaterThan(0);
    expect(r.reconcileSkipped).toBe(r.skipped);
    expect(r.runs.reduce((n, run) => n + run.resent, 0)).toBe(0);
  }, 120_000);
});
