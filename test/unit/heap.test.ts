import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { YOUNG_GENERATION_BYTES } from '../../functions/cli/heap';

/**
 * The heap hold changes V8's settings for the whole process, so each case runs in a node of its own:
 * it allocates the way a drain does (most objects die young, a share lives on across scavenges) and
 * reports how large the young generation grew.
 */
const HEAP = join(import.meta.dirname, '..', '..', 'functions', 'cli', 'heap.ts');

function youngGenerationAfterDrain(nodeOptions: string[], hold: boolean): { bytes: number; skipped: string } {
  const script = `
    const { getHeapSpaceStatistics } = await import('node:v8');
    const { holdHeapNearDrainSize } = await import(${JSON.stringify(HEAP)});
    const hold = ${hold} ? holdHeapNearDrainSize() : { skipped: 'not called' };
    const kept = [];
    // A turn of the event loop per call: GC entries reach the hold between turns, as in a run.
    for (let i = 0; i < 4_000_000; i++) {
      const call = { uniqueid: 'u' + i, fields: [i, i + 1] };
      if (i % 4 === 0) kept.push(call);
      if (kept.length > 100_000) kept.splice(0, 50_000);
      if (i % 500 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
    process.stdout.write(JSON.stringify({ bytes: young, skipped: hold.skipped ?? '' }));
  `;
  const output = execFileSync(
    process.execPath,
    [...nodeOptions, '--import', 'tsx', '--input-type=module', '-e', script],
    {
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '' },
    },
  );
  return JSON.parse(output) as { bytes: number; skipped: string };
}

describe('holdHeapNearDrainSize', () => {
  it('stops the young generation at its mark, where V8 alone doubles it past', () => {
    const free = youngGenerationAfterDrain([], false);
    const held = youngGenerationAfterDrain([], true);
    expect(free.bytes).toBeGreaterThan(YOUNG_GENERATION_BYTES);
    expect(held.skipped).toBe('');
    expect(held.bytes).toBe(YOUNG_GENERATION_BYTES);
  });

  it("leaves a heap the operator sized on node's command line alone", () => {
    const sized = youngGenerationAfterDrain(['--max-semi-space-size=1'], true);
    expect(sized.skipped).toBe('node started with --max-semi-space-size=1');
    expect(sized.bytes).toBeLessThan(YOUNG_GENERATION_BYTES);
  });
});
