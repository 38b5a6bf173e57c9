import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import mysql from 'mysql2/promise';
import { parseSyncSettings } from '../../functions/sync/settings';
import {
  bulkInsertSql,
  bulkUpsert,
  type CenterCall,
  centerCalls,
  rowsAsOf,
  writesBetween,
} from '../../test/support/center-calls';
import type { VicidialLogRow } from '../../test/support/sample-calls';
import { runChild } from './child';
import { fmt, intEnv, progress, sleep } from './common';
import { type BenchContext, benchDatabase, checkpointItemBytes, dbNow, ENGINE_USER } from './context';
import type { QueryStats } from './runner';

/**
 * Section A, "Read each call about once": a big center's vicidial_log (CALLS_PER_MINUTE for HOURS,
 * written as VICIdial writes it, see test/support/center-calls.ts), read by the real engine in a child
 * process, with the server's own count of the rows it read (Handler_read% deltas of SHOW GLOBAL STATUS:
 * nothing else uses the throwaway server meanwhile) and the time of every query the engine awaited.
 *
 * Each case starts from a steady state, not a cold checkpoint: a warm-up run of the same sync (not
 * measured) reads the 20 minutes before the case's cursor, so the calls that were still going at the
 * cursor are followed (pending) as they would be after earlier scheduled runs. The warm-up stops at the
 * cursor through SETTLE_SECONDS; the measured run then uses the defaults.
 */

export const CALLS_PER_MINUTE = intEnv('BENCH_CENTER_CALLS_PER_MINUTE', 2000, 10, 20_000);
export const HOURS = intEnv('BENCH_CENTER_HOURS', 8, 2, 48);
const LATENCY_MS = intEnv('BENCH_CENTER_API_LATENCY_MS', 1, 0, 1000);
/** How far behind the newest calls the caught-up case's cursor is (plus SETTLE_SECONDS). */
const CAUGHT_UP_SECONDS = 120;
const BACKLOG_SECONDS = 3600;
/** The engine's default SETTLE_SECONDS, which the measured runs use. */
const SETTLE_SECONDS = parseSyncSettings({}).settleSeconds;
const LOOKBACK_SECONDS = parseSyncSettings({}).lookbackSeconds;
const WARM_UP_SECONDS = 1200;
const INSERT_ROWS = 10_000;
/** Rows of a call dialed more than this before the snapshot are in their last state whatever it is. */
const SETTLED_AFTER = 1200;
const TRANSIENT = ['INCALL', 'DISPO', 'QUEUE'];

/** The original script's query (process-call-results.pl), with the checkpoint as epoch seconds. */
export const PERL_QUERY =
  'SELECT uniqueid, lead_id, list_id, campaign_id, call_date, start_epoch, end_epoch, length_in_sec, status,' +
  ' phone_code, phone_number, user, comments, processed, user_group, term_reason, alt_dial, called_count' +
  " FROM vicidial_log WHERE end_epoch > ? AND status != '' AND status IS NOT NULL AND length_in_sec > 0" +
  ' ORDER BY end_epoch ASC LIMIT 500';

export interface HandlerReads {
  key: number;
  next: number;
  /** Rows fetched by position (a filesort reading its rows again). */
  rnd: number;
  rndNext: number;
  /** first, last, prev, retry, rnd_deleted. */
  other: number;
  total: number;
}

export interface CenterCase {
  name: 'caught up' | 'backlog 1 h';
  /** Database clock minus the cursor when the measured run starts. */
  lagBeforeSeconds: number;
  /** Of calls: from the cursor before the run to the cursor after it (or the newest call). */
  minutesOfCalls: number;
  delivered: number;
  /** Calls in that span with a final status and a length: what the run should deliver. */
  expectedInSpan: number;
  /** Of those, not stored by the API after the run (held back: PENDING_MAX, ...). */
  missedInSpan: number;
  /** Of those, calls that started before the run's scan window (cursor - LOOKBACK_SECONDS). */
  missedStartedBeforeScan: number;
  /** Delivered calls ending before the span: pending calls whose disposition came. */
  deliveredFromBefore: number;
  apiDuplicates: number;
  reads: HandlerReads;
  rowsPerCall: number | null;
  /** Rows the engine's queries returned (the server read more: the ineligible ones). */
  rowsReturned: number;
  queries: Record<string, QueryStats>;
  queryCount: number;
  /** Sum of the engine's query times as it awaited them. */
  dbMs: number;
  /** BUSY_TIME of the sync's database user (information_schema.USER_STATISTICS). */
  serverBusyMs: number | null;
  dbSecondsPerMinute: number | null;
  runSeconds: number;
  cpuMs: number;
  pendingAfter: number;
  /** Size of the checkpoint item after the run (every checkpoint write rewrites it whole). */
  checkpointBytes: number | null;
  dynamo: Record<string, number>;
  dynamoWrites: number;
  outcome: string;
  problems: Record<string, number>;
}

export interface CenterFigures {
  rows: number;
  loadSeconds: number;
  callsPerMinute: number;
  hours: number;
  apiLatencyMs: number;
  statusMix: Record<string, number>;
  /** VICIdial's writes in the two minutes before the caught-up run. */
  advanced: { inserted: number; updated: number };
  cases: CenterCase[];
  perl: { checkpointLagSeconds: number; reads: HandlerReads; rowsReturned: number; ms: number; plan: string };
}

export const WRITE_COMMANDS = new Set(['UpdateItemCommand', 'PutItemCommand', 'DeleteItemCommand']);

export function dynamoWrites(counts: Record<string, number>): number {
  return Object.entries(counts).reduce((a, [name, n]) => a + (WRITE_COMMANDS.has(name) ? n : 0), 0);
}

function toReads(status: { Variable_name: string; Value: string }[]): HandlerReads {
  const reads: HandlerReads = { key: 0, next: 0, rnd: 0, rndNext: 0, other: 0, total: 0 };
  for (const { Variable_name: name, Value: value } of status) {
    const n = Number(value);
    if (name === 'Handler_read_key') reads.key += n;
    else if (name === 'Handler_read_next') reads.next += n;
    else if (name === 'Handler_read_rnd') reads.rnd += n;
    else if (name === 'Handler_read_rnd_next') reads.rndNext += n;
    else reads.other += n;
    reads.total += n;
  }
  return reads;
}

function minus(a: HandlerReads, b: HandlerReads): HandlerReads {
  return {
    key: a.key - b.key,
    next: a.next - b.next,
    rnd: a.rnd - b.rnd,
    rndNext: a.rndNext - b.rndNext,
    other: a.other - b.other,
    total: a.total - b.total,
  };
}

async function globalReads(root: mysql.Connection): Promise<HandlerReads> {
  const [rows] = await root.query("SHOW GLOBAL STATUS LIKE 'Handler_read%'");
  return toReads(rows as { Variable_name: string; Value: string }[]);
}

async function userBusyMs(root: mysql.Connection): Promise<number | null> {
  const [rows] = await root.query(
    'SELECT BUSY_TIME AS busy FROM information_schema.USER_STATISTICS WHERE USER = ?',
    [ENGINE_USER],
  );
  const busy = (rows as { busy: number | string }[])[0]?.busy;
  return busy === undefined ? 0 : Number(busy) * 1000;
}

interface LoadedCenter {
  /** Rows now in vicidial_log. */
  rows: number;
  seconds: number;
  /** The instant the rows stand at: VICIdial's writes up to here are in the table. */
  at: number;
  /** The calls dialed in the last SETTLED_AFTER seconds and up to `until`: their rows still change. */
  recent: CenterCall[];
  /** The calls end here: the newest call is dialed before it. */
  until: number;
}

/**
 * Loads HOURS of calls up to about the database clock's "now" (`until`), with the rows as they stood
 * CAUGHT_UP_SECONDS before it; `advanceCenter` then writes what VICIdial wrote meanwhile.
 */
async function loadCenter(pool: mysql.Pool): Promise<LoadedCenter> {
  const started = performance.now();
  // The rows of calls dialed well before "now" do not depend on its exact instant: they are written
  // first, the recent ones once "now" is read again, so the data ends at the database clock's "now"
  // however long the load takes.
  const estimate = (await dbNow(pool)) + 20;
  const minutes = centerCalls({
    callsPerMinute: CALLS_PER_MINUTE,
    fromEpoch: estimate - HOURS * 3600,
    toEpoch: estimate + 600,
    seed: 2026,
  });
  const buffer: VicidialLogRow[] = [];
  let inFlight: Promise<unknown> = Promise.resolve();
  let rows = 0;
  const flush = async (all: boolean) => {
    while (buffer.length >= INSERT_ROWS || (all && buffer.length > 0)) {
      const chunk = buffer.splice(0, INSERT_ROWS);
      const sql = bulkInsertSql(chunk);
      rows += chunk.length;
      // One INSERT in flight while the next chunk is generated.
      await inFlight;
      inFlight = pool.query(sql);
    }
  };
  let until: number | undefined;
  const recent: CenterCall[] = [];
  let lastReport = performance.now();
  for (const calls of minutes) {
    const minuteStart = calls[0]?.dialAt ?? 0;
    if (until === undefined && minuteStart + 60 > estimate - SETTLED_AFTER) {
      await flush(true);
      await inFlight;
      const now = await dbNow(pool);
      // A machine much faster than the estimate: wait, so the rows written first are settled.
      if (now < estimate - 60) await sleep((estimate - 60 - now) * 1000);
      until = Math.max(now, estimate - 60);
    }
    if (until === undefined) {
      buffer.push(...rowsAsOf(calls, estimate));
      await flush(false);
    } else if (minuteStart < until) {
      const end = until;
      recent.push(...calls.filter((c) => c.dialAt < end));
    } else {
      break;
    }
    if (performance.now() - lastReport > 10_000) {
      lastReport = performance.now();
      progress(`  ${fmt(rows)} rows`);
    }
  }
  const end = until ?? estimate;
  const at = end - CAUGHT_UP_SECONDS;
  buffer.push(...rowsAsOf(recent, at));
  await flush(true);
  await inFlight;
  return { rows, seconds: (performance.now() - started) / 1000, at, recent, until: end };
}

/** VICIdial's writes from `center.at` to `center.until`: new rows, hang-ups, dispositions. */
async function advanceCenter(
  pool: mysql.Pool,
  center: LoadedCenter,
): Promise<{ inserted: number; updated: number }> {
  const writes = writesBetween(center.recent, center.at, center.until);
  const known = new Set(rowsAsOf(center.recent, center.at).map((r) => r.uniqueid));
  for (let i = 0; i < writes.length; i += INSERT_ROWS)
    await bulkUpsert(pool, writes.slice(i, i + INSERT_ROWS));
  const inserted = writes.filter((w) => !known.has(w.uniqueid)).length;
  center.at = center.until;
  return { inserted, updated: writes.length - inserted };
}

export async function benchCenter(ctx: BenchContext): Promise<CenterFigures> {
  const db = await benchDatabase(ctx, `bench_center_${randomBytes(3).toString('hex')}`);
  progress(
    `A: loading ${fmt(HOURS)} h of a center ending ${fmt(CALLS_PER_MINUTE)} calls a minute (${fmt(HOURS * 60 * CALLS_PER_MINUTE)} rows)`,
  );
  const center = await loadCenter(db.pool);
  progress(
    `  ${fmt(center.rows)} rows in ${center.seconds.toFixed(1)} s, as they stood ${fmt((await dbNow(db.pool)) - center.at)} s ago`,
  );
  ctx.api.reset();
  ctx.api.setLatency(LATENCY_MS);
  let advanced = { inserted: 0, updated: 0 };

  const base = {
    db: db.target,
    apiUrl: ctx.api.url,
    apiKey: ctx.apiKey,
    dynamoEndpoint: ctx.dynamo.endpoint,
    table: ctx.table,
  };
  const runCase = async (
    name: CenterCase['name'],
    /** Where the warm-up leaves the cursor, given the database clock. */
    cursorAt: (now: number) => number,
    /** Between the warm-up and the measured run: VICIdial's writes meanwhile. */
    between?: () => Promise<void>,
  ): Promise<CenterCase> => {
    const syncId = `center-${name === 'caught up' ? 'live' : 'backlog'}-${randomBytes(3).toString('hex')}`;
    // Every case is a sync of its own: what the API got from another one is not a repeat.
    ctx.api.reset();
    ctx.api.setLatency(LATENCY_MS);
    const now = await dbNow(db.pool);
    const target = cursorAt(now);
    progress(`A: ${name}: warm-up run (not measured) from ${WARM_UP_SECONDS / 60} minutes before the cursor`);
    const warm = await runChild({
      ...base,
      mode: 'sync',
      owner: `bench-warm-${process.pid}`,
      settings: {
        SYNC_ID: syncId,
        START_FROM: String(target - WARM_UP_SECONDS),
        SETTLE_SECONDS: String(Math.min(3600, now - target)),
      },
    });
    const before = warm.summary.cursor;
    if (warm.summary.outcome !== 'completed' || !before) {
      throw new Error(
        `warm-up run ended ${warm.summary.outcome} (${warm.summary.reason ?? ''} ${warm.summary.detail ?? ''})`,
      );
    }
    await between?.();
    const storedBefore = ctx.api.calls.length;
    const duplicatesBefore = ctx.api.duplicates();
    // The bench's own statement between the two snapshots: one SHOW GLOBAL STATUS.
    const first = await globalReads(ctx.root);
    const own = minus(await globalReads(ctx.root), first);
    const busyBefore = await userBusyMs(ctx.root);
    const readsBefore = await globalReads(ctx.root);
    const lagBefore = (await dbNow(db.pool)) - before.endEpoch;
    progress(`A: ${name}: measured run, cursor ${fmt(lagBefore)} s behind the database clock`);
    const run = await runChild({
      ...base,
      mode: 'sync',
      owner: `bench-${process.pid}`,
      settings: { SYNC_ID: syncId },
    });
    const readsAfter = await globalReads(ctx.root);
    const busyAfter = await userBusyMs(ctx.root);
    const reads = minus(minus(readsAfter, readsBefore), own);
    const after = run.summary.cursor ?? before;
    const [expectedRows] = await db.pool.query(
      'SELECT uniqueid FROM vicidial_log WHERE (end_epoch > ? OR (end_epoch = ? AND uniqueid > ?))' +
        ' AND (end_epoch < ? OR (end_epoch = ? AND uniqueid <= ?))' +
        ` AND status NOT IN (${TRANSIENT.map(() => '?').join(', ')}) AND status <> '' AND length_in_sec > 0`,
      [
        before.endEpoch,
        before.endEpoch,
        before.uniqueid,
        after.endEpoch,
        after.endEpoch,
        after.uniqueid,
        ...TRANSIENT,
      ],
    );
    const expected = (expectedRows as { uniqueid: string }[]).map((r) => r.uniqueid);
    // The warm-up may have delivered a few calls beyond its cursor (recorded as ahead): not missed.
    const missedIds = expected.filter((u) => !ctx.api.stored.has(u));
    const missed = missedIds.length;
    // Those that started before this run's scan window could only have been found by following them.
    let missedStartedBefore = 0;
    if (missedIds.length > 0) {
      const [started] = await db.pool.query(
        `SELECT COUNT(*) AS n FROM vicidial_log WHERE uniqueid IN (${missedIds.map(() => '?').join(', ')}) AND start_epoch < ?`,
        [...missedIds, before.endEpoch - LOOKBACK_SECONDS],
      );
      missedStartedBefore = Number((started as { n: number }[])[0]?.n ?? 0);
    }
    const fromBefore = ctx.api.calls
      .slice(storedBefore)
      .filter((c) => Number(c.body.endEpoch) <= before.endEpoch).length;
    const queryCount = Object.values(run.queries).reduce((a, q) => a + q.count, 0);
    const dbMs = Object.values(run.queries).reduce((a, q) => a + q.ms, 0);
    const minutesOfCalls = Math.max(0, Math.min(after.endEpoch, center.until) - before.endEpoch) / 60;
    const delivered = run.summary.delivered;
    const result: CenterCase = {
      name,
      lagBeforeSeconds: lagBefore,
      minutesOfCalls,
      delivered,
      expectedInSpan: expected.length,
      missedInSpan: missed,
      missedStartedBeforeScan: missedStartedBefore,
      deliveredFromBefore: fromBefore,
      apiDuplicates: ctx.api.duplicates() - duplicatesBefore,
      reads,
      rowsPerCall: delivered > 0 ? reads.total / delivered : null,
      rowsReturned: Object.values(run.queries).reduce((a, q) => a + q.rows, 0),
      queries: run.queries,
      queryCount,
      dbMs,
      serverBusyMs: busyBefore === null || busyAfter === null ? null : busyAfter - busyBefore,
      dbSecondsPerMinute: minutesOfCalls > 0 ? dbMs / 1000 / minutesOfCalls : null,
      runSeconds: run.wallMs / 1000,
      cpuMs: (run.cpuUserUs + run.cpuSystemUs) / 1000,
      pendingAfter: run.summary.pending,
      checkpointBytes: await checkpointItemBytes(ctx, syncId),
      dynamo: run.dynamo,
      dynamoWrites: dynamoWrites(run.dynamo),
      outcome: run.summary.outcome,
      problems: run.log.problems,
    };
    progress(
      `  ${fmt(delivered)} delivered in ${result.runSeconds.toFixed(1)} s, ${fmt(reads.total)} rows read (${fmt(result.rowsPerCall, 1)} per call), ${fmt(dbMs)} ms of queries`,
    );
    return result;
  };

  const cases: CenterCase[] = [];
  // Caught up: the previous run (the warm-up) ran when the rows stood at `center.at`, two minutes
  // before the newest calls; VICIdial's writes since then go in before the measured run.
  cases.push(
    await runCase(
      'caught up',
      () => center.at - SETTLE_SECONDS,
      async () => {
        advanced = await advanceCenter(db.pool, center);
      },
    ),
  );
  // A backlog: the cursor an hour behind the clock (an outage, a paused schedule).
  cases.push(await runCase('backlog 1 h', (now) => now - BACKLOG_SECONDS));

  const [mix] = await db.pool.query(
    'SELECT status, COUNT(*) AS n FROM vicidial_log GROUP BY status ORDER BY n DESC',
  );
  const statusMix = Object.fromEntries(
    (mix as { status: string; n: number }[]).map((r) => [r.status, Number(r.n)]),
  );
  const rows = Object.values(statusMix).reduce((a, b) => a + b, 0);

  // The Perl script's read, one batch from the backlog's checkpoint, on a connection of its own.
  const conn = await mysql.createConnection({ uri: db.url, dateStrings: true });
  try {
    const checkpoint = center.until - BACKLOG_SECONDS;
    const [plan] = await conn.query(`EXPLAIN ${PERL_QUERY}`, [checkpoint]);
    const p = (plan as { type: string; key: string | null; rows: number | string }[])[0];
    await conn.query('FLUSH STATUS');
    const started = performance.now();
    const [got] = await conn.query(PERL_QUERY, [checkpoint]);
    const ms = performance.now() - started;
    const [status] = await conn.query("SHOW SESSION STATUS LIKE 'Handler_read%'");
    return {
      rows,
      loadSeconds: center.seconds,
      callsPerMinute: CALLS_PER_MINUTE,
      hours: HOURS,
      apiLatencyMs: LATENCY_MS,
      statusMix,
      advanced,
      cases,
      perl: {
        checkpointLagSeconds: (await dbNow(conn)) - checkpoint,
        reads: toReads(status as { Variable_name: string; Value: string }[]),
        rowsReturned: (got as unknown[]).length,
        ms,
        plan: p ? `${p.type}${p.key ? ` ${p.key}` : ''} (est. ${fmt(Number(p.rows))})` : '?',
      },
    };
  } finally {
    await conn.end();
  }
}
