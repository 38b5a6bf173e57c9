/**
 * `npm run bench`: figures, not assertions. With no AWS account it starts a throwaway MariaDB, dynalite
 * (DynamoDB) and the DID Optimizer stand-in, runs the real engine in child processes against them
 * (scripts/bench/runner.ts), and prints a table per section to stdout, progress to stderr, and at the
 * end one line `{"bench": {...}}` with every figure and the machine.
 *
 *  A. reads at a big center: rows the server read per delivered call, and database time per minute of
 *     calls, for a caught-up run and a 1-hour backlog (scripts/bench/center.ts);
 *  B. CPU per delivered call, with per-call logs on and off, next to a bare node:http client;
 *  C. throughput as a fraction of the limit CONCURRENCY / API latency;
 *  D. a rate-limited API (express-rate-limit's fixed windows of 100/1 s and 500/5 s, its X-RateLimit-*
 *     fields, 429 + Retry-After), and two syncs sharing the 1 s window: wall time against the ideal,
 *     share of 429s, nothing lost or repeated;
 *  E. DynamoDB writes per 500 delivered calls;
 *  F. peak RSS of a run draining 20,000 and 100,000 calls as the CLI runs, and 20,000 on Node 24 as
 *     Lambda runs it at 512 MB, without and with NODE_OPTIONS=--max-semi-space-size=2;
 *  G. the Lambda bundle: size by package, cold require() time on the child node and Node 24;
 *  H. what these mean for a Lambda of 256 / 512 / 1024 MB (derived, no new measurement);
 *  S. a simulated center day: the center model writes rows as VICIdial does while the engine runs once a
 *     simulated minute at the defaults, with the hourly reconcile: calls posted by the runs and by repair,
 *     posted twice, the follow set's peak, the checkpoint item's size (scripts/bench/day.ts).
 *
 * Environment knobs (defaults in brackets): BENCH_SECTIONS [A,B,C,D,E,F,G,S: E and H are derived, from
 * A, B, F], BENCH_DAY_CALLS_PER_MINUTE [60], BENCH_DAY_HOURS [8], BENCH_CENTER_CALLS_PER_MINUTE [2000], BENCH_CENTER_HOURS [8], BENCH_CENTER_API_LATENCY_MS [1],
 * BENCH_CPU_CALLS [20000], BENCH_CPU_API_LATENCY_MS [50], BENCH_CPU_CONCURRENCY [32], BENCH_CPU_REPEATS [3],
 * BENCH_STEADY_SECONDS [12], BENCH_RATE_CALLS [3000], BENCH_RATE_PER_SECOND [100],
 * BENCH_RATE_API_LATENCY_MS [50], BENCH_RSS_CALLS_SMALL [20000], BENCH_RSS_CALLS [100000],
 * BENCH_RSS_API_LATENCY_MS [1], BENCH_BUNDLE_LOADS [5], BENCH_NODE [this node: the binary for the child
 * runs and the bundle loads], BENCH_CHILD_ARGS [node options of the child runs, e.g. --cpu-prof], BENCH_NODE_24 [npx -y node@24: B, F and G run on it too; off: skip], BENCH_CHILD [bundle; tsx: run the child's TypeScript through tsx],
 * TEST_MYSQL_URL (an existing server instead of a throwaway one).
 */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import mysql from 'mysql2/promise';
import { parseSyncSettings } from '../functions/sync/settings';
import { CheckpointStore } from '../functions/sync/state/checkpoint-store';
import { createDynamoClient } from '../functions/sync/wiring';
import { startFakeDidApi } from '../test/support/fake-did-api';
import { startLocalDynamoDb } from '../test/support/local-dynamodb';
import { startLocalMariaDb } from '../test/support/local-mariadb';
import { benchBundle } from './bench/bundle';
import { benchCenter } from './bench/center';
import { CHILD_NODE } from './bench/child';
import { cliDrain } from './bench/cli-run';
import {
  cleanup,
  elapsedSeconds,
  fmt,
  handleSignals,
  onCleanup,
  out,
  progress,
  sectionsEnv,
  wasInterrupted,
} from './bench/common';
import { type BenchContext, createEngineUser } from './bench/context';
import { benchDay } from './bench/day';
import {
  type BareFigures,
  bareClient,
  CPU_CALLS,
  CPU_CONCURRENCY,
  CPU_LATENCY_MS,
  CPU_REPEATS,
  DataSets,
  type DrainFigures,
  drain,
  drainPair,
  RATE_CALLS,
  RATE_LATENCY_MS,
  RATE_PER_SECOND,
  RATE_WINDOWS_SECONDS,
  RSS_CALLS,
  RSS_LATENCY_MS,
  THROUGHPUT_CONCURRENCIES,
  THROUGHPUT_LATENCIES,
  throughputCalls,
} from './bench/delivery';
import { benchNodes } from './bench/nodes';
import { lambdaSizing, printResults } from './bench/report';
import type { BenchResults, CpuFigures } from './bench/results';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const SECTIONS = sectionsEnv(['A', 'B', 'C', 'D', 'E', 'F', 'G', 'S']);
const API_KEY = 'bench-key';
const CHECKPOINT_TABLE = 'did-sync-bench';

/** The element whose key is the median (the lower middle one for an even count). */
function medianBy<T>(items: T[], key: (item: T) => number): T {
  const sorted = [...items].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor((sorted.length - 1) / 2)] as T;
}

function report(results: BenchResults, loadAtStart: number[], mariaVersion: string): void {
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? '?',
    node: process.version,
    childNode: execFileSync(CHILD_NODE, ['-v'], { encoding: 'utf8' }).trim(),
    mariadb: mariaVersion,
    loadAverageStart: loadAtStart,
    loadAverageEnd: loadavg(),
  };
  printResults(results, machine);
  const totalSeconds = elapsedSeconds();
  const defaults = parseSyncSettings({});
  out();
  out(`total bench time ${totalSeconds.toFixed(1)} s`);
  out(
    JSON.stringify({
      bench: {
        machine,
        engineDefaults: { ...defaults, transientStatuses: [...defaults.transientStatuses] },
        ...results,
        lambda: results.cpu ? lambdaSizing(results) : null,
        totalSeconds,
      },
    }),
  );
}

async function main() {
  handleSignals();
  const loadAtStart = loadavg();
  progress(`sections ${[...SECTIONS].join(', ')}; child runs on ${CHILD_NODE}`);
  const results: BenchResults = {
    center: null,
    cpu: null,
    cpuOther: [],
    throughput: [],
    rateLimited: [],
    ratePair: null,
    rss: [],
    rssCli: [],
    rssLambda: [],
    bundle: null,
    day: null,
  };

  // G needs no server: first, on a quiet machine.
  if (SECTIONS.has('G')) results.bundle = await benchBundle();
  if ([...SECTIONS].every((s) => s === 'G')) {
    report(results, loadAtStart, 'not started');
    return;
  }

  progress(
    process.env.TEST_MYSQL_URL ? 'using the server of TEST_MYSQL_URL' : 'starting a throwaway MariaDB',
  );
  const maria = await startLocalMariaDb();
  onCleanup('MariaDB', () => maria.stop());
  const dynamo = await startLocalDynamoDb();
  onCleanup('dynalite', () => dynamo.close());
  const api = await startFakeDidApi({ validKeys: [API_KEY] });
  onCleanup('API stand-in', () => api.close());
  const root = await mysql.createConnection({ uri: maria.url });
  onCleanup('root connection', () => root.end());
  const [[version]] = (await root.query('SELECT VERSION() AS v')) as unknown as [{ v: string }[]];
  // Per-user statistics (BUSY_TIME): the sync connects as a user of its own.
  await root.query('SET GLOBAL userstat = 1');
  await createEngineUser(root);
  const dynamoClient = createDynamoClient({
    table: CHECKPOINT_TABLE,
    region: 'us-east-1',
    endpoint: dynamo.endpoint,
  });
  onCleanup('DynamoDB client', async () => dynamoClient.destroy());
  await new CheckpointStore(dynamoClient, CHECKPOINT_TABLE).ensureTable();
  const ctx: BenchContext = {
    dynamoClient,
    maria,
    mariaVersion: version?.v ?? '?',
    dynamo,
    api,
    apiKey: API_KEY,
    table: CHECKPOINT_TABLE,
    root,
  };

  if (SECTIONS.has('S')) results.day = await benchDay(ctx);
  if (SECTIONS.has('A') || SECTIONS.has('E')) results.center = await benchCenter(ctx);

  const sets = new DataSets(ctx);
  if (SECTIONS.has('B') || SECTIONS.has('E')) {
    const nodes = SECTIONS.has('B') ? benchNodes() : benchNodes().slice(0, 1);
    for (const node of nodes) {
      // Interleaved repeats: a neighbour's load on the shared cores then touches all three alike.
      const on: DrainFigures[] = [];
      const off: DrainFigures[] = [];
      const bare: BareFigures[] = [];
      for (let i = 1; i <= CPU_REPEATS; i++) {
        const round = CPU_REPEATS > 1 ? ` (${i} of ${CPU_REPEATS})` : '';
        const drainCpu = (logLevel: 'INFO' | 'WARN') =>
          drain(ctx, sets, {
            label: `B ${node.version}: logs ${logLevel === 'INFO' ? 'on' : 'off'}${round}`,
            calls: CPU_CALLS,
            concurrency: CPU_CONCURRENCY,
            apiLatencyMs: CPU_LATENCY_MS,
            logLevel,
            node: node.path,
          });
        on.push(await drainCpu('INFO'));
        off.push(await drainCpu('WARN'));
        bare.push(await bareClient(ctx, node.path));
      }
      const figures: CpuFigures = {
        node: node.version,
        logsOn: medianBy(on, (f) => f.cpuMsPerCall),
        logsOff: medianBy(off, (f) => f.cpuMsPerCall),
        bare: medianBy(bare, (f) => f.cpuMsPerRequest),
        repeats: {
          logsOn: on.map((f) => f.cpuMsPerCall),
          logsOff: off.map((f) => f.cpuMsPerCall),
          bare: bare.map((f) => f.cpuMsPerRequest),
        },
        allOk: [...on, ...off].every((f) => f.ok),
      };
      if (results.cpu) results.cpuOther.push(figures);
      else results.cpu = figures;
    }
  }

  if (SECTIONS.has('C')) {
    for (const latency of THROUGHPUT_LATENCIES) {
      for (const concurrency of THROUGHPUT_CONCURRENCIES) {
        const limit = (concurrency * 1000) / latency;
        const f = await drain(ctx, sets, {
          label: `C: ${latency} ms, CONCURRENCY ${concurrency}`,
          calls: throughputCalls(concurrency, latency),
          concurrency,
          apiLatencyMs: latency,
        });
        results.throughput.push({
          ...f,
          limit,
          fraction: f.callsPerSecond / limit,
          steadyFraction: f.steadyCallsPerSecond === null ? null : f.steadyCallsPerSecond / limit,
        });
      }
    }
  }

  if (SECTIONS.has('D')) {
    for (const windowSeconds of RATE_WINDOWS_SECONDS) {
      // express-rate-limit as the API configures it: its default fields, Retry-After from the window.
      const perWindow = RATE_PER_SECOND * windowSeconds;
      const f = await drain(ctx, sets, {
        label: `D: rate-limited API, ${fmt(perWindow)} per ${windowSeconds} s`,
        calls: RATE_CALLS,
        concurrency: parseSyncSettings({}).concurrency,
        apiLatencyMs: RATE_LATENCY_MS,
        rateLimit: { perSecond: perWindow, windowMs: windowSeconds * 1000 },
      });
      results.rateLimited.push({
        ...f,
        perSecond: RATE_PER_SECOND,
        windowSeconds,
        idealSeconds: RATE_CALLS / RATE_PER_SECOND,
        share429: f.apiRequests > 0 ? f.rateLimited429 / f.apiRequests : 0,
      });
    }
    results.ratePair = await drainPair(ctx, sets, {
      label: 'D: two syncs, one window',
      callsEach: Math.ceil(RATE_CALLS / 2),
      concurrency: parseSyncSettings({}).concurrency,
      apiLatencyMs: RATE_LATENCY_MS,
      rateLimit: { perSecond: RATE_PER_SECOND, windowMs: 1000 },
    });
  }

  if (SECTIONS.has('F') || SECTIONS.has('E')) {
    for (const calls of RSS_CALLS) {
      results.rss.push(
        await drain(ctx, sets, {
          label: `F: ${fmt(calls)} calls`,
          calls,
          concurrency: parseSyncSettings({}).concurrency,
          apiLatencyMs: RSS_LATENCY_MS,
        }),
      );
    }
    if (SECTIONS.has('F')) {
      for (const node of benchNodes()) {
        results.rssCli.push(
          await cliDrain(ctx, sets, {
            calls: RSS_CALLS[0] ?? 20_000,
            node: node.path,
            nodeVersion: node.version,
          }),
        );
      }
    }
    const node24 = benchNodes().find((n) => n.version.startsWith('v24'));
    if (SECTIONS.has('F') && node24) {
      // What Lambda's Node runtime passes at 512 MB (new space a tenth of the memory, half of it a
      // semi-space; the rest old space), without and with the template's smaller young generation.
      for (const nodeOptions of [
        '--max-old-space-size=461 --max-semi-space-size=25',
        '--max-old-space-size=461 --max-semi-space-size=2',
      ]) {
        const f = await drain(ctx, sets, {
          label: `F: ${fmt(RSS_CALLS[0] ?? 0)} calls, ${node24.version}, NODE_OPTIONS ${nodeOptions}`,
          calls: RSS_CALLS[0] ?? 20_000,
          concurrency: parseSyncSettings({}).concurrency,
          apiLatencyMs: RSS_LATENCY_MS,
          node: node24.path,
          nodeOptions,
        });
        results.rssLambda.push({ ...f, nodeOptions });
      }
    }
  }

  report(results, loadAtStart, ctx.mariaVersion);
  if (results.cpu && !results.cpu.allOk) process.exitCode = 1;
  const failed = [
    results.cpu?.logsOn,
    results.cpu?.logsOff,
    ...results.cpuOther.flatMap((c) => [c.logsOn, c.logsOff]),
    ...results.throughput,
    ...results.rateLimited,
    ...results.rss,
    ...results.rssLambda,
  ]
    .filter((f): f is DrainFigures => Boolean(f))
    .filter((f) => !f.ok);
  if (failed.length > 0 || (results.ratePair && !results.ratePair.ok)) process.exitCode = 1;
}

main()
  .catch((error: unknown) => {
    if (wasInterrupted()) return;
    progress(`bench failed: ${(error as Error).stack ?? String(error)}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    if (wasInterrupted()) return;
    progress('stopping MariaDB, dynalite and the API stand-in');
    await cleanup();
  });
