import { parseSyncSettings } from '../../functions/sync/settings';
import type { CenterCase } from './center';
import { fmt, goal, out, printTable } from './common';
import { dayTable } from './day';
import type { DrainFigures } from './delivery';
import type { BenchResults, CpuFigures } from './results';

/** The tables of `npm run bench`, and section H derived from the measured figures. */

export const GOALS = {
  rowsPerCall: 10,
  dbSecondsPerMinute: 1,
  cpuMsPerCall: 0.2,
  throughputFraction: 0.9,
  rateLimitedSeconds: 33.5,
  share429: 0.01,
  peakRssMb: 110,
  /** Cold require() of the bundle on Node 24. */
  coldLoadMs: 100,
  /** Write units per checkpoint write at the big center. */
  wcuPerCheckpoint: 10,
};

/** Lambda gives a function one vCPU at 1,769 MB, in proportion below. */
const MB_PER_VCPU = 1769;
const LAMBDA_MEMORY_MB = [256, 512, 1024, 1769];
const LAMBDA_LATENCY_MS = 150;

export interface Machine {
  cpus: number;
  cpuModel: string;
  node: string;
  childNode: string | null;
  mariadb: string;
  loadAverageStart: number[];
  loadAverageEnd: number[];
}

export interface LambdaRow {
  memoryMb: number;
  vcpu: number;
  /** By CONCURRENCY (16, 32), at API LAMBDA_LATENCY_MS. */
  at: Record<
    string,
    {
      /** CPU ms per delivered call measured in C at this latency and concurrency (else B's). */
      cpuMsPerCall: number | null;
      /** vCPU-seconds per second over CPU ms per call. */
      cpuBoundCallsPerSecond: number;
      /** min(CPU bound, CONCURRENCY / latency x the fraction of it measured in C). */
      sustained: number;
    }
  >;
  /** Hours to drain a 1-hour backlog of section A's center while it keeps calling, at CONCURRENCY 16. */
  backlogHoursAt16: number | null;
  peakRssMb: number | null;
  fits: boolean | null;
}

export function lambdaSizing(results: BenchResults): {
  centerCallsPerSecond: number | null;
  rows: LambdaRow[];
} {
  const backlog = results.center?.cases.find((c) => c.name === 'backlog 1 h');
  // Calls a second the center produces for the sync: delivered per minute of calls, at the backlog's span.
  const centerCallsPerSecond =
    backlog && backlog.minutesOfCalls > 0 ? backlog.delivered / (backlog.minutesOfCalls * 60) : null;
  const peakRss = Math.max(0, ...results.rss.map((r) => r.maxRssMb)) || null;
  const rows = LAMBDA_MEMORY_MB.map((memoryMb) => {
    const vcpu = memoryMb / MB_PER_VCPU;
    const at: LambdaRow['at'] = {};
    for (const concurrency of [16, 32]) {
      const measured = results.throughput.find(
        (t) => t.concurrency === concurrency && t.apiLatencyMs === LAMBDA_LATENCY_MS,
      );
      const cpuMs = measured?.cpuMsPerCall ?? results.cpu?.logsOn.cpuMsPerCall ?? null;
      const cpuBound = cpuMs ? (vcpu * 1000) / cpuMs : Number.POSITIVE_INFINITY;
      const limit = (concurrency * 1000) / LAMBDA_LATENCY_MS;
      at[String(concurrency)] = {
        cpuMsPerCall: cpuMs,
        cpuBoundCallsPerSecond: cpuBound,
        sustained: Math.min(cpuBound, limit * Math.min(1, measured?.fraction ?? 1)),
      };
    }
    const at16 = at['16']?.sustained ?? 0;
    const backlogHoursAt16 =
      centerCallsPerSecond && at16 > centerCallsPerSecond
        ? centerCallsPerSecond / (at16 - centerCallsPerSecond)
        : null;
    return {
      memoryMb,
      vcpu,
      at,
      backlogHoursAt16,
      peakRssMb: peakRss,
      fits: peakRss === null ? null : peakRss < memoryMb * 0.8,
    };
  });
  return { centerCallsPerSecond, rows };
}

function check(f: DrainFigures): string {
  return f.ok ? `ok (${fmt(f.stored)} stored once)` : `FAILED: ${f.failures.join('; ')}`;
}

function problems(p: Record<string, number>): string {
  const entries = Object.entries(p);
  return entries.length === 0 ? 'none' : entries.map(([k, v]) => `${k} x${fmt(v)}`).join(', ');
}

function centerTable(results: BenchResults): void {
  const c = results.center;
  if (!c) return;
  const s = parseSyncSettings({});
  printTable(
    `A. Reads at a big center: ${fmt(c.rows)} rows in vicidial_log (${c.hours} h at ${fmt(c.callsPerMinute)} calls/min as VICIdial writes them, loaded in ${fmt(c.loadSeconds, 1)} s); real engine, defaults (BATCH_SIZE ${s.batchSize}, CONCURRENCY ${s.concurrency}, LOOKBACK_SECONDS ${s.lookbackSeconds}, SETTLE_SECONDS ${s.settleSeconds}), API ${c.apiLatencyMs} ms`,
    [
      'case',
      'cursor behind',
      'min of calls',
      'delivered',
      'rows read',
      'rows/call',
      `goal <= ${GOALS.rowsPerCall}`,
      'queries',
      'DB ms',
      'DB s/min of calls',
      `goal < ${GOALS.dbSecondsPerMinute} s`,
      'server busy ms',
      'run s',
      'CPU ms',
      'missed in span',
    ],
    c.cases.map((r) => [
      r.name,
      `${fmt(r.lagBeforeSeconds)} s`,
      fmt(r.minutesOfCalls, 1),
      fmt(r.delivered),
      fmt(r.reads.total),
      fmt(r.rowsPerCall, 2),
      goal(r.rowsPerCall === null ? null : r.rowsPerCall <= GOALS.rowsPerCall),
      fmt(r.queryCount),
      fmt(r.dbMs),
      fmt(r.dbSecondsPerMinute, 3),
      goal(r.dbSecondsPerMinute === null ? null : r.dbSecondsPerMinute < GOALS.dbSecondsPerMinute),
      fmt(r.serverBusyMs),
      fmt(r.runSeconds, 1),
      fmt(r.cpuMs),
      `${fmt(r.missedInSpan)} of ${fmt(r.expectedInSpan)}`,
    ]),
    'lrrrrrlrrrlrrrr',
  );
  const kinds = (r: CenterCase) =>
    Object.entries(r.queries)
      .map(([k, q]) => `${k} ${fmt(q.count)} (${fmt(q.ms)} ms, ${fmt(q.rows)} rows)`)
      .join(', ');
  for (const r of c.cases) {
    out(
      `   ${r.name}: Handler_read key ${fmt(r.reads.key)}, next ${fmt(r.reads.next)}, rnd ${fmt(r.reads.rnd)}, rnd_next ${fmt(r.reads.rndNext)}, other ${fmt(r.reads.other)}; queries: ${kinds(r)}`,
    );
    out(
      `   ${r.name}: ${fmt(r.deliveredFromBefore)} delivered calls ended before the span (pending dispositions); ${fmt(r.pendingAfter)} pending after; duplicates ${fmt(r.apiDuplicates)}; outcome ${r.outcome}; warnings: ${problems(r.problems)}`,
    );
    if (r.missedInSpan > 0) {
      out(
        `   ${r.name}: missed ${fmt(r.missedInSpan)}, of which ${fmt(r.missedStartedBeforeScan)} started before the scan window (cursor - LOOKBACK_SECONDS): calls that had to be followed by uniqueid`,
      );
    }
  }
  const statuses = Object.entries(c.statusMix)
    .map(([k, v]) => `${k} ${fmt((v / c.rows) * 100, 1)}%`)
    .join(', ');
  out(`   rows by status: ${statuses}`);
  out(
    `   before the caught-up run VICIdial wrote ${fmt(c.advanced.inserted)} new rows and updated ${fmt(c.advanced.updated)} (hang-ups, dispositions) in its 2 minutes; each case starts after a warm-up run of the same sync`,
  );
  out(
    `   Perl script's query (end_epoch > checkpoint ORDER BY end_epoch LIMIT 500, no index on end_epoch), one batch from the backlog's checkpoint: ${fmt(c.perl.reads.total)} rows read for ${fmt(c.perl.rowsReturned)} returned (${fmt(c.perl.ms)} ms; plan ${c.perl.plan})`,
  );
  out(
    "   rows read: Handler_read% deltas of SHOW GLOBAL STATUS around the run (the bench's own statements subtracted); DB ms: every query the engine awaited, summed; server busy: the sync user's BUSY_TIME (USER_STATISTICS)",
  );
  out(
    '   missed in span: calls with a final status and a length ending between the cursor before and after the run that the API did not get (not followed: PENDING_MAX, or lost)',
  );
}

function cpuTable(results: BenchResults): void {
  for (const c of [results.cpu, ...results.cpuOther]) if (c) cpuTableOf(c);
}

function cpuTableOf(c: CpuFigures): void {
  const rows = [c.logsOn, c.logsOff].map((f) => [
    `engine, ${f.logLevel === 'INFO' ? 'logs on (INFO)' : 'logs off (WARN)'}`,
    fmt(f.callsPerSecond, 1),
    fmt(f.wallSeconds, 1),
    fmt(f.cpuMs),
    fmt(f.cpuMsPerCall, 3),
    f.logLevel === 'INFO' ? goal(f.cpuMsPerCall <= GOALS.cpuMsPerCall) : '-',
    fmt(c.bare.cpuMsPerRequest, 3),
    fmt(f.logLines / Math.max(1, f.delivered), 2),
    fmt(f.logBytes / Math.max(1, f.delivered)),
    fmt(f.maxRssMb),
    check(f),
  ]);
  rows.push([
    'bare node:http keep-alive client (the floor)',
    fmt(c.bare.requests / c.bare.wallSeconds, 1),
    fmt(c.bare.wallSeconds, 1),
    fmt(c.bare.cpuMs),
    fmt(c.bare.cpuMsPerRequest, 3),
    '-',
    '-',
    '-',
    '-',
    fmt(c.bare.maxRssMb),
    `${fmt(c.bare.ok)} of ${fmt(c.bare.requests)} ok`,
  ]);
  printTable(
    `B. CPU per delivered call, node ${c.node}: ${fmt(c.logsOn.calls)} calls from MariaDB, API ${c.logsOn.apiLatencyMs} ms, CONCURRENCY ${c.logsOn.concurrency}, each run in a child process (CPU of runSync only: user + system)`,
    [
      'run',
      'calls/s',
      'wall s',
      'CPU ms',
      'CPU ms/call',
      `goal <= ${GOALS.cpuMsPerCall}`,
      'floor',
      'log lines/call',
      'log bytes/call',
      'peak RSS MB',
      'check',
    ],
    rows,
    'lrrrrlrrrrl',
  );
  const range = (v: number[]) =>
    v.length > 1 ? `${fmt(Math.min(...v), 3)}-${fmt(Math.max(...v), 3)}` : fmt(v[0], 3);
  out(
    `   ${c.repeats.logsOn.length} interleaved rounds, median shown; CPU ms/call ranges: logs on ${range(c.repeats.logsOn)}, logs off ${range(c.repeats.logsOff)}, bare ${range(c.repeats.bare)}`,
  );
  const logger = c.logsOn.cpuMsPerCall - c.logsOff.cpuMsPerCall;
  out(
    `   logger: ${fmt(logger, 3)} ms/call, ${fmt((logger / c.logsOn.cpuMsPerCall) * 100, 0)}% of the engine's CPU with logs on; engine with logs off is ${fmt(c.logsOff.cpuMsPerCall / c.bare.cpuMsPerRequest, 1)}x the bare client (the floor: the same POSTs, nothing else)`,
  );
}

function throughputTable(results: BenchResults): void {
  if (results.throughput.length === 0) return;
  printTable(
    'C. Throughput as a fraction of the limit CONCURRENCY / API latency (real engine in a child process, defaults otherwise)',
    [
      'API ms',
      'concurrency',
      'calls',
      'limit calls/s',
      'calls/s',
      'fraction',
      `goal >= ${GOALS.throughputFraction}`,
      'steady fraction',
      'wall s',
      'CPU ms/call',
      'check',
    ],
    results.throughput.map((t) => [
      fmt(t.apiLatencyMs),
      fmt(t.concurrency),
      fmt(t.calls),
      fmt(t.limit, 1),
      fmt(t.callsPerSecond, 1),
      fmt(t.fraction, 3),
      goal(t.fraction >= GOALS.throughputFraction),
      fmt(t.steadyFraction, 3),
      fmt(t.wallSeconds, 1),
      fmt(t.cpuMsPerCall, 3),
      check(t),
    ]),
    'rrrrrrlrrrl',
  );
  out(
    '   calls/s: delivered / the whole run (lease, checks, first read included); steady: first to last call the API stored',
  );
}

function rateTable(results: BenchResults): void {
  const first = results.rateLimited[0];
  if (!first) return;
  const rows = results.rateLimited.map((r) => [
    `${fmt(r.perSecond * r.windowSeconds)} per ${r.windowSeconds} s`,
    fmt(r.wallSeconds, 1),
    fmt(r.idealSeconds, 1),
    goal(r.wallSeconds <= GOALS.rateLimitedSeconds),
    fmt(r.idealSeconds / r.wallSeconds, 2),
    fmt(r.apiRequests),
    fmt(r.rateLimited429),
    fmt(r.share429 * 100, 2),
    goal(r.share429 <= GOALS.share429),
    fmt(r.engineRateLimited),
    fmt(r.stored),
    fmt(r.duplicates),
    r.outcome,
    check(r),
  ]);
  const p = results.ratePair;
  if (p) {
    const ideal = (p.callsEach * 2) / first.perSecond;
    const share = p.apiRequests > 0 ? p.rateLimited429 / p.apiRequests : 0;
    rows.push([
      `two syncs, ${fmt(first.perSecond)} per 1 s`,
      fmt(p.wallSeconds, 1),
      fmt(ideal, 1),
      goal(p.wallSeconds <= GOALS.rateLimitedSeconds),
      fmt(ideal / p.wallSeconds, 2),
      fmt(p.apiRequests),
      fmt(p.rateLimited429),
      fmt(share * 100, 2),
      goal(share <= GOALS.share429),
      '-',
      fmt(p.stored),
      fmt(p.duplicates),
      p.outcomes.join(', '),
      p.ok ? 'ok' : `FAILED: ${p.failures.join('; ')}`,
    ]);
  }
  printTable(
    `D. Rate-limited API (express-rate-limit 8 as the API uses it: fixed windows, X-RateLimit-* on every answer, 429 + Retry-After), ${fmt(first.calls)} calls, API ${first.apiLatencyMs} ms, defaults (CONCURRENCY ${first.concurrency})`,
    [
      'window',
      'wall s',
      'ideal s (floor)',
      `goal <= ${GOALS.rateLimitedSeconds} s`,
      'of the allowed rate',
      'requests',
      '429s',
      '% 429',
      `goal <= ${GOALS.share429 * 100}%`,
      '429s waited out',
      'stored',
      'duplicates',
      'outcome',
      'check',
    ],
    rows,
    'lrrlrrrrlrrrll',
  );
  out(
    '   wall s: the whole child run (start-up, lease, reads and checkpoints included); ideal: calls / rate',
  );
}

function dynamoTable(results: BenchResults): void {
  const rows: string[][] = [];
  const add = (
    name: string,
    delivered: number,
    counts: Record<string, number>,
    writes: number,
    bytes: number | null,
  ) => {
    rows.push([
      name,
      fmt(delivered),
      fmt(writes),
      delivered > 0 ? fmt((writes / delivered) * 500, 2) : '-',
      bytes === null ? '-' : fmt(bytes / 1024, 1),
      bytes === null ? '-' : fmt(Math.ceil(bytes / 1024) * writes),
      bytes === null ? '-' : fmt(Math.ceil(bytes / 1024)),
      Object.entries(counts)
        .map(([k, v]) => `${k.replace(/Command$/, '')} ${fmt(v)}`)
        .join(', '),
    ]);
  };
  for (const c of results.center?.cases ?? [])
    add(`A ${c.name}`, c.delivered, c.dynamo, c.dynamoWrites, c.checkpointBytes);
  if (results.cpu)
    add(
      'B drain, logs on',
      results.cpu.logsOn.delivered,
      results.cpu.logsOn.dynamo,
      results.cpu.logsOn.dynamoWrites,
      results.cpu.logsOn.checkpointBytes,
    );
  for (const f of results.rss)
    add(`F drain ${fmt(f.calls)}`, f.delivered, f.dynamo, f.dynamoWrites, f.checkpointBytes);
  if (rows.length === 0) return;
  printTable(
    'E. DynamoDB commands sent by a run (counted in the SDK client: a retried command counts once)',
    [
      'run',
      'delivered',
      'writes',
      'writes per 500 delivered',
      'item KB after',
      'WCU (writes x item KB)',
      `WCU per checkpoint (goal <= ${GOALS.wcuPerCheckpoint} at A; floor 1)`,
      'commands',
    ],
    rows,
    'lrrrrrrl',
  );
  out(
    '   writes: UpdateItem, PutItem, DeleteItem (lease acquire, checkpoints, lease release with the last checkpoint)',
  );
  out(
    '   item KB: the checkpoint item after the run, as DynamoDB sizes it; a write costs one WCU per started KB of the item.',
  );
  out(
    '   A write that changed the followed set also puts one delta item (~45 B per call followed or let go since the last write), and a snapshot when the deltas outweigh it.',
  );
}

function rssTable(results: BenchResults): void {
  if (results.rss.length === 0) return;
  printTable(
    'F. Peak RSS of the run (child process, process.resourceUsage().maxRSS), defaults, logs on',
    [
      'calls',
      'API ms',
      'wall s',
      'calls/s',
      'CPU ms/call',
      'RSS before run MB',
      'peak RSS MB',
      `goal <= ${GOALS.peakRssMb} MB`,
      'heap MB at end',
      'check',
    ],
    results.rss.map((f) => [
      fmt(f.calls),
      fmt(f.apiLatencyMs),
      fmt(f.wallSeconds, 1),
      fmt(f.callsPerSecond, 1),
      fmt(f.cpuMsPerCall, 3),
      fmt(f.rssBeforeMb),
      fmt(f.maxRssMb),
      goal(f.maxRssMb <= GOALS.peakRssMb),
      fmt(f.heapUsedMb),
      check(f),
    ]),
    'rrrrrrrlrl',
  );
  out('   floor: RSS before the run (node, the SDK, mysql2 and the engine loaded)');
  if (results.rssCli.length > 0) {
    printTable(
      "F, the command itself: `node bin/did-sync.js run` as cron starts it (settings from the environment, INFO logs on stderr), peak RSS from the kernel's high-water mark (VmHWM)",
      ['node', 'calls', 'wall s', 'peak RSS MB', `goal <= ${GOALS.peakRssMb} MB`, 'check'],
      results.rssCli.map((f) => [
        f.node,
        fmt(f.calls),
        fmt(f.wallSeconds, 1),
        fmt(f.peakRssMb),
        goal(f.peakRssMb === null ? null : f.peakRssMb <= GOALS.peakRssMb),
        f.ok
          ? `ok (${fmt(f.stored)} stored once)`
          : `FAILED: exit ${f.exitCode}, ${fmt(f.stored)} stored, ${f.duplicates} twice`,
      ]),
      'lrrrll',
    );
    out(
      '   wall time includes start-up (module loading); the bundle is made beforehand, as every start but the first after a change finds it',
    );
  }
  if (results.rssLambda.length === 0) return;
  printTable(
    "F'. Peak RSS as Lambda runs the function at 512 MB (Node 24; the runtime's own heap options and the template's MALLOC_* settings), without and with NODE_OPTIONS=--max-semi-space-size=2",
    [
      'NODE_OPTIONS',
      'calls',
      'peak RSS MB',
      `goal <= ${GOALS.peakRssMb} MB`,
      'RSS before run MB (floor)',
      'CPU ms/call',
      'check',
    ],
    results.rssLambda.map((f) => [
      f.nodeOptions,
      fmt(f.calls),
      fmt(f.maxRssMb),
      goal(f.maxRssMb <= GOALS.peakRssMb),
      fmt(f.rssBeforeMb),
      fmt(f.cpuMsPerCall, 3),
      check(f),
    ]),
    'lrrlrrl',
  );
}

function bundleTable(results: BenchResults): void {
  const b = results.bundle;
  if (!b) return;
  const kb = (n: number) => `${fmt(n / 1000)} kB`;
  const top = b.byPackage.slice(0, 10);
  const rest = b.byPackage.slice(10).reduce((a, p) => a + p.bytes, 0);
  printTable(
    `G. Lambda bundle (esbuild as lib/sync-function.ts: bundle, node, node24, cjs, minify, ${b.externals.length} externals): ${kb(b.bytes)}, built in ${fmt(b.buildSeconds, 1)} s`,
    ['package', 'size', 'share'],
    [
      ...top.map((p) => [p.name, kb(p.bytes), `${fmt((p.bytes / b.bytes) * 100, 1)}%`]),
      [`${fmt(b.packages - top.length)} more packages`, kb(rest), `${fmt((rest / b.bytes) * 100, 1)}%`],
      ['the whole bundle', kb(b.bytes), '100%'],
    ],
    'lrr',
  );
  for (const l of b.loads) {
    out(
      `   cold load: require() of the bundle in a fresh node ${l.node}: best ${fmt(Math.min(...l.loadMs))} ms, median ${fmt(l.loadMsMedian)} ms (${l.loadMs.map((m) => fmt(m)).join(', ')} ms)${l.node.startsWith('v24') ? ` ${goal(Math.min(...l.loadMs) <= GOALS.coldLoadMs)} <= ${GOALS.coldLoadMs} ms` : ''}; floor (a bundle of the DynamoDB client and mysql2 alone): best ${fmt(Math.min(...l.floorMs))} ms`,
    );
  }
}

function lambdaTable(results: BenchResults): void {
  if (!results.cpu && results.throughput.length === 0) return;
  const { centerCallsPerSecond, rows } = lambdaSizing(results);
  const cell = (r: LambdaRow, c: string) => {
    const a = r.at[c];
    return a ? `${fmt(a.sustained)} (CPU-bound ${fmt(a.cpuBoundCallsPerSecond)})` : '-';
  };
  const cpu = (c: string) => fmt(rows[0]?.at[c]?.cpuMsPerCall, 3);
  printTable(
    `H. Derived for Lambda: calls/s a function sustains at API ${LAMBDA_LATENCY_MS} ms (1,769 MB = 1 vCPU; CPU ms/call measured in C at ${LAMBDA_LATENCY_MS} ms: ${cpu('16')} at CONCURRENCY 16, ${cpu('32')} at 32; C's fraction of the limit)`,
    [
      'memory MB',
      'vCPU',
      'CONCURRENCY 16',
      'CONCURRENCY 32',
      "hours to drain 1 h of A's center at 16",
      'peak RSS (F) < 80% of memory',
    ],
    rows.map((r) => [
      fmt(r.memoryMb),
      fmt(r.vcpu, 2),
      cell(r, '16'),
      cell(r, '32'),
      r.backlogHoursAt16 === null ? '-' : fmt(r.backlogHoursAt16, 2),
      r.fits === null ? '-' : `${r.fits ? 'yes' : 'NO'} (${fmt(r.peakRssMb)} MB)`,
    ]),
    'rrrrrl',
  );
  out(
    `   sustained = min(CPU-bound, CONCURRENCY / ${LAMBDA_LATENCY_MS} ms x C's fraction); A's center sends ${fmt(centerCallsPerSecond, 1)} eligible calls/s; a Lambda vCPU is not this machine's core: CPU-bound figures are estimates`,
  );
}

export function printResults(results: BenchResults, machine: Machine): void {
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  out('vicidial-did-sync benchmark');
  out(
    `machine: ${machine.cpus} CPUs (${machine.cpuModel}), node ${machine.node} (child runs ${machine.childNode ?? machine.node}), MariaDB ${machine.mariadb}, load average ${load(machine.loadAverageStart)} at start, ${load(machine.loadAverageEnd)} at end`,
  );
  centerTable(results);
  cpuTable(results);
  throughputTable(results);
  rateTable(results);
  dynamoTable(results);
  rssTable(results);
  bundleTable(results);
  lambdaTable(results);
  dayTable(results.day);
}
