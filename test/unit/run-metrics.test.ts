import { describe, expect, it } from 'vitest';
import { type RunMetricsInput, runMetrics } from '../../functions/lambda/run-metrics';

const completed: RunMetricsInput = {
  syncId: 'main',
  outcome: 'completed',
  delivered: 480,
  deadLettered: 2,
  retried: 7,
  pending: 3,
  lagSeconds: 42,
  durationMs: 1234,
};

const byName = (input: RunMetricsInput) =>
  Object.fromEntries(runMetrics(input).map((m) => [m.name, m.value]));

describe('runMetrics', () => {
  it('maps a run summary to counts, lag, duration and exactly one outcome', () => {
    expect(
      runMetrics({ ...completed, parked: 1, ambiguous: 0, concurrency: 16, missing: 4, queued: 5 }),
    ).toEqual([
      { name: 'CallsDelivered', unit: 'Count', value: 480 },
      { name: 'CallsDeadLettered', unit: 'Count', value: 2 },
      { name: 'CallsRetried', unit: 'Count', value: 7 },
      { name: 'CallsAmbiguous', unit: 'Count', value: 0 },
      { name: 'CallsParked', unit: 'Count', value: 1 },
      { name: 'CallsPending', unit: 'Count', value: 3 },
      { name: 'CallsMissing', unit: 'Count', value: 4 },
      { name: 'CallsQueued', unit: 'Count', value: 5 },
      { name: 'SyncLagSeconds', unit: 'Seconds', value: 42 },
      { name: 'Concurrency', unit: 'Count', value: 16 },
      { name: 'RunDurationMs', unit: 'Milliseconds', value: 1234 },
      { name: 'RunsCompleted', unit: 'Count', value: 1 },
      { name: 'RunsPartial', unit: 'Count', value: 0 },
      { name: 'RunsFailed', unit: 'Count', value: 0 },
      { name: 'RunsSkipped', unit: 'Count', value: 0 },
      { name: 'ApiAuthFailures', unit: 'Count', value: 0 },
    ]);
  });

  it('counts fields the engine does not report yet as 0 and leaves Concurrency out', () => {
    const m = byName(completed);
    expect(m).toMatchObject({ CallsParked: 0, CallsAmbiguous: 0, CallsMissing: 0, CallsQueued: 0 });
    expect(m).not.toHaveProperty('Concurrency');
  });

  it('marks a run stopped by a refused key as failed and as an auth failure', () => {
    expect(byName({ ...completed, outcome: 'failed', reason: 'api_auth' })).toMatchObject({
      RunsCompleted: 0,
      RunsFailed: 1,
      ApiAuthFailures: 1,
    });
    expect(byName({ ...completed, outcome: 'failed', reason: 'api_unavailable' }).ApiAuthFailures).toBe(0);
    expect(byName({ ...completed, outcome: 'partial', reason: 'time_budget' }).RunsPartial).toBe(1);
  });

  it('leaves the lag out when unknown (a skipped run) and keeps a negative one', () => {
    const skipped = byName({
      ...completed,
      outcome: 'skipped',
      reason: 'lease_held',
      delivered: 0,
      lagSeconds: null,
    });
    expect(skipped).not.toHaveProperty('SyncLagSeconds');
    expect(skipped.RunsSkipped).toBe(1);
    expect(byName({ ...completed, lagSeconds: -3 }).SyncLagSeconds).toBe(-3);
  });
});
