/**
 * Why a run stops before it has caught up, shared by the engine's loop, its workers and their waits,
 * and the run's deadline: every wait of a run (a request, a retry sleep, a Retry-After pause, a query)
 * ends by it.
 */
export type StopReason =
  | 'max_batches'
  | 'time_budget'
  | 'rate_limited'
  | 'api_unavailable'
  | 'api_misconfigured'
  | 'api_auth'
  | 'parked_full'
  | 'lease_lost'
  | 'checkpoint_error'
  | 'database_error'
  | 'time_zone_mismatch'
  | 'dead_letter_error'
  | 'pending_full';

/**
 * Stops that are the API's fault: it is down, refuses the key, or answers in a way no retry fixes.
 * The run does not blame the calls it was sending for them (they are not parked), and operators are
 * told to look at the API.
 */
export const API_FAULT_STOPS = [
  'api_unavailable',
  'api_misconfigured',
  'api_auth',
] as const satisfies readonly StopReason[];
export type ApiFaultStop = (typeof API_FAULT_STOPS)[number];

export function isApiFault(reason: string | undefined): reason is ApiFaultStop {
  return (API_FAULT_STOPS as readonly (string | undefined)[]).includes(reason);
}

/** Stops that end a run as `partial`: the next run simply goes on. The rest end it as `failed`. */
export const PLANNED_STOPS: ReadonlySet<StopReason> = new Set(['max_batches', 'time_budget', 'rate_limited']);

/** No request starts with less time than this left: it could not get an answer in time. */
export const MIN_REQUEST_MS = 1_000;

import { setMaxListeners } from 'node:events';

export class RunControl {
  private readonly abort = new AbortController();
  private stopReason: StopReason | undefined;
  private stopDetail: string | undefined;
  /** Hot waits (a worker's next row, a free slot) listen here: cheaper than the signal's listeners. */
  private readonly onStops = new Set<() => void>();

  constructor(
    /** Epoch ms by which every wait of the run has ended (undefined: no limit). */
    readonly deadline: number | undefined,
    private readonly now: () => number = Date.now,
  ) {
    // Every worker, the reader and their waits listen for the stop: more than Node's default of 10.
    setMaxListeners(0, this.abort.signal);
  }

  /** The first reason wins: a failure seen after a planned stop still ends the run as it began to. */
  stop(reason: StopReason, detail?: string): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.stopDetail = detail;
    this.abort.abort();
    const hooks = [...this.onStops];
    this.onStops.clear();
    for (const hook of hooks) hook();
  }

  /**
   * Calls `hook` once when the run stops (at once if it has). The returned function unregisters it.
   * For waits taken once per call: an AbortSignal listener costs an EventTarget round each time.
   */
  onStop(hook: () => void): () => void {
    if (this.stopped) {
      hook();
      return () => {};
    }
    this.onStops.add(hook);
    return () => this.onStops.delete(hook);
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

  /** Aborted when the run stops: cancels sleeps and pauses. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Milliseconds until the deadline (Infinity without one). */
  timeLeft(): number {
    return this.deadline === undefined ? Number.POSITIVE_INFINITY : this.deadline - this.now();
  }

  /** `ms`, cut at the deadline. */
  bound(ms: number): number {
    return Math.max(0, Math.min(ms, this.timeLeft()));
  }

  /**
   * Whether new work may start: not stopped, and at least `minMs` before the deadline (otherwise the
   * run stops with `time_budget`).
   */
  mayStart(minMs = MIN_REQUEST_MS): boolean {
    if (this.stopped) return false;
    if (this.timeLeft() < minMs) this.stop('time_budget');
    return !this.stopped;
  }
}

/** A wait that ends early when `signal` aborts. */
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
