import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { insertCalls, makeCall } from '../support/sample-calls';
import { type Harness, startHarness } from '../support/sync-harness';

let h: Harness;

beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'concurrency');
});
afterAll(async () => {
  await h?.close();
});
afterEach(async () => {
  await h.db.query('TRUNCATE vicidial_log');
  h.api.reset();
});

async function calls(n: number, syncId: string) {
  const now = await h.dbNow();
  const end = now - 600;
  await insertCalls(
    h.db,
    Array.from({ length: n }, (_, i) => makeCall({ end_epoch: end + Math.floor(i / 7) }, i)),
  );
  return { SYNC_ID: syncId, START_FROM: String(end - 10) };
}

describe('overlapping runs', () => {
  it('lets one of two concurrent runs work and skips the other: nothing lost, nothing doubled', async () => {
    const env = await calls(300, 'overlap');
    h.api.setLatency(5);
    const [a, b] = await Promise.all([
      h.run({ ...env, BATCH_SIZE: '50' }),
      h.run({ ...env, BATCH_SIZE: '50' }),
    ]);
    const outcomes = [a.summary.outcome, b.summary.outcome].sort();
    expect(outcomes).toEqual(['completed', 'skipped']);
    const skipped = a.summary.outcome === 'skipped' ? a : b;
    expect(skipped.summary.lease?.owner).toMatch(/^test-/);
    expect(skipped.log.events('lease_skipped')[0]?.holder).toBe(skipped.summary.lease?.owner);
    expect(h.api.stored.size).toBe(300);
    expect(h.api.calls).toHaveLength(300);
    const again = await h.run(env);
    expect(again.summary).toMatchObject({ outcome: 'completed', delivered: 0 });
  });

  it('fences out a run whose lease was taken over: it stops posting at its next checkpoint', async () => {
    const env = await calls(200, 'fenced');
    h.api.setLatency(20);
    const slow = h.run({ ...env, BATCH_SIZE: '20', CONCURRENCY: '2', CHECKPOINT_INTERVAL_MS: '100' });
    await new Promise((r) => setTimeout(r, 300));
    // An operator's forced reset raises the fencing token, as a run taking over an expired lease would.
    const state = await h.store.read('fenced');
    await h.store.reset('fenced', state?.cursor ?? { endEpoch: 0, uniqueid: '' }, true);
    const { summary, log } = await slow;
    expect(summary).toMatchObject({ outcome: 'failed', reason: 'lease_lost' });
    expect(log.events('lease_lost')).toHaveLength(1);
    const postedBefore = h.api.calls.length;
    expect(postedBefore).toBeLessThan(200);
    const rest = await h.run(env);
    expect(rest.summary.outcome).toBe('completed');
    expect(h.api.stored.size).toBe(200);
    // The fenced run counted what it delivered and could not record: exactly what was posted twice.
    expect(h.api.duplicates()).toBe(summary.unrecorded + summary.ambiguous);
  });
});

describe('crash between posting and checkpointing', () => {
  it('loses nothing and re-sends at most the calls since the last checkpoint', async () => {
    const env = await calls(400, 'crash');
    h.api.setLatency(10);
    // Killed mid-batch, without warning, once a good part of the calls has been posted.
    await h.killRunAfter(
      {
        ...env,
        BATCH_SIZE: '200',
        CONCURRENCY: '4',
        CHECKPOINT_INTERVAL_MS: '300',
      },
      250,
    );
    const postedBeforeCrash = new Set(h.api.calls.map((c) => c.uniqueid));
    const state = await h.store.read('crash');
    expect(state?.lease).not.toBeNull();
    const cursor = state?.cursor;
    // Calls posted but past the saved checkpoint: the only ones a re-run may send again.
    const [rows] = await h.db.query(
      'SELECT uniqueid FROM vicidial_log WHERE end_epoch > ? OR (end_epoch = ? AND uniqueid > ?)',
      [cursor?.endEpoch, cursor?.endEpoch, cursor?.uniqueid],
    );
    const afterCheckpoint = new Set((rows as { uniqueid: string }[]).map((r) => r.uniqueid));
    // Of those, the ledger holds the ones written before the crash: the gate posts none of them again.
    const recorded = await h.store.ledger.loadAfter('crash', (cursor?.endEpoch ?? 0) - 120);
    const exposed = [...postedBeforeCrash].filter((u) => afterCheckpoint.has(u) && !recorded.has(u)).length;
    expect(exposed).toBeLessThanOrEqual(200);

    // The crashed run's lease runs out; simulate the time passing instead of waiting LEASE_SECONDS.
    await h.expireLease('crash');

    const { summary } = await h.run(env);
    expect(summary.outcome).toBe('completed');
    expect(h.api.stored.size).toBe(400);
    expect(h.api.duplicates()).toBe(exposed);
    expect(h.api.duplicates()).toBeLessThanOrEqual(200);
  });
});
