import type { BundleFigures } from './bundle';
import type { CenterFigures } from './center';
import type { CliDrainFigures } from './cli-run';
import type { DayFigures } from './day';
import type { BareFigures, DrainFigures, PairFigures } from './delivery';

/** What the benchmark measured, section by section: shared by the runner and the report. */

export interface CpuFigures {
  /** The child node's version. */
  node: string;
  logsOn: DrainFigures;
  logsOff: DrainFigures;
  bare: BareFigures;
  repeats: { logsOn: number[]; logsOff: number[]; bare: number[] };
  allOk: boolean;
}

export type RateFigures = DrainFigures & {
  perSecond: number;
  windowSeconds: number;
  idealSeconds: number;
  share429: number;
};

export interface BenchResults {
  center: CenterFigures | null;
  /** The median run of each kind (by CPU ms per call), and every repeat's CPU ms per call: child node first. */
  cpu: CpuFigures | null;
  /** The same on the other nodes (Node 24). */
  cpuOther: CpuFigures[];
  throughput: (DrainFigures & { limit: number; fraction: number; steadyFraction: number | null })[];
  rateLimited: RateFigures[];
  /** Two syncs behind one IP sharing the 1 s window. */
  ratePair: PairFigures | null;
  rss: DrainFigures[];
  /** Peak RSS of `did-sync run` itself (the bin entry, as cron starts it), on each node. */
  rssCli: CliDrainFigures[];
  /** Peak RSS as Lambda's Node 24 at 512 MB runs the function, without and with the template's option. */
  rssLambda: (DrainFigures & { nodeOptions: string })[];
  bundle: BundleFigures | null;
  /** S: a simulated center day. */
  day: DayFigures | null;
}
