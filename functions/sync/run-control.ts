/**
 * Why a run stops before it has caught up, shared by the engine's loop, its workers and their waits.
 * `time_budget` and `max_batches` are planned stops; the rest are failures.
 */
export type StopReason =
  | 'max_batches'
  | 'time_budget'
  | 'api_unavailable'
  | 'api_auth'
  | 'lease_lost'
  | 'checkpoint_error'
  | 'database_error'
  | 'dead_letter_error';

export const PLANNED_STOPS: ReadonlySet<StopReason> = new Set(['max_batches', 'time_budget']);

export class RunControl {
  private readonly abort = new AbortController();
  private stopReason: StopReason | undefined;
  private stopDetail: string | undefined;

  constructor(
    /** Epoch ms after which no new call is started (undefined: no limit). */
    readonly deadline: number | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /** The first reason wins: a failure seen after a planned stop still ends the run as it began to. */
  stop(reason: StopReason, detail?: string): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.stopDetail = detail;
    this.abort.abort();
  }

  get stopped(): boolean {
    return this.stopReason !== undefined;
  }

  get reason(): StopReason | undefined {
    return this.stopReason;
  }

  get detail(): string | undefined {
    return this.stopDetail;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Stops the run when its time budget is spent; true when it may go on. */
  checkTime(): boolean {
    if (this.deadline !== undefined && this.now() >= this.deadline) this.stop('time_budget');
    return !this.stopped;
  }
}

/** A wait that ends early when the run stops. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted || ms <= 0) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Runs `task` over `items` with at most `limit` in flight, in order of the items; stops starting new ones once `shouldStop()`. */
export async function forEachConcurrent<T>(
  items: readonly T[],
  limit: number,
  shouldStop: () => boolean,
  task: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length && !shouldStop()) {
      const index = next++;
      await task(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
