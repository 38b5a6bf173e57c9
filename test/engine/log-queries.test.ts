import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { reconcile } from '../../functions/sync/admin/reconcile';
import { staticApiKey } from '../../functions/sync/delivery/api-client';
import { type LogEntry, MemorySyncLog } from '../../functions/sync/log';
import { runSync } from '../../functions/sync/run/engine';
import { LOG_QUERIES } from '../../lib/log-queries';
import { insertCalls, makeCall } from '../support/sample-calls';
import { type Harness, startHarness } from '../support/sync-harness';

/**
 * The stack's saved Logs Insights queries read fields of the engine's JSON log lines. Here the real
 * engine runs through the situations those queries are about, and every field and event a query names
 * must appear in the lines it wrote: renaming a field breaks this test, not an operator's dashboard.
 */
let h: Harness;
const lines: LogEntry[] = [];

async function collect(fn: (log: MemorySyncLog) => Promise<unknown>) {
  const log = new MemorySyncLog();
  await fn(log).catch(() => undefined);
  lines.push(...log.entries);
}

beforeAll(async () => {
  h = await startHarness(inject('mysqlUrl'), 'queries');
  const now = await h.dbNow();
  const calls = Array.from({ length: 40 }, (_, i) => makeCall({ end_epoch: now - 600 + i }, i));
  calls.push(makeCall({ end_epoch: now - 550, phone_number: null }, 99));
  await insertCalls(h.db, calls);
  const base = { START_FROM: String(now - 900) };
  const poison = calls[3]?.uniqueid;
  const slow = calls[5]?.uniqueid;
  let once = true;

  // A run with a retry, an ambiguous attempt, a rate limit, a parked call and a dead letter.
  h.api.failWhen((b) => b.uniqueid === poison, { status: 500 });
  h.api.failNext({ status: 503 }, { status: 429, retryAfter: '0' });
  await collect((log) => h.run({ ...base, SYNC_ID: 'q-main', API_TIMEOUT_MS: '1000' }, { log }));
  h.api.failWhen(
    (b) => {
      if (b.uniqueid !== slow || !once) return false;
      once = false;
      return true;
    },
    { storeThenWaitMs: 2_000 },
  );
  await collect((log) => h.run({ ...base, SYNC_ID: 'q-ambiguous', API_TIMEOUT_MS: '1000' }, { log }));
  // The parked call recovers.
  h.api.failWhen(() => false, null);
  await collect((log) => h.run({ ...base, SYNC_ID: 'q-main' }, { log }));
  // Outage, misconfiguration, refused key.
  h.api.failWhen(() => true, { status: 502 });
  await collect((log) =>
    h.run({ ...base, SYNC_ID: 'q-down', FAILURE_STOP: '2', API_MAX_ATTEMPTS: '1' }, { log }),
  );
  h.api.failWhen(() => true, { status: 301, headers: { location: 'https://elsewhere.example/' } });
  await collect((log) => h.run({ ...base, SYNC_ID: 'q-moved' }, { log }));
  h.api.failWhen(() => false, null);
  await collect((log) => h.run({ ...base, SYNC_ID: 'q-key' }, { log, keys: staticApiKey('wrong') }));
  // Lease held by another run, and a lease lost to a forced reset.
  await h.store.acquire('q-held', 'other-run', 60_000, { endEpoch: now - 900, uniqueid: '' });
  await collect((log) => h.run({ ...base, SYNC_ID: 'q-held' }, { log }));
  h.api.setLatency(30);
  await collect(async (log) => {
    const run = h.run({ ...base, SYNC_ID: 'q-lost', BATCH_SIZE: '5', CONCURRENCY: '1' }, { log });
    await new Promise((r) => setTimeout(r, 150));
    await h.store.reset('q-lost', { endEpoch: now - 900, uniqueid: '' }, true);
    return run;
  });
  h.api.setLatency(0);
  // A database that cannot be reached.
  await collect(async (log) => {
    const sync = h.createSync(
      { ...base, SYNC_ID: 'q-db' },
      {
        db: {
          current: async () => ({
            host: '127.0.0.1',
            port: 1,
            user: 'x',
            password: 'y',
            database: 'x',
            charset: 'utf8mb4',
          }),
        },
        log,
      },
    );
    return runSync(sync, { owner: 'q-db' });
  });
  // A call that landed behind the cursor, found by reconcile.
  await insertCalls(h.db, [makeCall({ end_epoch: now - 590, length_in_sec: 30 }, 500)]);
  await collect(async (log) =>
    reconcile(h.createSync({ SYNC_ID: 'q-main' }, { log }), { since: now - 900, repair: false }),
  );
}, 120_000);

afterAll(async () => {
  await h?.close();
});

describe('saved queries against real log lines', () => {
  const WORDS = new Set(
    'filter fields stats sort limit by as and or not in asc desc count sum max min avg latest bin'.split(' '),
  );

  it('saw the situations the queries are about', () => {
    const events = new Set(lines.map((l) => l.event));
    for (const e of [
      'run_end',
      'call_sent',
      'call_retry',
      'call_ambiguous',
      'rate_limited',
      'call_parked',
      'call_recovered',
      'call_dead_lettered',
      'call_missing',
      'lease_skipped',
      'lease_lost',
      'api_unavailable',
      'api_misconfigured',
      'api_auth_failed',
      'database_error',
    ]) {
      expect(events, e).toContain(e);
    }
  });

  it('attributes every line of every event to its sync', () => {
    // Per event, not across all lines: one event without syncId is lost to every query grouped by it.
    const events = [...new Set(lines.map((l) => l.event))];
    const without = events.filter((e) => lines.some((l) => l.event === e && typeof l.syncId !== 'string'));
    expect(without).toEqual([]);
    for (const e of ['call_ambiguous', 'rate_limited', 'call_retry', 'api_key_refreshed'])
      expect(events, e).toContain(e);
  });

  it.each(Object.entries(LOG_QUERIES))(
    '%s reads only fields and events the engine writes',
    (_name, query) => {
      const events = new Set(lines.map((l) => l.event));
      const named = [...query.matchAll(/"([^"]*)"/g)]
        .map((m) => m[1] as string)
        .filter((x) => /^[a-z]+_[a-z_]+$/.test(x));
      // A field counts only if the lines of the events the query filters on carry it, not any line.
      const own = named.length > 0 ? lines.filter((l) => named.includes(l.event)) : lines;
      const fields = new Set(own.flatMap((l) => Object.keys(l)));
      const code = query.replace(/"[^"]*"/g, '""');
      const aliases = new Set([...code.matchAll(/\bas (\w+)/g)].map((m) => m[1]));
      const identifiers = [...code.matchAll(/(?<![\w.])@?[A-Za-z_]\w*/g)].map((m) => m[0]);
      // @timestamp is CloudWatch's own; every other name must be a field the engine writes.
      const unknown = identifiers.filter(
        (id) => id !== '@timestamp' && !WORDS.has(id) && !aliases.has(id) && !fields.has(id),
      );
      expect(unknown).toEqual([]);
      for (const event of named) expect(events).toContain(event);
    },
  );
});
