/**
 * `npm run bench`: figures, not assertions. On this machine and with no AWS account it starts a throwaway
 * MariaDB, dynalite (DynamoDB) and the DID Optimizer stand-in, then measures
 *
 *  1. rows the server examines per slice read, for growing vicidial_log tables, next to the original
 *     Perl script's query (MariaDB's Handler_read% counters around each statement, on one connection);
 *  2. delivery throughput of the real engine (createSync + runSync) at several CONCURRENCY values,
 *     with checkpoint and DynamoDB writes, the API's peak in-flight requests and the process's memory,
 *     checking on the way that every call arrived exactly once;
 *  3. the reference figures of the issue (the Perl script) beside ours.
 *
 * Tables go to stdout, then one JSON line `{"bench": {...}}`; progress goes to stderr. Everything started
 * here is stopped again at the end, on an error and on Ctrl-C.
 *
 * Environment: BENCH_MAX_ROWS (largest table, default 1000000), BENCH_CALLS (calls per throughput run,
 * default 5000), BENCH_API_LATENCY_MS (default 20), BENCH_CONCURRENCY (comma list, default 1,4,16,32),
 * TEST_MYSQL_URL (use an existing server instead of a throwaway one).
 */
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import mysql from 'mysql2/promise';
import { staticApiKey } from '../functions/sync/api-client';
import { CheckpointStore } from '../functions/sync/checkpoint-store';
import { type Cursor, cursorAfter, cursorAt, cursorOf, planSlice } from '../functions/sync/cursor';
import { staticCredentials } from '../functions/sync/db-connection';
import { type RunSummary, runSync } from '../functions/sync/engine';
import type { LogFields, LogLevel, SyncLog } from '../functions/sync/log';
import { parseConnectionSettings, parseSyncSettings, type SyncSettings } from '../functions/sync/settings';
import { buildSliceQuery, TIME_ZONE_MARGIN_SECONDS } from '../functions/sync/vicidial-log';
import { createDynamoClient, createSync, type Sync } from '../functions/sync/wiring';
import { type FakeDidApi, startFakeDidApi } from '../test/support/fake-did-api';
import { type LocalDynamoDb, startLocalDynamoDb } from '../test/support/local-dynamodb';
import {
  createVicidialDatabase,
  dbSettingsOf,
  type LocalMariaDb,
  startLocalMariaDb,
} from '../test/support/local-mariadb';
import { generateCalls, insertCalls, type VicidialLogRow } from '../test/support/sample-calls';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

// ---------------------------------------------------------------------------------------------------
// Settings of the benchmark

function intEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  if (!/^\d+$/.test(raw)) throw new Error(`${name} must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new Error(`${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function listEnv(name: string, fallback: number[], min: number, max: number): number[] {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  const items = raw.split(',').map((s) => s.trim());
  if (items.some((s) => !/^\d+$/.test(s) || Number(s) < min || Number(s) > max)) {
    throw new Error(`${name} must be a comma list of whole numbers between ${min} and ${max}, got "${raw}"`);
  }
  return items.map(Number);
}

const RECENT_CALLS = 3000;
/** Rows below this many are generated in Node and inserted in 5,000-row INSERTs; above it, copied by the server. */
const GENERATED_HISTORY = 100_000;
const INSERT_CHUNK = 5000;
const MAX_ROWS = intEnv('BENCH_MAX_ROWS', 1_000_000, 5000, 5_000_000);
const CALLS = intEnv('BENCH_CALLS', 5000, 1, 1_000_000);
const LATENCY_MS = intEnv('BENCH_API_LATENCY_MS', 20, 0, 10_000);
const CONCURRENCIES = listEnv('BENCH_CONCURRENCY', [1, 4, 16, 32], 1, 64);
const SIZES = [...[10_000, 100_000, 1_000_000].filter((s) => s < MAX_ROWS), MAX_ROWS];
const API_KEY = 'bench-key';
const CHECKPOINT_TABLE = 'did-sync-bench';

/** The issue's figures for the original Perl script. */
const PERL_REFERENCE = {
  callsPerSecond: 42,
  apiLatencyMs: 20,
  rowsReadPerBatch: 1_002_502,
  tableRows: 1_000_000,
  batchSize: 500,
};

/** The original script's query (process-call-results.pl), with the checkpoint as epoch seconds. */
const PERL_QUERY =
  'SELECT uniqueid, lead_id, list_id, campaign_id, call_date, start_epoch, end_epoch, length_in_sec, status,' +
  ' phone_code, phone_number, user, comments, processed, user_group, term_reason, alt_dial, called_count' +
  " FROM vicidial_log WHERE end_epoch > ? AND status != '' AND status IS NOT NULL AND length_in_sec > 0" +
  ' ORDER BY end_epoch ASC LIMIT 500';

// ---------------------------------------------------------------------------------------------------
// Output, progress and cleanup

const benchStarted = performance.now();
const loadAtStart = loadavg();
const out = (line = '') => process.stdout.write(`${line}\n`);
const progress = (text: string) =>
  process.stderr.write(
    `[bench ${((performance.now() - benchStarted) / 1000).toFixed(1).padStart(6)}s] ${text}\n`,
  );

const cleanups: { name: string; fn: () => Promise<unknown> }[] = [];
let cleaning: Promise<void> | undefined;
let interrupted = false;

function onCleanup(name: string, fn: () => Promise<unknown>): void {
  cleanups.push({ name, fn });
}

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (let c = cleanups.pop(); c; c = cleanups.pop()) {
      const step = c;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        step.fn(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('timed out')), 15_000);
        }),
      ])
        .catch((error: unknown) => progress(`cleanup of ${step.name} failed: ${(error as Error).message}`))
        .finally(() => clearTimeout(timer));
    }
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    progress(`${signal}: stopping MariaDB, dynalite and the API stand-in (again to force)`);
    void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  });
}

function fmt(n: number | null | undefined, digits = 0): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A plain-text table; `align` has one letter per column, `l` or `r`. */
function printTable(title: string, head: string[], rows: string[][], align: string): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (align[i] === 'l' ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  out();
  out(title);
  out(line(head));
  out(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) out(line(r));
}

// ---------------------------------------------------------------------------------------------------
// Part 1: rows examined per slice read

interface HandlerReads {
  key: number;
  next: number;
  /** Rows fetched by position: a filesort in sort_key,rowid mode reads the rows it returns again. */
  rnd: number;
  rndNext: number;
  /** Handler_read_first/last/prev/rnd_deleted/retry. */
  other: number;
  total: number;
}

type Layout = 'history' | 'busy';

interface ScanFigures {
  tableRows: number;
  query: 'engine' | 'perl';
  /**
   * history: all history older than the lookback window, only the recent calls inside it;
   * busy: also calls at the history's density in the hours before the cursor, as in a center that runs all day.
   */
  layout: Layout;
  reads: number;
  rowsReturned: number;
  perRead: HandlerReads;
  firstReadTotal: number;
  maxReadTotal: number;
  msPerRead: number;
  plan: string;
  planWithoutForceIndex: string | null;
}

async function measured<T>(
  conn: mysql.Connection,
  sql: string,
  values: unknown[],
): Promise<{ rows: T[]; reads: HandlerReads; ms: number }> {
  await conn.query('FLUSH STATUS');
  const started = performance.now();
  const [rows] = await conn.query(sql, values);
  const ms = performance.now() - started;
  const [status] = await conn.query("SHOW SESSION STATUS LIKE 'Handler_read%'");
  const reads: HandlerReads = { key: 0, next: 0, rnd: 0, rndNext: 0, other: 0, total: 0 };
  for (const { Variable_name: name, Value: value } of status as { Variable_name: string; Value: string }[]) {
    const n = Number(value);
    if (name === 'Handler_read_key') reads.key += n;
    else if (name === 'Handler_read_next') reads.next += n;
    else if (name === 'Handler_read_rnd') reads.rnd += n;
    else if (name === 'Handler_read_rnd_next') reads.rndNext += n;
    else reads.other += n;
    reads.total += n;
  }
  return { rows: rows as T[], reads, ms };
}

async function explain(conn: mysql.Connection, sql: string, values: unknown[]): Promise<string> {
  const [rows] = await conn.query(`EXPLAIN ${sql}`, values);
  const plan = (
    rows as { type: string; key: string | null; rows: number | string; Extra: string | null }[]
  )[0];
  if (!plan) return '?';
  return `${plan.type}${plan.key ? ` ${plan.key}` : ''} (est. ${fmt(Number(plan.rows))})`;
}

async function dbNow(conn: mysql.Connection | mysql.Pool): Promise<number> {
  const [rows] = await conn.query('SELECT UNIX_TIMESTAMP() AS now');
  return Math.floor(Number((rows as { now: number | string }[])[0]?.now));
}

function summarize(
  tableRows: number,
  query: ScanFigures['query'],
  layout: Layout,
  reads: HandlerReads[],
  ms: number[],
  rowsReturned: number,
  plan: string,
  planWithoutForceIndex: string | null,
): ScanFigures {
  const n = Math.max(1, reads.length);
  const avg = (pick: (r: HandlerReads) => number) => Math.round(reads.reduce((a, r) => a + pick(r), 0) / n);
  return {
    tableRows,
    query,
    layout,
    reads: reads.length,
    rowsReturned,
    perRead: {
      key: avg((r) => r.key),
      next: avg((r) => r.next),
      rnd: avg((r) => r.rnd),
      rndNext: avg((r) => r.rndNext),
      other: avg((r) => r.other),
      total: avg((r) => r.total),
    },
    firstReadTotal: reads[0]?.total ?? 0,
    maxReadTotal: Math.max(0, ...reads.map((r) => r.total)),
    msPerRead: ms.reduce((a, b) => a + b, 0) / n,
    plan,
    planWithoutForceIndex,
  };
}

/** The engine's reads as `drain()` makes them: slice by slice, cursor on (end_epoch, uniqueid). */
async function walkEngine(
  conn: mysql.Connection,
  s: SyncSettings,
  start: number,
  tableRows: number,
  layout: Layout,
): Promise<ScanFigures> {
  const filters = {
    minDurationSeconds: s.minDurationSeconds,
    campaigns: s.campaigns,
    excludeCampaigns: s.excludeCampaigns,
  };
  let cursor: Cursor = cursorAt(start);
  const reads: HandlerReads[] = [];
  const ms: number[] = [];
  let returned = 0;
  let plan = '';
  let planWithoutForce = '';
  for (let i = 0; i < 1000; i++) {
    const slice = planSlice(cursor, await dbNow(conn), s.settleSeconds, s.sliceSeconds);
    if (!slice) break;
    const { sql, values } = buildSliceQuery(
      { cursor, sliceEnd: slice.sliceEnd, limit: s.batchSize, lookbackSeconds: s.lookbackSeconds },
      filters,
    );
    if (i === 0) {
      plan = await explain(conn, sql, values);
      planWithoutForce = await explain(conn, sql.replace(' FORCE INDEX (call_date)', ''), values);
    }
    const r = await measured<{ end_epoch: number | string; uniqueid: string }>(conn, sql, values);
    reads.push(r.reads);
    ms.push(r.ms);
    returned += r.rows.length;
    const last = r.rows[r.rows.length - 1];
    if (r.rows.length < s.batchSize) {
      if (slice.reachesSettleBound) break;
      cursor = cursorAfter(slice.sliceEnd);
    } else if (last) {
      cursor = cursorOf({ end_epoch: Number(last.end_epoch), uniqueid: last.uniqueid });
    }
  }
  return summarize(tableRows, 'engine', layout, reads, ms, returned, plan, planWithoutForce);
}

/** The Perl script's reads: `end_epoch > last end_epoch seen`, 500 at a time, until a short batch. */
async function walkPerl(
  conn: mysql.Connection,
  start: number,
  tableRows: number,
  layout: Layout,
): Promise<ScanFigures> {
  let checkpoint = start - 1;
  const reads: HandlerReads[] = [];
  const ms: number[] = [];
  let returned = 0;
  const plan = await explain(conn, PERL_QUERY, [checkpoint]);
  for (let i = 0; i < 1000; i++) {
    const r = await measured<{ end_epoch: number | string }>(conn, PERL_QUERY, [checkpoint]);
    reads.push(r.reads);
    ms.push(r.ms);
    returned += r.rows.length;
    const last = r.rows[r.rows.length - 1];
    if (!last || r.rows.length < PERL_REFERENCE.batchSize) break;
    checkpoint = Number(last.end_epoch);
  }
  return summarize(tableRows, 'perl', layout, reads, ms, returned, plan, null);
}

const INSERT_COLUMNS =
  'uniqueid, lead_id, list_id, campaign_id, call_date, start_epoch, end_epoch, length_in_sec, status,' +
  ' phone_code, phone_number, user, comments, processed, user_group, term_reason, alt_dial, called_count';

/**
 * Builds the history: weeks of calls that all ended before the lookback window. Up to GENERATED_HISTORY
 * rows come from generateCalls in 5,000-row INSERTs; beyond that the server copies existing history
 * (INSERT ... SELECT), each copy moved to other seconds of the same weeks and given uniqueids of its own.
 */
class History {
  rows = 0;
  private seq = 0;
  private chunk = 0;
  private copies = 0;

  constructor(
    private readonly conn: mysql.Connection,
    readonly fromEpoch: number,
    readonly toEpoch: number,
  ) {}

  /** Rewrites uniqueids as `<start>.<sequence>`: unique across chunks, Asterisk-shaped. */
  renumber(rows: VicidialLogRow[]): VicidialLogRow[] {
    for (const row of rows) row.uniqueid = `${row.start_epoch}.${++this.seq}`;
    return rows;
  }

  async growTo(target: number): Promise<void> {
    while (this.rows < target) {
      const missing = target - this.rows;
      if (this.rows < GENERATED_HISTORY) {
        const count = Math.min(missing, INSERT_CHUNK, GENERATED_HISTORY - this.rows);
        const rows = generateCalls({
          count,
          fromEpoch: this.fromEpoch,
          toEpoch: this.toEpoch,
          seed: 10_000 + ++this.chunk,
          tiesPerSecond: 4,
        });
        await insertCalls(this.conn, this.renumber(rows), { chunkSize: INSERT_CHUNK });
        this.rows += count;
      } else {
        // Copy k adds 2^(k-1) * 10^7 to the sequence part of the uniqueid: sequences stay below 10^7
        // and every copy generation sets another bit, so no id repeats (and ids stay <= 20 characters).
        const count = Math.min(missing, this.rows);
        const offset = 2 ** this.copies * 10_000_000;
        this.copies++;
        const span = this.toEpoch - this.fromEpoch + 1;
        const shift = 7919 * this.copies + 1;
        const newEnd = `(? + MOD(CAST(end_epoch AS SIGNED) - ? + ${shift}, ${span}))`;
        const newStart = `(${newEnd} - (CAST(end_epoch AS SIGNED) - CAST(start_epoch AS SIGNED)))`;
        // Through a staging table: INSERT ... SELECT from vicidial_log into itself would buffer the whole
        // selection in an implicit temporary table; two plain passes are quicker and bounded.
        await this.conn.query('DROP TABLE IF EXISTS bench_copy');
        await this.conn.query(
          'CREATE TABLE bench_copy ENGINE=MyISAM AS' +
            ` SELECT CONCAT(${newStart}, '.', CAST(SUBSTRING_INDEX(uniqueid, '.', -1) AS UNSIGNED) + ${offset}) AS uniqueid,` +
            ` lead_id, list_id, campaign_id, FROM_UNIXTIME(${newStart}) AS call_date, ${newStart} AS start_epoch,` +
            ` ${newEnd} AS end_epoch, length_in_sec, status, phone_code, phone_number, user, comments, processed,` +
            ' user_group, term_reason, alt_dial, called_count FROM vicidial_log WHERE end_epoch <= ? LIMIT ?',
          [...Array.from({ length: 4 }, () => [this.fromEpoch, this.fromEpoch]).flat(), this.toEpoch, count],
        );
        await this.conn.query(
          `INSERT INTO vicidial_log (${INSERT_COLUMNS}) SELECT ${INSERT_COLUMNS} FROM bench_copy`,
        );
        await this.conn.query('DROP TABLE bench_copy');
        this.rows += count;
      }
    }
  }
}

async function benchRowsExamined(maria: LocalMariaDb): Promise<ScanFigures[]> {
  const dbUrl = await createVicidialDatabase(maria.url, `bench_scan_${randomBytes(3).toString('hex')}`);
  const dbName = new URL(dbUrl).pathname.slice(1);
  const conn = await mysql.createConnection({ uri: dbUrl, dateStrings: true, charset: 'utf8mb4' });
  onCleanup('scan database', async () => {
    await conn.query(`DROP DATABASE IF EXISTS \`${dbName}\``).catch(() => undefined);
    await conn.end();
  });
  const s = parseSyncSettings({});
  const now = await dbNow(conn);
  // The sync is about an hour behind; the recent calls ended in the last 50 minutes.
  const start = now - 3600;
  const history = new History(conn, now - 28 * 86400, now - 86400);
  const recent = history.renumber(
    generateCalls({
      count: RECENT_CALLS,
      fromEpoch: now - 3000,
      toEpoch: now - 30,
      seed: 7,
      tiesPerSecond: 20,
    }),
  );
  await insertCalls(conn, recent, { chunkSize: INSERT_CHUNK });

  const results: ScanFigures[] = [];
  for (const size of SIZES) {
    const started = performance.now();
    progress(`rows examined: growing vicidial_log to ${fmt(size)} rows`);
    await history.growTo(size - RECENT_CALLS);
    const [[count]] = (await conn.query('SELECT COUNT(*) AS n FROM vicidial_log')) as unknown as [
      { n: number }[],
    ];
    const seconds = (performance.now() - started) / 1000;
    progress(
      `  ${fmt(Number(count?.n))} rows (added in ${seconds.toFixed(1)} s); reading as the engine does`,
    );
    results.push(await walkEngine(conn, s, start, Number(count?.n), 'history'));
    progress('  reading as the Perl script does');
    results.push(await walkPerl(conn, start, Number(count?.n), 'history'));
  }

  // A center that dials all day: calls at the history's density also in the hours before the cursor, which
  // the engine's call_date window [cursor - lookback - 1 h, slice end + 1 h] takes in on every read.
  const windowStart = start - s.lookbackSeconds - TIME_ZONE_MARGIN_SECONDS;
  const busy = Math.round((history.rows / (history.toEpoch - history.fromEpoch + 1)) * (start - windowStart));
  progress(`rows examined: adding ${fmt(busy)} calls at the history's density in the 7 h before the cursor`);
  await insertCalls(
    conn,
    history.renumber(
      generateCalls({
        count: busy,
        fromEpoch: windowStart + 900,
        toEpoch: start - 1,
        seed: 99,
        tiesPerSecond: 4,
      }),
    ),
    { chunkSize: INSERT_CHUNK },
  );
  const [[counted]] = (await conn.query('SELECT COUNT(*) AS n FROM vicidial_log')) as unknown as [
    { n: number }[],
  ];
  const total = Number(counted?.n);
  results.push(await walkEngine(conn, s, start, total, 'busy'));
  results.push(await walkPerl(conn, start, total, 'busy'));
  return results;
}

// ---------------------------------------------------------------------------------------------------
// Part 2: throughput

/** Discards every line, counts them (and names the warnings and errors). */
class CountingLog implements SyncLog {
  lines = 0;
  readonly levels: Record<LogLevel, number> = { debug: 0, info: 0, warn: 0, error: 0 };
  readonly problems = new Map<string, number>();
  /** durationMs of every call_sent line: one POST as the engine saw it, retries included. */
  readonly postMs: number[] = [];
  /** From the last POST of a batch to the next batch's rows: final checkpoint write and the next slice read. */
  readonly batchGapsMs: number[] = [];
  private lastSentAt: number | undefined;

  log(level: LogLevel, event: string, fields?: LogFields): void {
    this.lines++;
    this.levels[level]++;
    if (event === 'call_sent') {
      this.lastSentAt = performance.now();
      if (typeof fields?.durationMs === 'number') this.postMs.push(fields.durationMs);
    } else if (event === 'batch' && this.lastSentAt !== undefined) {
      this.batchGapsMs.push(performance.now() - this.lastSentAt);
    }
    if (level === 'warn' || level === 'error') this.problems.set(event, (this.problems.get(event) ?? 0) + 1);
  }
}

/** Counts DynamoDB requests by command name, as the client sends them. */
function countRequests(client: DynamoDBClient): Map<string, number> {
  const counts = new Map<string, number>();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? 'unknown';
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return next(args);
    },
    { step: 'initialize', name: 'benchRequestCounter' },
  );
  return counts;
}

const WRITE_COMMANDS = new Set(['UpdateItemCommand', 'PutItemCommand', 'DeleteItemCommand']);

function memorySampler(intervalMs: number) {
  let peakRss = 0;
  let peakHeap = 0;
  const take = () => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return { peakRss, peakHeap };
    },
  };
}

interface ThroughputFigures {
  concurrency: number;
  outcome: RunSummary['outcome'];
  reason: string | null;
  expected: number;
  delivered: number;
  stored: number;
  apiDuplicates: number;
  deadLettered: number;
  retried: number;
  callsPerSecond: number;
  wallSeconds: number;
  batches: number;
  checkpoints: number;
  dynamoWrites: number;
  dynamoRequests: number;
  dynamoWritesPerBatch: number;
  apiRequests: number;
  maxInFlight: number;
  /** One POST as the engine timed it (Date.now() resolution). */
  postMsP50: number | null;
  postMsP95: number | null;
  postMsMax: number | null;
  /** Mean time between batches with no POST under way (checkpoint write + slice read). */
  batchGapMs: number | null;
  /** Event-loop delay of this process during the run (engine, API stand-in and dynalite share it). */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  cpuPercent: number;
  rssBeforeMb: number;
  peakRssMb: number;
  heapBeforeMb: number;
  peakHeapMb: number;
  logLines: number;
  ok: boolean;
  problems: string[];
}

const mb = (bytes: number) => bytes / 1024 / 1024;

function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? null;
}

async function benchThroughput(maria: LocalMariaDb, dynamo: LocalDynamoDb, api: FakeDidApi) {
  const dbName = `bench_tp_${randomBytes(3).toString('hex')}`;
  const dbUrl = await createVicidialDatabase(maria.url, dbName);
  const pool = mysql.createPool({ uri: dbUrl, connectionLimit: 2, charset: 'utf8mb4' });
  onCleanup('throughput database', async () => {
    await pool.query(`DROP DATABASE IF EXISTS \`${dbName}\``).catch(() => undefined);
    await pool.end();
  });
  const now = await dbNow(pool);
  const startFrom = now - 1800 - 60;
  progress(`throughput: inserting ${fmt(CALLS)} calls of the last 30 minutes`);
  await insertCalls(
    pool,
    generateCalls({ count: CALLS, fromEpoch: now - 1800, toEpoch: now - 10, seed: 2026, tiesPerSecond: 20 }),
    { chunkSize: INSERT_CHUNK },
  );
  const [[eligible]] = (await pool.query(
    "SELECT COUNT(*) AS n FROM vicidial_log WHERE end_epoch >= ? AND status IS NOT NULL AND status <> '' AND length_in_sec > 0",
    [startFrom],
  )) as unknown as [{ n: number }[]];
  const expected = Number(eligible?.n);

  const client = createDynamoClient({
    table: CHECKPOINT_TABLE,
    region: 'us-east-1',
    endpoint: dynamo.endpoint,
  });
  onCleanup('DynamoDB client', async () => client.destroy());
  const requests = countRequests(client);
  const store = new CheckpointStore(client, CHECKPOINT_TABLE);
  await store.ensureTable();
  const db = staticCredentials(dbSettingsOf(dbUrl));

  const results: ThroughputFigures[] = [];
  for (const concurrency of CONCURRENCIES) {
    api.reset();
    requests.clear();
    (globalThis as { gc?: () => void }).gc?.();
    const syncId = `bench-c${concurrency}-${randomBytes(3).toString('hex')}`;
    const log = new CountingLog();
    const sync: Sync = createSync({
      settings: parseSyncSettings({
        SYNC_ID: syncId,
        CONCURRENCY: String(concurrency),
        START_FROM: String(startFrom),
        SETTLE_SECONDS: '0',
      }),
      api: { url: api.url, allowInsecure: false },
      db,
      dbConnection: parseConnectionSettings({}),
      keys: staticApiKey(API_KEY),
      checkpoints: store,
      log,
    });
    onCleanup(`sync ${syncId}`, () => sync.close());
    progress(`throughput: CONCURRENCY ${concurrency}, ${fmt(expected)} calls, API latency ${LATENCY_MS} ms`);
    const before = process.memoryUsage();
    const memory = memorySampler(20);
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const ticker = setInterval(() => {
      const seconds = (performance.now() - started) / 1000;
      progress(
        `  ${fmt(api.stored.size)} / ${fmt(expected)} delivered (${fmt(api.stored.size / seconds)} calls/s)`,
      );
    }, 10_000);
    let summary: RunSummary;
    try {
      summary = await runSync(sync, { owner: `bench-${process.pid}` });
    } finally {
      clearInterval(ticker);
    }
    const wallMs = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    const peak = memory.stop();
    loop.disable();
    await sync.close();

    const postMs = [...log.postMs].sort((a, b) => a - b);
    const dynamoWrites = [...requests].reduce((a, [name, n]) => a + (WRITE_COMMANDS.has(name) ? n : 0), 0);
    const problems: string[] = [];
    if (summary.outcome !== 'completed')
      problems.push(`outcome ${summary.outcome} (${summary.reason ?? '?'}: ${summary.detail ?? ''})`);
    if (api.stored.size !== expected)
      problems.push(`API stored ${api.stored.size} calls, expected ${expected}`);
    if (api.duplicates() !== 0) problems.push(`API saw ${api.duplicates()} duplicate posts`);
    if (summary.delivered !== expected)
      problems.push(`engine delivered ${summary.delivered}, expected ${expected}`);
    if (summary.deadLettered !== 0) problems.push(`${summary.deadLettered} calls dead-lettered`);
    if (summary.pending !== 0) problems.push(`${summary.pending} calls left pending`);
    for (const [event, n] of log.problems) problems.push(`${n}x log event ${event}`);
    results.push({
      concurrency,
      outcome: summary.outcome,
      reason: summary.reason ?? null,
      expected,
      delivered: summary.delivered,
      stored: api.stored.size,
      apiDuplicates: api.duplicates(),
      deadLettered: summary.deadLettered,
      retried: summary.retried,
      callsPerSecond: summary.delivered / (wallMs / 1000),
      wallSeconds: wallMs / 1000,
      batches: summary.batches,
      checkpoints: summary.checkpoints,
      dynamoWrites,
      dynamoRequests: [...requests.values()].reduce((a, b) => a + b, 0),
      dynamoWritesPerBatch: summary.batches > 0 ? dynamoWrites / summary.batches : 0,
      apiRequests: api.requestCount,
      maxInFlight: api.maxInFlight,
      postMsP50: percentile(postMs, 50),
      postMsP95: percentile(postMs, 95),
      postMsMax: postMs[postMs.length - 1] ?? null,
      batchGapMs:
        log.batchGapsMs.length > 0
          ? log.batchGapsMs.reduce((a, b) => a + b, 0) / log.batchGapsMs.length
          : null,
      loopDelayP99Ms: loop.percentile(99) / 1e6,
      loopDelayMaxMs: loop.max / 1e6,
      cpuPercent: ((cpu.user + cpu.system) / 1000 / wallMs) * 100,
      rssBeforeMb: mb(before.rss),
      peakRssMb: mb(peak.peakRss),
      heapBeforeMb: mb(before.heapUsed),
      peakHeapMb: mb(peak.peakHeap),
      logLines: log.lines,
      ok: problems.length === 0,
      problems,
    });
    progress(
      `  ${fmt(summary.delivered / (wallMs / 1000), 1)} calls/s in ${(wallMs / 1000).toFixed(1)} s${problems.length ? `; PROBLEMS: ${problems.join('; ')}` : ''}`,
    );
  }
  api.reset();
  return results;
}

// ---------------------------------------------------------------------------------------------------

async function main() {
  progress(
    `sizes ${SIZES.map((s) => fmt(s)).join(', ')} rows; ${fmt(CALLS)} calls at CONCURRENCY ${CONCURRENCIES.join(', ')}; API latency ${LATENCY_MS} ms`,
  );
  progress(
    process.env.TEST_MYSQL_URL ? 'using the server of TEST_MYSQL_URL' : 'starting a throwaway MariaDB',
  );
  const maria = await startLocalMariaDb();
  onCleanup('MariaDB', () => maria.stop());
  const dynamo = await startLocalDynamoDb();
  onCleanup('dynalite', () => dynamo.close());
  const api = await startFakeDidApi({ validKeys: [API_KEY], latencyMs: LATENCY_MS });
  onCleanup('API stand-in', () => api.close());
  const server = await mysql.createConnection({ uri: maria.url });
  const [[version]] = (await server.query('SELECT VERSION() AS v')) as unknown as [{ v: string }[]];
  await server.end();

  const scans = await benchRowsExamined(maria);
  const throughput = await benchThroughput(maria, dynamo, api);
  const settings = parseSyncSettings({});

  const loadAtEnd = loadavg();
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  out('vicidial-did-sync benchmark');
  out(
    `MariaDB ${version?.v ?? '?'}, Node ${process.version}, ${cpus().length} CPUs, load average ${load(loadAtStart)} at start, ${load(loadAtEnd)} at end`,
  );
  out(
    `engine defaults: BATCH_SIZE ${settings.batchSize}, LOOKBACK_SECONDS ${settings.lookbackSeconds}, SLICE_SECONDS ${settings.sliceSeconds}`,
  );

  printTable(
    `1. Rows examined per slice read (Handler_read% after FLUSH STATUS; averages over the reads that drain ${fmt(RECENT_CALLS)} recent calls, history older than the lookback)`,
    [
      'table rows',
      'query',
      'reads',
      'rows returned',
      'read_key',
      'read_next',
      'read_rnd',
      'read_rnd_next',
      'other',
      'total/read',
      'max total',
      'ms/read',
      'plan',
      'plan without FORCE INDEX',
    ],
    scans.map((r) => [
      fmt(r.tableRows),
      r.layout === 'busy' ? `${r.query}, busy` : r.query,
      fmt(r.reads),
      fmt(r.rowsReturned),
      fmt(r.perRead.key),
      fmt(r.perRead.next),
      fmt(r.perRead.rnd),
      fmt(r.perRead.rndNext),
      fmt(r.perRead.other),
      fmt(r.perRead.total),
      fmt(r.maxReadTotal),
      fmt(r.msPerRead, 1),
      r.plan,
      r.planWithoutForceIndex ?? '-',
    ]),
    'rlrrrrrrrrrrll',
  );
  out(
    `   engine: FORCE INDEX (call_date), call_date in [cursor - lookback - 1 h, slice end + 1 h], ORDER BY end_epoch, uniqueid`,
  );
  out('   perl:   end_epoch > checkpoint ORDER BY end_epoch LIMIT 500 (no index on end_epoch)');
  out(
    `   busy:   the largest table plus calls at the history's density in the ${fmt((settings.lookbackSeconds + TIME_ZONE_MARGIN_SECONDS) / 3600)} h before the cursor (a center dialing all day)`,
  );
  out(
    '   rows returned: all eligible recent calls read once; the Perl walk loses the rest of a tie group at each batch edge',
  );

  printTable(
    `2. Throughput: ${fmt(CALLS)} calls, API latency ${LATENCY_MS} ms, BATCH_SIZE ${settings.batchSize}, CHECKPOINT_INTERVAL_MS ${settings.checkpointIntervalMs}, SETTLE_SECONDS 0`,
    [
      'concurrency',
      'calls/s',
      'wall s',
      'batches',
      'checkpoints',
      'ddb writes',
      'writes/batch',
      'maxInFlight',
      'POST ms p50/p95/max',
      'gap ms/batch',
      'loop delay p99/max',
      'cpu %',
      'RSS MB (before/peak)',
      'heap MB (before/peak)',
      'log lines',
      'check',
    ],
    throughput.map((r) => [
      String(r.concurrency),
      fmt(r.callsPerSecond, 1),
      fmt(r.wallSeconds, 1),
      fmt(r.batches),
      fmt(r.checkpoints),
      fmt(r.dynamoWrites),
      fmt(r.dynamoWritesPerBatch, 2),
      fmt(r.maxInFlight),
      `${fmt(r.postMsP50)} / ${fmt(r.postMsP95)} / ${fmt(r.postMsMax)}`,
      fmt(r.batchGapMs),
      `${fmt(r.loopDelayP99Ms)} / ${fmt(r.loopDelayMaxMs)}`,
      fmt(r.cpuPercent),
      `${fmt(r.rssBeforeMb)} / ${fmt(r.peakRssMb)}`,
      `${fmt(r.heapBeforeMb)} / ${fmt(r.peakHeapMb)}`,
      fmt(r.logLines),
      r.ok ? `ok (${fmt(r.stored)} stored, 0 dup)` : 'FAILED',
    ]),
    'rrrrrrrrrrrrrrrl',
  );
  out(
    '   ddb writes: UpdateItem/PutItem/DeleteItem sent to dynalite (checkpoints + lease acquire/renew/release);',
  );
  out(
    '   POST ms: one call as the engine timed it; gap: last POST of a batch to the next batch (checkpoint + read)',
  );
  out(
    '   cpu %, loop delay: this process; the engine, the API stand-in and dynalite share its event loop (100 % = one core)',
  );
  for (const r of throughput.filter((t) => !t.ok)) {
    out(`   CHECK FAILED at CONCURRENCY ${r.concurrency}: ${r.problems.join('; ')}`);
  }

  const last = (query: ScanFigures['query'], layout: Layout) =>
    [...scans].reverse().find((r) => r.query === query && r.layout === layout);
  const largestEngine = last('engine', 'history');
  const largestPerl = last('perl', 'history');
  const busyEngine = last('engine', 'busy');
  const busyPerl = last('perl', 'busy');
  const scanCell = (r: ScanFigures | undefined) =>
    r ? `${fmt(r.perRead.total)} (${fmt(r.tableRows)} rows, ${fmt(r.msPerRead)} ms)` : '-';
  const byConcurrency = (c: number) => throughput.find((t) => t.concurrency === c);
  const serial = byConcurrency(1);
  const best = throughput.reduce<ThroughputFigures | undefined>(
    (a, t) => (!a || t.callsPerSecond > a.callsPerSecond ? t : a),
    undefined,
  );
  const defaultRun = byConcurrency(settings.concurrency);
  const rows: string[][] = [
    [
      `rows read per batch of 500, ${fmt(PERL_REFERENCE.tableRows)}-row table`,
      fmt(PERL_REFERENCE.rowsReadPerBatch),
      scanCell(largestPerl),
      scanCell(largestEngine),
    ],
    ['  same, busy (calls also in the 7 h before the cursor)', '-', scanCell(busyPerl), scanCell(busyEngine)],
    [
      `calls/s, API latency ${PERL_REFERENCE.apiLatencyMs} ms`,
      fmt(PERL_REFERENCE.callsPerSecond),
      '-',
      [
        serial ? `${fmt(serial.callsPerSecond, 1)} at CONCURRENCY 1` : '',
        defaultRun && defaultRun !== serial
          ? `${fmt(defaultRun.callsPerSecond, 1)} at ${defaultRun.concurrency} (default)`
          : '',
        best && best !== defaultRun && best !== serial
          ? `${fmt(best.callsPerSecond, 1)} at ${best.concurrency} (best)`
          : '',
      ]
        .filter(Boolean)
        .join(', ') +
        (LATENCY_MS === PERL_REFERENCE.apiLatencyMs ? '' : ` (our API latency ${LATENCY_MS} ms)`),
    ],
  ];
  if (defaultRun) {
    rows.push([
      `hours to send 100,000 calls`,
      fmt(100_000 / PERL_REFERENCE.callsPerSecond / 3600, 2),
      '-',
      `${fmt(100_000 / defaultRun.callsPerSecond / 3600, 2)} at CONCURRENCY ${defaultRun.concurrency}`,
    ]);
  }
  printTable(
    '3. Reference: the Perl script (issue) next to ours',
    ['figure', 'Perl (issue)', 'Perl query, measured here', 'this sync, measured here'],
    rows,
    'lrrl',
  );

  const totalSeconds = (performance.now() - benchStarted) / 1000;
  out();
  out(`total bench time ${totalSeconds.toFixed(1)} s`);
  out(
    JSON.stringify({
      bench: {
        config: {
          maxRows: MAX_ROWS,
          sizes: SIZES,
          recentCalls: RECENT_CALLS,
          calls: CALLS,
          apiLatencyMs: LATENCY_MS,
          concurrencies: CONCURRENCIES,
          batchSize: settings.batchSize,
          lookbackSeconds: settings.lookbackSeconds,
          sliceSeconds: settings.sliceSeconds,
          checkpointIntervalMs: settings.checkpointIntervalMs,
          mariadb: version?.v ?? null,
          node: process.version,
          cpus: cpus().length,
          loadAverageStart: loadAtStart,
          loadAverageEnd: loadAtEnd,
        },
        rowsExamined: scans,
        throughput,
        reference: {
          perl: PERL_REFERENCE,
          ours: {
            rowsReadPerBatch: largestEngine?.perRead.total ?? null,
            perlQueryRowsReadPerBatch: largestPerl?.perRead.total ?? null,
            atTableRows: largestEngine?.tableRows ?? null,
            busyRowsReadPerBatch: busyEngine?.perRead.total ?? null,
            busyPerlQueryRowsReadPerBatch: busyPerl?.perRead.total ?? null,
            busyAtTableRows: busyEngine?.tableRows ?? null,
            callsPerSecondSerial: serial?.callsPerSecond ?? null,
            callsPerSecondDefault: defaultRun?.callsPerSecond ?? null,
            callsPerSecondBest: best?.callsPerSecond ?? null,
            bestConcurrency: best?.concurrency ?? null,
          },
        },
        totalSeconds,
      },
    }),
  );
  if (throughput.some((t) => !t.ok)) process.exitCode = 1;
}

main()
  .catch((error: unknown) => {
    if (interrupted) return;
    progress(`bench failed: ${(error as Error).stack ?? String(error)}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    if (interrupted) return;
    progress('stopping MariaDB, dynalite and the API stand-in');
    await cleanup();
  });
