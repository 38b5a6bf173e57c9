import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/** `bin/did-sync.js`: how the command starts, and the bundle it makes of itself and caches in node_modules. */
const ROOT = join(import.meta.dirname, '..', '..');
const CACHE = join(ROOT, 'node_modules', '.cache', 'did-sync');

/**
 * Each start of a node process the command ran in, seen by a preloaded script: its pid, its malloc
 * settings, and whether the launcher's note to itself is still in the environment when the bundle runs.
 */
function startsOf(env: Record<string, string>): { pid: string; malloc: string; noteLeft?: boolean }[] {
  const dir = mkdtempSync(join(tmpdir(), 'did-sync-launcher-'));
  try {
    const preload = join(dir, 'starts.cjs');
    writeFileSync(
      preload,
      [
        'const e = process.env;',
        'const start = { pid: String(process.pid), malloc: e.MALLOC_ARENA_MAX + "," + e.MALLOC_MMAP_THRESHOLD_ };',
        'process.stderr.write("start " + JSON.stringify(start) + "\\n");',
        // The bundle's first line of its own: the launcher has removed its note by then.
        'process.on("exit", () => process.stderr.write("left " + ("DID_SYNC_LAUNCHER_PREPARED" in e) + "\\n"));',
      ].join('\n'),
    );
    const { MALLOC_ARENA_MAX: _a, MALLOC_MMAP_THRESHOLD_: _m, ...inherited } = process.env;
    const result = spawnSync(process.execPath, [join(ROOT, 'bin', 'did-sync.js'), '--help'], {
      encoding: 'utf8',
      env: { ...inherited, DID_SYNC_QUIET_NODE_NOTE: '1', NODE_OPTIONS: `--require ${preload}`, ...env },
    });
    expect(result.status).toBe(0);
    const lines = result.stderr.split('\n');
    const starts = lines.filter((l) => l.startsWith('start ')).map((l) => JSON.parse(l.slice(6)));
    const left = lines.find((l) => l.startsWith('left '));
    return starts.map((start, i) =>
      i === starts.length - 1 ? { ...start, noteLeft: left === 'left true' } : start,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function glibc(): boolean {
  const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string } };
  return Boolean(report.header?.glibcVersionRuntime);
}

describe('the did-sync command', () => {
  it.runIf('execve' in process && glibc())(
    'starts itself again, same process, with its malloc settings; ones the operator set are kept',
    () => {
      const [first, second, ...more] = startsOf({});
      expect(more).toEqual([]);
      expect(second?.pid).toBe(first?.pid); // execve: the pid cron or systemd watches stays
      expect([first?.malloc, second?.malloc]).toEqual(['undefined,undefined', '1,16384']);
      expect(second?.noteLeft).toBe(false);
      expect(startsOf({ MALLOC_ARENA_MAX: '4', MALLOC_MMAP_THRESHOLD_: '65536' })).toEqual([
        expect.objectContaining({ malloc: '4,65536', noteLeft: false }),
      ]);
      const [, partly] = startsOf({ MALLOC_ARENA_MAX: '2' });
      expect(partly?.malloc).toBe('2,16384');
    },
  );

  it('is ASCII only, so V8 keeps its source one byte per character, and is remade when its recipe changes', () => {
    // Starting the command makes the bundle, or finds the current one.
    execFileSync(process.execPath, [join(ROOT, 'bin', 'did-sync.js'), '--help'], {
      env: { ...process.env, DID_SYNC_QUIET_NODE_NOTE: '1' },
    });
    const code = readFileSync(join(CACHE, 'did-sync.cjs'), 'latin1');
    expect(code.match(/[\u0080-\uffff]/g) ?? []).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(CACHE, 'did-sync.inputs.json'), 'utf8')) as {
      inputs: [string, number, number][];
    };
    const inputs = manifest.inputs.map(([path]) => path);
    expect(inputs).toEqual(
      expect.arrayContaining(['bin/did-sync.ts', 'bin/did-sync.js', 'lib/not-bundled.js']),
    );
  });
});
