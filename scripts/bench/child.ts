import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { MALLOC_SETTINGS } from '../../lib/malloc-settings.js';
import { NOT_BUNDLED } from '../../lib/sync-function';
import { onCleanup, progress } from './common';
import type { BareRunFigures, RunnerJob, SyncRunFigures } from './runner';

/** Starts scripts/bench/runner.ts in a child process and collects its figures and its log. */

const RUNNER = join(import.meta.dirname, 'runner.ts');
/** BENCH_NODE: another node binary for the child runs (e.g. Node 24, Lambda's runtime). */
export const CHILD_NODE = process.env.BENCH_NODE?.trim() || process.execPath;
/**
 * The child runs a bundle of runner.ts built as the Lambda's is (esbuild, CommonJS, minified, the same
 * externals): the code a function runs, without tsx's compiler in the process. BENCH_CHILD=tsx runs
 * the TypeScript through tsx instead.
 */
const CHILD_MODE = process.env.BENCH_CHILD?.trim() === 'tsx' ? 'tsx' : 'bundle';

let bundled: Promise<{ path: string; dir: string }> | undefined;

function runnerBundle(): Promise<{ path: string; dir: string }> {
  bundled ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'did-sync-bench-runner-'));
    onCleanup('runner bundle', async () => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'runner.cjs');
    progress('bundling the child runner (esbuild, as the Lambda bundle)');
    await build({
      entryPoints: [RUNNER],
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      minify: process.env.BENCH_PROFILE_NAMES !== '1',
      external: [...NOT_BUNDLED],
      outfile: path,
      logLevel: 'silent',
    });
    return { path, dir };
  })();
  return bundled;
}

export const childMode = () => CHILD_MODE;

export interface ChildLog {
  /** Lines and bytes the child printed on stdout (the engine's INFO lines). */
  stdoutLines: number;
  stdoutBytes: number;
  /** warn / error events on stderr, by event name (Powertools prints those to stderr). */
  problems: Record<string, number>;
  stderrTail: string;
}

type JobWithoutResult<J> = J extends unknown ? Omit<J, 'resultPath'> : never;

export async function runChild(
  job: JobWithoutResult<Extract<RunnerJob, { mode: 'sync' }>>,
  env?: Record<string, string>,
  node?: string,
): Promise<SyncRunFigures & { log: ChildLog }>;
export async function runChild(
  job: JobWithoutResult<Extract<RunnerJob, { mode: 'bare' }>>,
  env?: Record<string, string>,
  node?: string,
): Promise<BareRunFigures & { log: ChildLog }>;
export async function runChild(
  job: JobWithoutResult<RunnerJob>,
  env: Record<string, string> = {},
  node: string = CHILD_NODE,
): Promise<(SyncRunFigures | BareRunFigures) & { log: ChildLog }> {
  const dir = mkdtempSync(join(tmpdir(), 'did-sync-bench-run-'));
  const resultPath = join(dir, 'result.json');
  const stdoutPath = join(dir, 'stdout.log');
  const stderrPath = join(dir, 'stderr.log');
  const stdout = openSync(stdoutPath, 'w');
  const stderr = openSync(stderrPath, 'w');
  try {
    // BENCH_CHILD_ARGS: node options for the child runs, e.g. `--cpu-prof --cpu-prof-dir=DIR` to profile them.
    const extra = (process.env.BENCH_CHILD_ARGS ?? '').split(' ').filter(Boolean);
    const args = [
      ...extra,
      ...(CHILD_MODE === 'tsx' ? ['--import', 'tsx', RUNNER] : [(await runnerBundle()).path]),
    ];
    const child = spawn(node, args, {
      // stdout to a file, as a Lambda's goes to its log pipe: written, never read by the child.
      stdio: ['ignore', stdout, stderr],
      env: {
        // glibc's malloc as the did-sync command starts itself (Node 22.15 and later) and the stack
        // sets it for the function; values in the bench's own environment win, as they would there.
        ...MALLOC_SETTINGS,
        ...process.env,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        POWERTOOLS_SERVICE_NAME: 'did-sync',
        POWERTOOLS_METRICS_DISABLED: 'true',
        ...env,
        BENCH_RUNNER_JOB: JSON.stringify({ ...job, resultPath }),
      },
    });
    const done = onCleanup(`child run ${child.pid}`, async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (c) => resolve(c));
    });
    done();
    const errText = readFileSync(stderrPath, 'utf8');
    if (code !== 0) throw new Error(`child run exited with ${code}: ${errText.slice(-2000)}`);
    const figures = JSON.parse(readFileSync(resultPath, 'utf8')) as SyncRunFigures | BareRunFigures;
    return { ...figures, log: readLog(stdoutPath, errText) };
  } finally {
    closeSync(stdout);
    closeSync(stderr);
    rmSync(dir, { recursive: true, force: true });
  }
}

function readLog(stdoutPath: string, errText: string): ChildLog {
  const bytes = statSync(stdoutPath).size;
  let lines = 0;
  if (bytes > 0) {
    const text = readFileSync(stdoutPath);
    for (let i = text.indexOf(10); i !== -1; i = text.indexOf(10, i + 1)) lines++;
  }
  const problems: Record<string, number> = {};
  for (const line of errText.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { event?: string; level?: string };
      const name = entry.event ?? entry.level ?? 'unknown';
      problems[name] = (problems[name] ?? 0) + 1;
    } catch {
      // not a log line
    }
  }
  return { stdoutLines: lines, stdoutBytes: bytes, problems, stderrTail: errText.slice(-600) };
}
