import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/**
 * How the `did-sync` process holds its heap near what a drain needs.
 *
 * V8 sizes its heap for throughput, not for a process that streams calls through: on a busy drain it
 * doubles the young generation to its maximum (16 MB semi-spaces on Node 20; Node 24 sizes them by the
 * machine's memory, 64 MB on a 24 GB box) and lets old space fill to about four times what is live
 * before it marks. The rows a run reads ahead outlive two scavenges and die in old space, so both grow
 * by the tens of megabytes that made a 20,000-call drain peak at 135 MB (Node 20) and 166 MB (Node 24).
 *
 * Two settings V8 reads each time it resizes (so they apply to a running process, unlike
 * `--max-semi-space-size`, which only node's command line can set):
 * - the young generation stops growing once it is YOUNG_GENERATION_BYTES (what start-up usually leaves
 *   it at), by setting its growth factor to 1 then;
 * - old space may grow by OLD_SPACE_GROWTH_PERCENT over what the last mark found live.
 *
 * What it buys is measured by `npm run bench` (section F, figures in the README), CPU per call within the
 * rounds' spread. A process started with its own heap options
 * (`node --max-semi-space-size=...`, or in NODE_OPTIONS) keeps them: an operator's choice wins.
 */

/** The young generation's size (both semi-spaces) at which it stops growing. */
export const YOUNG_GENERATION_BYTES = 8 * 1024 * 1024;
/** Old space may grow this much over the live size the last mark-compact found, before the next. */
export const OLD_SPACE_GROWTH_PERCENT = 25;

/** The V8 options that mean the operator sized the heap: then none of ours are set. */
const OPERATOR_OPTIONS =
  /--(max-semi-space-size|min-semi-space-size|semi-space-growth-factor|heap-growing-percent)\b/;

/** `skipped`: why nothing was set (the operator's own heap options), or undefined when the settings apply. */
export function holdHeapNearDrainSize(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string | undefined = process.env.NODE_OPTIONS,
): { skipped: string | undefined } {
  const given = [...execArgv, nodeOptions ?? ''].find((option) => OPERATOR_OPTIONS.test(option));
  if (given !== undefined) return { skipped: `node started with ${given.trim()}` };
  setFlagsFromString(`--heap-growing-percent=${OLD_SPACE_GROWTH_PERCENT}`);
  if (youngGenerationBytes() >= YOUNG_GENERATION_BYTES) {
    stopYoungGrowth();
    return { skipped: undefined };
  }
  // Smaller than the mark: let it grow there, then hold it (a GC entry arrives after each collection).
  const observer = new PerformanceObserver(() => {
    if (youngGenerationBytes() < YOUNG_GENERATION_BYTES) return;
    stopYoungGrowth();
    observer.disconnect();
  });
  observer.observe({ entryTypes: ['gc'] });
  return { skipped: undefined };
}

function stopYoungGrowth(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}

function youngGenerationBytes(): number {
  return getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0;
}
