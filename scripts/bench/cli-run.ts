import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onCleanup, progress } from './common';
import type { BenchContext } from './context';
import type { DataSets } from './delivery';

/**
 * F, the command itself: `node bin/did-sync.js run` as an operator's cron line starts it (the bin entry,
 * its compiled bundle, settings from the environment, logs on stderr), draining a data set. Its peak RSS
 * is the kernel's high-water mark for the process (VmHWM in /proc/<pid>/status), read while it runs:
 * nothing in the command is instrumented.
 */

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'did-sync.js');

export interface CliDrainFigures {
  node: string;
  calls: number;
  stored: number;
  duplicates: number;
  exitCode: number | null;
  wallSeconds: number;
  /** Kernel high-water mark of the process's RSS, MB (null where /proc is missing). */
  peakRssMb: number | null;
  ok: boolean;
}

function highWaterKb(pid: number): number | null {
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null; // exited between two reads
  }
}

export async function cliDrain(
  ctx: BenchContext,
  sets: DataSets,
  options: { calls: number; node: string; nodeVersion: string },
): Promise<CliDrainFigures> {
  const set = await sets.get(options.calls);
  ctx.api.reset();
  ctx.api.setLatency(1);
  progress(`F: did-sync run (bin/did-sync.js) on ${options.nodeVersion}, ${options.calls} calls, API 1 ms`);
  // The first start after a change makes the command's bundle (esbuild in the process, on Node 20 for
  // the whole run); cron's every other start finds it made, which is what this row measures.
  execFileSync(options.node, [CLI, '--help'], {
    stdio: 'ignore',
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DID_SYNC_QUIET_NODE_NOTE: '1' },
  });
  // An empty working directory: the command reads a .env from where it starts.
  const cwd = mkdtempSync(join(tmpdir(), 'did-sync-bench-cli-'));
  const stderr = openSync(join(cwd, 'stderr.log'), 'w');
  const started = performance.now();
  try {
    const child = spawn(options.node, [CLI, 'run'], {
      cwd,
      stdio: ['ignore', 'ignore', stderr],
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DID_SYNC_QUIET_NODE_NOTE: '1',
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        POWERTOOLS_LOG_LEVEL: 'INFO',
        SYNC_ID: `cli-${randomBytes(4).toString('hex')}`,
        START_FROM: String(set.startFrom),
        VICIDIAL_DB_HOST: set.target.host,
        VICIDIAL_DB_PORT: String(set.target.port),
        VICIDIAL_DB_USER: set.target.user,
        VICIDIAL_DB_PASSWORD: set.target.password,
        VICIDIAL_DB_NAME: set.target.database,
        DID_OPTIMIZER_API_URL: ctx.api.url,
        ALLOW_INSECURE_API: 'true',
        API_KEY: ctx.apiKey,
        CHECKPOINT_TABLE: ctx.table,
        DYNAMODB_ENDPOINT: ctx.dynamo.endpoint,
      },
    });
    const done = onCleanup(`did-sync run ${child.pid}`, async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let peakKb: number | null = null;
    const poll = setInterval(() => {
      const kb = child.pid === undefined ? null : highWaterKb(child.pid);
      if (kb !== null) peakKb = Math.max(peakKb ?? 0, kb);
    }, 10);
    const exitCode = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => resolve(code));
    });
    clearInterval(poll);
    done();
    const wallSeconds = (performance.now() - started) / 1000;
    const stored = ctx.api.stored.size;
    const duplicates = ctx.api.duplicates();
    const ok = exitCode === 0 && stored === options.calls && duplicates === 0;
    if (!ok)
      progress(`  FAILED (exit ${exitCode}): ${readFileSync(join(cwd, 'stderr.log'), 'utf8').slice(-600)}`);
    ctx.api.reset();
    return {
      node: options.nodeVersion,
      calls: options.calls,
      stored,
      duplicates,
      exitCode,
      wallSeconds,
      peakRssMb: peakKb === null ? null : peakKb / 1024,
      ok,
    };
  } finally {
    closeSync(stderr);
    rmSync(cwd, { recursive: true, force: true });
  }
}
