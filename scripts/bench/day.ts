import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { reconcile } from '../../functions/sync/admin/reconcile';
import { MemorySyncLog } from '../../functions/sync/log';
import { createDynamoClient } from '../../functions/sync/wiring';
import { simulateCenter } from '../../test/support/center-simulation';
import { startHarness } from '../../test/support/sync-harness';
import { fmt, printTable, progress } from './common';
import type { BenchContext } from './context';

/**
 * S. A simulated center day: the center model writes rows as VICIdial does while the real engine runs
 * once a simulated minute at the defaults, and reconcile repairs hourly as the stack schedules it.
 * What an operator wants to know of an ordinary day: how many calls the runs posted and how many only
 * the hourly repair did, posted twice, the follow set's peak and the checkpoint item's size.
 */
export interface DayFigures {
  readonly callsPerMinute: number;
  readonly hours: number;
  readonly eligible: number;
  readonly postedByRuns: number;
  readonly postedByRepair: number;
  readonly postedTwice: number;
  readonly reconcileMissing: number;
  readonly pendingPeak: number;
  readonly checkpointItemBytesPeak: number;
  readonly wallSeconds: number;
}

const CALLS_PER_MINUTE = Number(process.env.BENCH_DAY_CALLS_PER_MINUTE ?? 60);
const HOURS = Number(process.env.BENCH_DAY_HOURS ?? 8);
const T0 = 1_795_000_020;

export async function benchDay(ctx: BenchContext): Promise<DayFigures> {
  progress(`S: a simulated ${HOURS} h day at ${CALLS_PER_MINUTE} calls/min, one run a minute`);
  const started = Date.now();
  const h = await startHarness(ctx.maria.url, 'day');
  try {
    const syncId = 'day';
    const dynamo = createDynamoClient({ table: h.table, region: 'us-east-1', endpoint: h.dynamo.endpoint });
    let itemPeak = 0;
    const r = await simulateCenter(h, {
      syncId,
      center: {
        callsPerMinute: CALLS_PER_MINUTE,
        fromEpoch: T0 - 10 * 60,
        toEpoch: T0 + HOURS * 3600,
        seed: 29,
      },
      firstRunAt: T0,
      lastRunAt: T0 + HOURS * 3600 + 20 * 60,
      env: { START_FROM: String(T0 - 5 * 60) },
      beforeRun: async (at, run, sim) => {
        const item = await dynamo.send(
          new GetItemCommand({
            TableName: h.table,
            Key: { pk: { S: `sync#${syncId}` }, sk: { S: 'checkpoint' } },
          }),
        );
        itemPeak = Math.max(itemPeak, JSON.stringify(item.Item ?? {}).length);
        // The stack's hourly safety net: the last 6 hours up to the cursor, repairing.
        if (run > 0 && run % 60 === 0) {
          const state = await h.store.read(syncId);
          const since = Math.max(T0 - 5 * 60, (state?.cursor.endEpoch ?? at) - 6 * 3600);
          const report = await reconcile(
            { settings: sim.settings, calls: sim.calls, checkpoints: h.store, log: new MemorySyncLog() },
            { since, repair: true },
          );
          if (report.queued > 0) progress(`S: reconcile queued ${report.queued} call(s) for repair`);
        }
      },
    });
    const repaired = r.runs.reduce((n, run) => n + run.repaired, 0);
    return {
      callsPerMinute: CALLS_PER_MINUTE,
      hours: HOURS,
      eligible: r.eligible,
      postedByRuns: r.postedOnce + r.postedTwice - repaired,
      postedByRepair: repaired,
      postedTwice: r.postedTwice,
      reconcileMissing: r.reconcileMissing,
      pendingPeak: r.pendingPeak,
      checkpointItemBytesPeak: itemPeak,
      wallSeconds: (Date.now() - started) / 1000,
    };
  } finally {
    await h.close();
  }
}

export function dayTable(d: DayFigures | null): void {
  if (!d) return;
  const share = (100 * d.postedByRuns) / Math.max(1, d.eligible);
  printTable(
    `S. A simulated center day (${d.hours} h at ${d.callsPerMinute} calls/min as VICIdial writes them, one run a simulated minute, defaults, hourly reconcile with repair)`,
    ['figure', 'value', 'goal'],
    [
      ['eligible calls', fmt(d.eligible), ''],
      ['posted by the runs', `${fmt(d.postedByRuns)} (${fmt(share, 1)} %)`, 'all'],
      ['posted only by the hourly repair', fmt(d.postedByRepair), '0'],
      ['posted twice', fmt(d.postedTwice), '0'],
      ['reconcile missing at the end', fmt(d.reconcileMissing), '0'],
      ['followed calls, peak', fmt(d.pendingPeak), ''],
      ['checkpoint item, peak', `${fmt(d.checkpointItemBytesPeak / 1024, 1)} KB`, ''],
      ['wall time', `${fmt(d.wallSeconds, 0)} s`, ''],
    ],
    'lrl',
  );
}
