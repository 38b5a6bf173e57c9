/**
 * One measured run in a process of its own, started by the benchmark (scripts/bench/child.ts): its CPU
 * time and peak RSS are the sync's alone, not the API stand-in's or dynalite's, which stay
 * in the parent.
 *
 * - `sync`: the real engine as the `did-sync run` command wires it (createSync + runSync, the
 *   Powertools logger printing to this process's stdout, level from POWERTOOLS_LOG_LEVEL), with every
 *   query of the VICIdial connection timed and every DynamoDB command counted;
 * - `bare`: the reference, a plain node:http keep-alive client posting the same kind of payloads to the
 *   same stand-in at the same concurrency, nothing else.
 *
 * Reads its job as JSON from BENCH_RUNNER_JOB and writes its figures as JSON to job.resultPath.
 */
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { holdHeapNearDrainSize } from '../../functions/cli/heap';
import { staticApiKey } from '../../functions/sync/delivery/api-client';
import { PowertoolsSyncLog } from '../../functions/sync/log';
import { type RunSummary, runSync } from '../../functions/sync/run/engine';
import { parseConnectionSettings, parseSyncSettings } from '../../functions/sync/settings';
import { staticCredentials } from '../../functions/sync/source/db-connection';
import type { QueryOptions } from '../../functions/sync/source/vicidial-log';
import { CheckpointStore } from '../../functions/sync/state/checkpoint-store';
import { createDynamoClient, createSync } from '../../functions/sync/wiring';

export interface DbTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  charset: string;
}

export type RunnerJob =
  | {
      mode: 'sync';
      resultPath: string;
      /** Sync settings as environment-style pairs (SYNC_ID, CONCURRENCY, START_FROM...). */
      settings: Record<string, string>;
      db: DbTarget;
      apiUrl: string;
      apiKey: string;
      dynamoEndpoint: string;
      table: string;
      owner: string;
    }
  | {
      mode: 'bare';
      resultPath: string;
      apiUrl: string;
      apiKey: string;
      requests: number;
      concurrency: number;
    };

export interface QueryStats {
  count: number;
  ms: number;
  rows: number;
}

export interface SyncRunFigures {
  mode: 'sync';
  summary: RunSummary;
  wallMs: number;
  /** CPU of this process during runSync (user + system), microseconds. */
  cpuUserUs: number;
  cpuSystemUs: number;
  /** Whole process, start-up (tsx, module loading) included. */
  processCpuUs: number;
  maxRssKb: number;
  /** RSS with everything loaded and wired, before runSync. */
  rssBeforeMb: number;
  heapUsedMb: number;
  /** Queries of the VICIdial connection as the engine awaited them, by kind. */
  queries: Record<string, QueryStats>;
  /** DynamoDB commands sent, by command name (retries of one command count once). */
  dynamo: Record<string, number>;
}

export interface BareRunFigures {
  mode: 'bare';
  requests: number;
  ok: number;
  wallMs: number;
  cpuUserUs: number;
  cpuSystemUs: number;
  processCpuUs: number;
  maxRssKb: number;
}

function kindOf(sql: string): string {
  if (sql.includes('FORCE INDEX (call_date)') && sql.includes('ORDER BY call_date')) return 'scan';
  if (sql.includes('WHERE uniqueid IN')) return 'byUniqueid';
  if (sql.startsWith('SELECT UNIX_TIMESTAMP() AS now')) return 'now';
  if (sql.includes('TIMESTAMPDIFF')) return 'offsetChanges';
  return 'other';
}

async function runEngine(job: Extract<RunnerJob, { mode: 'sync' }>): Promise<SyncRunFigures> {
  // As `did-sync run` holds its heap. F' passes Lambda's heap options in NODE_OPTIONS, which this leaves
  // alone, as in the function (the handler never calls it).
  holdHeapNearDrainSize();
  const dynamo = createDynamoClient({ table: job.table, region: 'us-east-1', endpoint: job.dynamoEndpoint });
  const dynamoCounts: Record<string, number> = {};
  dynamo.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? 'unknown';
      dynamoCounts[name] = (dynamoCounts[name] ?? 0) + 1;
      return next(args);
    },
    { step: 'initialize', name: 'benchCommandCounter' },
  );
  const store = new CheckpointStore(dynamo, job.table);
  const sync = createSync({
    settings: parseSyncSettings(job.settings),
    api: { url: job.apiUrl, allowInsecure: false },
    db: staticCredentials(job.db),
    dbConnection: parseConnectionSettings({}),
    keys: staticApiKey(job.apiKey),
    checkpoints: store,
    // As `did-sync run`: one JSON line per event on stdout, level from POWERTOOLS_LOG_LEVEL.
    log: new PowertoolsSyncLog(),
  });
  // Time every query where the engine awaits it: the VicidialLog holds this very object.
  const queries: Record<string, QueryStats> = {};
  const connection = sync.connection;
  const query = connection.query.bind(connection);
  connection.query = async <T>(sql: string, values: readonly unknown[], options?: QueryOptions) => {
    const started = performance.now();
    const rows = await query<T>(sql, values, options);
    const kind = kindOf(sql);
    const stats = queries[kind] ?? { count: 0, ms: 0, rows: 0 };
    queries[kind] = stats;
    stats.count++;
    stats.ms += performance.now() - started;
    stats.rows += rows.length;
    return rows;
  };

  const rssBeforeMb = process.memoryUsage().rss / 1024 / 1024;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const summary = await runSync(sync, { owner: job.owner });
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  await sync.close();
  dynamo.destroy();
  const all = process.cpuUsage();
  return {
    mode: 'sync',
    summary,
    wallMs,
    cpuUserUs: cpu.user,
    cpuSystemUs: cpu.system,
    processCpuUs: all.user + all.system,
    maxRssKb: process.resourceUsage().maxRSS,
    rssBeforeMb,
    heapUsedMb: process.memoryUsage().heapUsed / 1024 / 1024,
    queries,
    dynamo: dynamoCounts,
  };
}

/** A payload shaped like the engine's (the same fields and sizes), different per request. */
function payload(i: number): Record<string, unknown> {
  const end = 1_780_000_000 + Math.floor(i / 30);
  return {
    uniqueid: `${end - 200}.${100_000 + i}`,
    leadId: String(300_000 + i),
    listId: '1003',
    campaignId: 'SALESA',
    phoneNumber: String(3_125_550_000 + (i % 10_000)),
    phoneCode: '1',
    disposition: 'NI',
    duration: 200 + (i % 600),
    agentId: `agent${String(1 + (i % 200)).padStart(3, '0')}`,
    userGroup: 'AGENTS',
    termReason: 'CALLER',
    comments: 'AUTO',
    altDial: 'MAIN',
    calledCount: 1 + (i % 8),
    callDate: '2026-05-28 14:03:20',
    startEpoch: end - 200,
    endEpoch: end,
    timestamp: end,
  };
}

async function runBare(job: Extract<RunnerJob, { mode: 'bare' }>): Promise<BareRunFigures> {
  const url = new URL(`${job.apiUrl}/api/v1/call-results`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: job.concurrency });
  const postOne = (i: number) =>
    new Promise<boolean>((resolve, reject) => {
      const body = JSON.stringify(payload(i));
      const req = http.request(url, {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'x-api-key': job.apiKey,
          'idempotency-key': String(i),
          'user-agent': 'bench-bare-client',
        },
      });
      req.once('error', reject);
      req.once('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('end', () => {
          const answer = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { success?: boolean };
          resolve(res.statusCode === 200 && answer.success === true);
        });
      });
      req.end(body);
    });
  let next = 0;
  let ok = 0;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: job.concurrency }, async () => {
      while (next < job.requests) {
        const i = next++;
        if (await postOne(i)) ok++;
      }
    }),
  );
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  agent.destroy();
  const all = process.cpuUsage();
  return {
    mode: 'bare',
    requests: job.requests,
    ok,
    wallMs,
    cpuUserUs: cpu.user,
    cpuSystemUs: cpu.system,
    processCpuUs: all.user + all.system,
    maxRssKb: process.resourceUsage().maxRSS,
  };
}

async function main() {
  const job = JSON.parse(process.env.BENCH_RUNNER_JOB ?? 'null') as RunnerJob | null;
  if (!job) throw new Error('BENCH_RUNNER_JOB is not set: this script is started by npm run bench');
  const figures = job.mode === 'sync' ? await runEngine(job) : await runBare(job);
  writeFileSync(job.resultPath, JSON.stringify(figures));
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`runner failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
