import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/** `bin/did-sync.js`: how the command starts, and the bundle it makes of itself and caches in node_modules. */
const ROOT = join(import.meta.dirname, '..', '..');
const CACHE = join(ROOT, 'node_modules', '.cache', 'did-sync');

/** Each start of a node process the command ran in, with its MALLOC_ARENA_MAX, seen by a preloaded script. */
function startsOf(env: Record<string, string>): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'did-sync-launcher-'));
  try {
    const preload = join(dir, 'starts.cjs');
    writeFileSync(
      preload,
      'process.stderr.write("start " + process.pid + " " + process.env.MALLOC_ARENA_MAX + "\\n");\n',
    );
    const { MALLOC_ARENA_MAX: _, ...inherited } = process.env;
    const result = spawnSync(process.execPath, [join(ROOT, 'bin', 'did-sync.js'), '--help'], {
      encoding: 'utf8',
      env: { ...inherited, DID_SYNC_QUIET_NODE_NOTE: '1', NODE_OPTIONS: `--require ${preload}`, ...env },
    });
    expect(result.status).toBe(0);
    return result.stderr.split('\n').filter((line) => line.startsWith('start '));
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
    'starts itself again, same process, with one malloc arena; an operator-set MALLOC_ARENA_MAX is kept',
    () => {
      const starts = startsOf({});
      expect(starts).toHaveLength(2);
      const [first, second] = starts.map((line) => line.split(' '));
      expect(second?.[1]).toBe(first?.[1]); // execve: the pid cron or systemd watches stays
      expect([first?.[2], second?.[2]]).toEqual(['undefined', '1']);
      expect(startsOf({ MALLOC_ARENA_MAX: '4' }).map((line) => line.split(' ')[2])).toEqual(['4']);
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
