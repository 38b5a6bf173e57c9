import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { simulateCenter } from '../support/center-simulation';
import { type Harness, startHarness } from '../support/sync-harness';

/**
 * The ordinary day, at the defaults: a center writes rows as VICIdial does while the sync runs once a
 * simulated minute. Every eligible call is posted once, with its final status, by the runs themselves;
 * reconcile finds nothing missing.
 */
let h: Harness;
beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'sim');
});
afterAll(async () => {
  await h?.close();
});

const MINUTE = 60;
/** A fixed past instant, on a minute: the simulation never depends on the machine's clock. */
const T0 = 1_795_000_020;

describe('an hour at a center, one run a minute', () => {
  it('posts every eligible call once, by the runs, with its final status', async () => {
    const result = await simulateCenter(h, {
      syncId: 'ordinary',
      center: { callsPerMinute: 40, fromEpoch: T0 - 10 * MINUTE, toEpoch: T0 + 60 * MINUTE, seed: 7 },
      firstRunAt: T0,
      lastRunAt: T0 + 80 * MINUTE,
      env: { START_FROM: String(T0 - 5 * MINUTE) },
    });
    expect({
      eligible: result.eligible,
      postedOnce: result.postedOnce,
      postedTwice: result.postedTwice,
      neverPosted: result.neverPosted.length,
      wrongStatus: result.wrongStatus.length,
      notEligiblePosted: result.notEligiblePosted,
      reconcileMissing: result.reconcileMissing,
    }).toEqual({
      eligible: result.eligible,
      postedOnce: result.eligible,
      postedTwice: 0,
      neverPosted: 0,
      wrongStatus: 0,
      notEligiblePosted: 0,
      reconcileMissing: 0,
    });
    expect(result.eligible).toBeGreaterThan(1000);
    expect(result.runs.every((r) => r.outcome === 'completed')).toBe(true);
  }, 120_000);
});
