import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/** What `bin/did-sync.js` runs: the bundle it makes of the command and caches in node_modules. */
const ROOT = join(import.meta.dirname, '..', '..');
const CACHE = join(ROOT, 'node_modules', '.cache', 'did-sync');

describe('the did-sync command bundle', () => {
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
