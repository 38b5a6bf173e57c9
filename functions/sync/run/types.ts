import type { Cursor } from '../calls/cursor';
import type { ApiKeyProvider, DidOptimizerClient } from '../delivery/api-client';
import type { RetryPolicy } from '../delivery/retry-policy';
import type { SyncLog } from '../log';
import type { StopReason } from '../run-control';
import type { SyncSettings } from '../settings';
import type { VicidialLog } from '../source/vicidial-log';
import type { CheckpointStore } from '../state/checkpoint-store';

/** What a run is given, what it may be told, and what it reports: the engine's public types. */

export interface SyncDeps {
  readonly settings: SyncSettings;
  readonly calls: VicidialLog;
  readonly checkpoints: CheckpointStore;
  readonly api: DidOptimizerClient;
  readonly keys: ApiKeyProvider;
  readonly log: SyncLog;
  readonly retryPolicy?: RetryPolicy;
  readonly now?: () => number;
  readonly random?: () => number;
}

export interface RunOptions {
  /** Who runs (shown to a run that finds the lease held): unique per run (host, pid and a nonce, or a Lambda request id). */
  readonly owner: string;
  /** Read and map calls, but post nothing and write nothing. */
  readonly dryRun?: boolean;
  /** Stop reading after this many non-empty batches. */
  readonly maxBatches?: number;
  /**
   * Epoch ms by which every wait of the run has ended: requests, retry sleeps, Retry-After pauses and
   * queries are cut there. The last checkpoint and the lease release come after it, within
   * FINAL_WRITE_MS.
   */
  readonly deadline?: number;
}

/** What the last checkpoint write and the lease release may take after the deadline. */
export const FINAL_WRITE_MS = 1_500;

export type RunOutcome = 'completed' | 'partial' | 'skipped' | 'failed';

export interface RunSummary {
  readonly syncId: string;
  readonly outcome: RunOutcome;
  readonly reason?: StopReason | 'lease_held';
  readonly detail?: string;
  readonly dryRun: boolean;
  readonly delivered: number;
  readonly retried: number;
  /** Attempts made after one that may have been stored (the API may hold that call twice). */
  readonly ambiguous: number;
  /** 429 answers waited out. */
  readonly rateLimited: number;
  readonly deadLettered: number;
  /** Calls now waiting for their final disposition. */
  readonly pending: number;
  readonly pendingResolved: number;
  /** Calls now parked after failing every attempt. */
  readonly parked: number;
  readonly parkedNew: number;
  /** Parked calls delivered by this run. */
  readonly recovered: number;
  /** Calls reconcile had queued as missing, delivered by this run. */
  readonly repaired: number;
  /** Calls the ledger (or another path of this run) held as resolved: skipped, not posted again. */
  readonly skippedAhead: number;
  /** Calls posted again on the operator's explicit word (`reset --resend`). */
  readonly resent: number;
  /**
   * Calls this run delivered whose ledger entries could not be written: the next run posts them
   * again. Zero unless DynamoDB refused every attempt to record them.
   */
  readonly unrecorded: number;
  readonly batches: number;
  readonly callsRead: number;
  readonly checkpoints: number;
  /** Requests allowed in flight at the end (lower than CONCURRENCY after 429s). */
  readonly concurrency: number;
  readonly cursor: Cursor | null;
  /** Database clock minus the cursor; negative when the cursor is ahead of the clock. */
  readonly lagSeconds: number | null;
  readonly durationMs: number;
  readonly lease?: { owner: string; expiresAt: string } | null;
}

/** The path a call took to its post. */
export type Source = 'scan' | 'pending' | 'parked' | 'repair';
