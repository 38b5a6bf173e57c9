import { randomBytes } from 'node:crypto';
import { bulkInsert } from '../../test/support/center-calls';
import type { RateLimit } from '../../test/support/fake-did-api';
import { generateCalls } from '../../test/support/sample-calls';
import { dynamoWrites } from './center';
import { type ChildLog, runChild } from './child';
import { fmt, intEnv, progress } from './common';
import { type BenchContext, benchDatabase, checkpointItemBytes, dbNow } from './context';
import type { BareRunFigures, DbTarget, SyncRunFigures } from './runner';

/**
 * Sections B, C, D and F: the real engine draining finished calls to the API stand-in, each run in a
 * child process (its CPU and memory are the sync's alone; the stand-in and dynalite stay here).
 * Every call arrives exactly once or the run is marked FAILED.
 */

export const CPU_CALLS = intEnv('BENCH_CPU_CALLS', 20_000, 100, 1_000_000);
export const CPU_LATENCY_MS = intEnv('BENCH_CPU_API_LATENCY_MS', 50, 0, 1000);
export const CPU_CONCURRENCY = intEnv('BENCH_CPU_CONCURRENCY', 32, 1, 64);
/** Rounds of (logs on, logs off, bare client); the median of each is reported. */
export const CPU_REPEATS = intEnv('BENCH_CPU_REPEATS', 3, 1, 20);
/** Seconds of steady state each throughput case is sized for. */
export const STEADY_SECONDS = intEnv('BENCH_STEADY_SECONDS', 12, 2, 600);
export const RATE_CALLS = intEnv('BENCH_RATE_CALLS', 3000, 100, 100_000);
export const RATE_PER_SECOND = intEnv('BENCH_RATE_PER_SECOND', 100, 1, 10_000);
/** D's windows: the rate per second as 1 s and 5 s windows (express-rate-limit's fixed windows). */
export const RATE_WINDOWS_SECONDS = [1, 5];
export const RATE_LATENCY_MS = intEnv('BENCH_RATE_API_LATENCY_MS', 50, 0, 1000);
export const RSS_CALLS = [
  intEnv('BENCH_RSS_CALLS_SMALL', 20_000, 100, 1_000_000),
  intEnv('BENCH_RSS_CALLS', 100_000, 100, 2_000_000),
];
export const RSS_LATENCY_MS = intEnv('BENCH_RSS_API_LATENCY_MS', 1, 0, 1000);
export const THROUGHPUT_LATENCIES = [50, 150];
export const THROUGHPUT_CONCURRENCIES = [16, 32];

export interface DrainFigures {
  label: string;
  calls: number;
  concurrency: number;
  apiLatencyMs: number;
  logLevel: string;
  delivered: number;
  stored: number;
  duplicates: number;
  outcome: string;
  wallSeconds: number;
  callsPerSecond: number;
  /** From the first to the last call the API stored: the rate once the run is under way. */
  steadyCallsPerSecond: number | null;
  cpuMs: number;
  cpuMsPerCall: number;
  processCpuMs: number;
  maxRssMb: number;
  /** RSS with everything loaded, before the run. */
  rssBeforeMb: number;
  heapUsedMb: number;
  logLines: number;
  logBytes: number;
  apiRequests: number;
  rateLimited429: number;
  engineRateLimited: number;
  retried: number;
  dynamo: Record<string, number>;
  dynamoWrites: number;
  /** Size of the checkpoint item after the run (every checkpoint write rewrites it whole). */
  checkpointBytes: number | null;
  batches: number;
  checkpoints: number;
  problems: Record<string, number>;
  ok: boolean;
  failures: string[];
}

interface DataSet {
  calls: number;
  target: DbTarget;
  startFrom: number;
}

/** Databases of N finished, eligible calls (all ended a minute ago or earlier), made once per N. */
export class DataSets {
  constructor(private readonly ctx: BenchContext) {}

  private readonly made = new Map<string, Promise<DataSet>>();

  /** `variant` > 0: another set of as many calls, a day earlier per variant (no uniqueid in common). */
  get(calls: number, variant = 0): Promise<DataSet> {
    const key = `${calls}:${variant}`;
    let set = this.made.get(key);
    if (!set) {
      set = this.make(calls, variant);
      this.made.set(key, set);
    }
    return set;
  }

  private async make(calls: number, variant: number): Promise<DataSet> {
    const db = await benchDatabase(this.ctx, `bench_calls_${calls}_${randomBytes(3).toString('hex')}`);
    const now = (await dbNow(db.pool)) - variant * 86_400;
    const span = Math.max(1800, Math.ceil(calls / 10));
    const rows = generateCalls({
      count: calls,
      fromEpoch: now - 60 - span,
      toEpoch: now - 60,
      seed: calls,
      tiesPerSecond: 10,
    });
    for (let i = 0; i < rows.length; i += 10_000) await bulkInsert(db.pool, rows.slice(i, i + 10_000));
    // Before every call's start by more than LOOKBACK_SECONDS: a cold checkpoint there misses none.
    return { calls, target: db.target, startFrom: now - 60 - span - 1200 };
  }
}

function check(f: DrainFigures, expected: number): DrainFigures {
  const failures: string[] = [];
  if (f.outcome !== 'completed') failures.push(`outcome ${f.outcome}`);
  if (f.stored !== expected) failures.push(`API stored ${f.stored} of ${expected} calls`);
  if (f.duplicates !== 0) failures.push(`${f.duplicates} calls posted twice`);
  if (f.delivered !== expected) failures.push(`engine counted ${f.delivered} delivered`);
  return { ...f, ok: failures.length === 0, failures };
}

export async function drain(
  ctx: BenchContext,
  sets: DataSets,
  options: {
    label: string;
    calls: number;
    concurrency: number;
    apiLatencyMs: number;
    logLevel?: 'INFO' | 'WARN';
    rateLimit?: RateLimit;
    /** The child's node binary (default BENCH_NODE, else this one). */
    node?: string;
    /** NODE_OPTIONS of the child (default none). */
    nodeOptions?: string;
  },
): Promise<DrainFigures> {
  const set = await sets.get(options.calls);
  ctx.api.reset();
  ctx.api.setLatency(options.apiLatencyMs);
  if (options.rateLimit) ctx.api.setRateLimit(options.rateLimit);
  const logLevel = options.logLevel ?? 'INFO';
  const syncId = `drain-${randomBytes(4).toString('hex')}`;
  progress(
    `${options.label}: ${fmt(options.calls)} calls, CONCURRENCY ${options.concurrency}, API ${options.apiLatencyMs} ms${options.rateLimit ? `, limit ${options.rateLimit.perSecond} per ${(options.rateLimit.windowMs ?? 1000) / 1000} s` : ''}, log ${logLevel}`,
  );
  const run: SyncRunFigures & { log: ChildLog } = await runChild(
    {
      mode: 'sync',
      db: set.target,
      apiUrl: ctx.api.url,
      apiKey: ctx.apiKey,
      dynamoEndpoint: ctx.dynamo.endpoint,
      table: ctx.table,
      owner: `bench-${process.pid}`,
      settings: {
        SYNC_ID: syncId,
        START_FROM: String(set.startFrom),
        CONCURRENCY: String(options.concurrency),
      },
    },
    {
      POWERTOOLS_LOG_LEVEL: logLevel,
      NODE_OPTIONS: options.nodeOptions ?? '',
    },
    options.node,
  );
  const calls = ctx.api.calls;
  const first = calls[0]?.at;
  const last = calls[calls.length - 1]?.at;
  const cpuMs = (run.cpuUserUs + run.cpuSystemUs) / 1000;
  const figures = check(
    {
      label: options.label,
      calls: options.calls,
      concurrency: options.concurrency,
      apiLatencyMs: options.apiLatencyMs,
      logLevel,
      delivered: run.summary.delivered,
      stored: ctx.api.stored.size,
      duplicates: ctx.api.duplicates(),
      outcome: run.summary.outcome,
      wallSeconds: run.wallMs / 1000,
      callsPerSecond: run.summary.delivered / (run.wallMs / 1000),
      steadyCallsPerSecond:
        first !== undefined && last !== undefined && last > first
          ? ((calls.length - 1) * 1000) / (last - first)
          : null,
      cpuMs,
      cpuMsPerCall: run.summary.delivered > 0 ? cpuMs / run.summary.delivered : 0,
      processCpuMs: run.processCpuUs / 1000,
      maxRssMb: run.maxRssKb / 1024,
      rssBeforeMb: run.rssBeforeMb,
      heapUsedMb: run.heapUsedMb,
      logLines: run.log.stdoutLines,
      logBytes: run.log.stdoutBytes,
      apiRequests: ctx.api.requestCount,
      rateLimited429: ctx.api.rateLimitedCount,
      engineRateLimited: run.summary.rateLimited,
      retried: run.summary.retried,
      dynamo: run.dynamo,
      dynamoWrites: dynamoWrites(run.dynamo),
      checkpointBytes: await checkpointItemBytes(ctx, syncId),
      batches: run.summary.batches,
      checkpoints: run.summary.checkpoints,
      problems: run.log.problems,
      ok: true,
      failures: [],
    },
    options.calls,
  );
  progress(
    `  ${fmt(figures.callsPerSecond, 1)} calls/s in ${figures.wallSeconds.toFixed(1)} s, ${fmt(figures.cpuMsPerCall, 3)} CPU ms/call, peak RSS ${fmt(figures.maxRssMb)} MB${figures.ok ? '' : `; FAILED: ${figures.failures.join('; ')}`}`,
  );
  ctx.api.reset();
  return figures;
}

export interface BareFigures {
  requests: number;
  ok: number;
  concurrency: number;
  apiLatencyMs: number;
  wallSeconds: number;
  cpuMs: number;
  cpuMsPerRequest: number;
  maxRssMb: number;
}

/** The reference: a bare node:http keep-alive client making the same POSTs. */
export async function bareClient(ctx: BenchContext, node?: string): Promise<BareFigures> {
  ctx.api.reset();
  ctx.api.setLatency(CPU_LATENCY_MS);
  progress(`B: bare node:http client, ${fmt(CPU_CALLS)} POSTs at concurrency ${CPU_CONCURRENCY}`);
  const run: BareRunFigures = await runChild(
    {
      mode: 'bare',
      apiUrl: ctx.api.url,
      apiKey: ctx.apiKey,
      requests: CPU_CALLS,
      concurrency: CPU_CONCURRENCY,
    },
    {},
    node,
  );
  ctx.api.reset();
  const cpuMs = (run.cpuUserUs + run.cpuSystemUs) / 1000;
  return {
    requests: run.requests,
    ok: run.ok,
    concurrency: CPU_CONCURRENCY,
    apiLatencyMs: CPU_LATENCY_MS,
    wallSeconds: run.wallMs / 1000,
    cpuMs,
    cpuMsPerRequest: cpuMs / run.requests,
    maxRssMb: run.maxRssKb / 1024,
  };
}

/** Calls for about STEADY_SECONDS at the limit CONCURRENCY / latency. */
export function throughputCalls(concurrency: number, latencyMs: number): number {
  return Math.ceil(((concurrency * 1000) / latencyMs) * STEADY_SECONDS);
}

export interface PairFigures {
  label: string;
  callsEach: number;
  wallSeconds: number;
  stored: number;
  duplicates: number;
  apiRequests: number;
  rateLimited429: number;
  outcomes: string[];
  ok: boolean;
  failures: string[];
}

/** Two syncs (their own databases and checkpoints) draining at once through one rate-limited API: one IP. */
export async function drainPair(
  ctx: BenchContext,
  sets: DataSets,
  options: {
    label: string;
    callsEach: number;
    concurrency: number;
    apiLatencyMs: number;
    rateLimit: RateLimit;
  },
): Promise<PairFigures> {
  const pair = [await sets.get(options.callsEach, 1), await sets.get(options.callsEach, 2)];
  ctx.api.reset();
  ctx.api.setLatency(options.apiLatencyMs);
  ctx.api.setRateLimit(options.rateLimit);
  progress(
    `${options.label}: 2 syncs x ${fmt(options.callsEach)} calls, CONCURRENCY ${options.concurrency}, limit ${options.rateLimit.perSecond} per ${(options.rateLimit.windowMs ?? 1000) / 1000} s`,
  );
  const started = performance.now();
  const runs = await Promise.all(
    pair.map((set) =>
      runChild(
        {
          mode: 'sync',
          db: set.target,
          apiUrl: ctx.api.url,
          apiKey: ctx.apiKey,
          dynamoEndpoint: ctx.dynamo.endpoint,
          table: ctx.table,
          owner: `bench-${process.pid}`,
          settings: {
            SYNC_ID: `pair-${randomBytes(4).toString('hex')}`,
            START_FROM: String(set.startFrom),
            CONCURRENCY: String(options.concurrency),
          },
        },
        { POWERTOOLS_LOG_LEVEL: 'WARN' },
      ),
    ),
  );
  const wallSeconds = (performance.now() - started) / 1000;
  const expected = options.callsEach * 2;
  const failures: string[] = [];
  const outcomes = runs.map((r) => r.summary.outcome);
  if (outcomes.some((o) => o !== 'completed')) failures.push(`outcomes ${outcomes.join(', ')}`);
  if (ctx.api.stored.size !== expected)
    failures.push(`API stored ${ctx.api.stored.size} of ${expected} calls`);
  if (ctx.api.duplicates() !== 0) failures.push(`${ctx.api.duplicates()} calls posted twice`);
  const figures: PairFigures = {
    label: options.label,
    callsEach: options.callsEach,
    wallSeconds,
    stored: ctx.api.stored.size,
    duplicates: ctx.api.duplicates(),
    apiRequests: ctx.api.requestCount,
    rateLimited429: ctx.api.rateLimitedCount,
    outcomes,
    ok: failures.length === 0,
    failures,
  };
  progress(
    `  ${fmt(figures.wallSeconds, 1)} s, ${fmt(figures.rateLimited429)} of ${fmt(figures.apiRequests)} answered 429${figures.ok ? '' : `; FAILED: ${failures.join('; ')}`}`,
  );
  ctx.api.reset();
  return figures;
}
