import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { replayDeadLetters } from '../../functions/sync/admin/dead-letters';
import { insertCalls, makeCall, setStatus } from '../support/sample-calls';
import { type Harness, startHarness } from '../support/sync-harness';

/** Runs that overlap, stall or die: the lease and the checkpoint decide what is sent again. */
let h: Harness;

beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'takeover');
});
afterAll(async () => {
  await h?.close();
});
afterEach(async () => {
  await h.db.query('TRUNCATE vicidial_log');
  h.api.reset();
});

function postedTwice(): string[] {
  const seen = new Set<string>();
  const twice: string[] = [];
  for (const c of h.api.calls) {
    if (seen.has(c.uniqueid)) twice.push(c.uniqueid);
    seen.add(c.uniqueid);
  }
  return twice;
}

describe('a run that stalls past its lease', () => {
  it('is fenced out by the run that takes over; only calls posted after its last checkpoint can repeat', async () => {
    const end = (await h.dbNow()) - 900;
    await insertCalls(
      h.db,
      Array.from({ length: 1000 }, (_, i) => makeCall({ end_epoch: end + Math.floor(i / 2) }, i)),
    );
    const env = { SYNC_ID: 'stalled', START_FROM: String(end - 10) };
    h.api.setLatency(20);
    const child = spawn(process.execPath, [join(import.meta.dirname, '../../bin/did-sync.js'), 'run'], {
      env: { PATH: process.env.PATH, ...h.cliEnv(), ...env, POWERTOOLS_LOG_LEVEL: 'SILENT' },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    const exited = new Promise<number | null>((r) => child.on('close', r));
    while (h.api.calls.length < 100) await new Promise((r) => setTimeout(r, 5));
    // The first run freezes (a frozen container, a long GC pause) and its lease runs out.
    child.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 300));
    await h.expireLease('stalled');
    const state = await h.store.read('stalled');
    // What the frozen run had recorded in the ledger: the takeover must post none of it again.
    const recorded = await h.store.ledger.loadAfter('stalled', end - 10);
    const takeover = await h.run(env, { owner: 'second' });
    expect(takeover.summary.outcome).toBe('completed');
    expect(h.api.stored.size).toBe(1000);
    child.kill('SIGCONT');
    expect(await exited).toBe(1);
    expect(stdout).toMatch(/sync stalled: failed \(lease_lost\)/);
    // Repeats are calls the first run posted past the checkpoint the second run started from (the
    // frozen requests among them), and never one recorded as delivered ahead of it; at most a batch.
    const twice = postedTwice();
    for (const uid of twice) expect(recorded.has(uid)).toBe(false);
    const [beyond] = await h.db.query(
      'SELECT uniqueid FROM vicidial_log WHERE end_epoch > ? OR (end_epoch = ? AND uniqueid > ?)',
      [state?.cursor.endEpoch, state?.cursor.endEpoch, state?.cursor.uniqueid],
    );
    const beyondSet = new Set((beyond as { uniqueid: string }[]).map((r) => r.uniqueid));
    for (const uid of twice) expect(beyondSet.has(uid)).toBe(true);
    // R6: posted but not recorded never exceeds BATCH_SIZE, posts in flight included.
    expect(twice.length).toBeLessThanOrEqual(500);
  }, 30_000);
});

describe('a crash while pending calls are resolved', () => {
  it('re-sends at most the calls resolved since the last checkpoint write', async () => {
    const end = (await h.dbNow()) - 600;
    const rows = Array.from({ length: 600 }, (_, i) =>
      makeCall({ end_epoch: end + Math.floor(i / 5), status: 'INCALL' }, i),
    );
    await insertCalls(h.db, rows);
    // BATCH_SIZE 100: the bound under test is "never more than a batch since the last write".
    const env = { SYNC_ID: 'crash-pending', START_FROM: String(end - 10), BATCH_SIZE: '100' };
    const parked = await h.run(env);
    expect(parked.summary).toMatchObject({ pending: 600, delivered: 0 });
    await h.db.query("UPDATE vicidial_log SET status = 'SALE'");
    await setStatus(h.db, rows[0]?.uniqueid as string, 'SALE');

    h.api.setLatency(10);
    await h.killRunAfter(env, 300);
    const posted = new Set(h.api.calls.map((c) => c.uniqueid));
    const recorded = await h.store.ledger.loadAfter('crash-pending', end - 10);
    // Posted, but not in the ledger when the run died: the only calls the next run may repeat (the
    // gate finds the rest in the ledger, still followed or not).
    const exposed = [...posted].filter((uid) => !recorded.has(uid)).length;
    await h.expireLease('crash-pending');
    const { summary } = await h.run(env);
    expect(summary.outcome).toBe('completed');
    expect(h.api.stored.size).toBe(600);
    expect(postedTwice()).toHaveLength(exposed);
    // At most a batch (BATCH_SIZE 100), posts in flight included.
    expect(exposed).toBeLessThanOrEqual(100);
  });
});

describe('replaying dead letters', () => {
  it('is skipped with a clear message while a run holds the lease, and posts nothing', async () => {
    const end = (await h.dbNow()) - 300;
    await insertCalls(h.db, [makeCall({ end_epoch: end, phone_number: null }, 1)]);
    const env = { SYNC_ID: 'replay-lease', START_FROM: String(end - 10) };
    await h.run(env);
    await h.db.query("UPDATE vicidial_log SET phone_number = '5550001111'");
    const held = await h.store.acquire('replay-lease', 'a-running-sync', 60_000, {
      endEpoch: 0,
      uniqueid: '',
    });
    expect(held.acquired).toBe(true);
    const sync = h.createSync(env);
    const skipped = await replayDeadLetters(sync, { owner: 'replay-1' });
    expect(skipped).toMatchObject({ replayed: false, delivered: 0, holder: { owner: 'a-running-sync' } });
    expect(skipped.detail).toMatch(/busy \(lease held by a-running-sync/);
    expect(h.api.requestCount).toBe(0);
    if (held.acquired) await h.store.release(held.lease, undefined);
    const done = await replayDeadLetters(sync, { owner: 'replay-2' });
    expect(done).toMatchObject({ replayed: true, delivered: 1 });
    expect((await h.store.read('replay-lease'))?.lease).toBeNull();
  });
});
