import { performance } from 'node:perf_hooks';

/** Output, progress, settings and cleanup shared by the benchmark's sections. */

export function intEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  if (!/^\d+$/.test(raw)) throw new Error(`${name} must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new Error(`${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

/** Section letters to run, from BENCH_SECTIONS (e.g. "A,G"); default all. */
export function sectionsEnv(all: readonly string[]): Set<string> {
  const raw = process.env.BENCH_SECTIONS?.trim();
  if (!raw) return new Set(all);
  const picked = raw
    .toUpperCase()
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = picked.filter((s) => !all.includes(s));
  if (unknown.length > 0) throw new Error(`BENCH_SECTIONS: unknown section(s) ${unknown.join(', ')}`);
  return new Set(picked);
}

const benchStarted = performance.now();

export const elapsedSeconds = () => (performance.now() - benchStarted) / 1000;

export const out = (line = '') => process.stdout.write(`${line}\n`);

export const progress = (text: string) =>
  process.stderr.write(`[bench ${elapsedSeconds().toFixed(1).padStart(6)}s] ${text}\n`);

export function fmt(n: number | null | undefined, digits = 0): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A goal as met / NOT met, for the tables. */
export function goal(met: boolean | null): string {
  if (met === null) return '-';
  return met ? 'met' : 'NOT met';
}

/** A plain-text table; `align` has one letter per column, `l` or `r`. */
export function printTable(title: string, head: string[], rows: string[][], align: string): void {
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

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

// ---------------------------------------------------------------------------------------------------
// Cleanup: everything started is stopped again at the end, on an error and on Ctrl-C.

const cleanups: { name: string; fn: () => Promise<unknown> }[] = [];
let cleaning: Promise<void> | undefined;
let interrupted = false;

export const wasInterrupted = () => interrupted;

export function onCleanup(name: string, fn: () => Promise<unknown>): () => void {
  const entry = { name, fn };
  cleanups.push(entry);
  // Done early: drop it from the list.
  return () => {
    const i = cleanups.indexOf(entry);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

export function cleanup(): Promise<void> {
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

export function handleSignals(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (interrupted) process.exit(130);
      interrupted = true;
      progress(`${signal}: stopping the child runs, MariaDB, dynalite and the API stand-in (again to force)`);
      void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  }
}

export const mb = (bytes: number) => bytes / 1024 / 1024;

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
