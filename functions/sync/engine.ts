import type { ApiKeyProvider, DidOptimizerClient } from './api-client';
import { CallDelivery, type DeliveryResult } from './call-delivery';
import { type CheckpointStore, type Lease, LeaseLostError, type PendingCall } from './checkpoint-store';
import {
  type Cursor,
  compareCursor,
  cursorAfter,
  cursorAt,
  cursorOf,
  lagSeconds,
  planSlice,
  ResolvedPrefix,
  sameCursor,
} from './cursor';
import { describeError, type SyncLog } from './log';
import { type CallResultPayload, type CallRow, isTransient, payloadProblem, toPayload } from './payload';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry-policy';
import { forEachConcurrent, PLANNED_STOPS, RunControl, type StopReason } from './run-control';
import type { SyncSettings } from './settings';
import type { VicidialLog } from './vicidial-log';

/**
 * The sync engine: one run reads finished calls after the checkpoint in (end_epoch, uniqueid) order,
 * posts them concurrently, and moves the checkpoint over the calls that are resolved (delivered,
 * dead-lettered or parked as pending) under a fenced lease. The CLI and the Lambda handler are thin
 * adapters over `runSync`.
 */

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
  /** Who runs (shown to a run that finds the lease held): a host and pid, or a Lambda request id. */
  readonly owner: string;
  /** Read and map calls, but post nothing and write nothing. */
  readonly dryRun?: boolean;
  /** Stop after this many non-empty batches. */
  readonly maxBatches?: number;
  /** Epoch ms after which no new call or batch is started. */
  readonly deadline?: number;
}

export type RunOutcome = 'completed' | 'partial' | 'skipped' | 'failed';

export interface RunSummary {
  readonly syncId: string;
  readonly outcome: RunOutcome;
  readonly reason?: StopReason | 'lease_held';
  readonly detail?: string;
  readonly dryRun: boolean;
  readonly delivered: number;
  readonly duplicates: number;
  readonly retried: number;
  readonly deadLettered: number;
  /** Calls now waiting for their final disposition. */
  readonly pending: number;
  readonly pendingResolved: number;
  readonly batches: number;
  readonly callsRead: number;
  readonly checkpoints: number;
  readonly cursor: Cursor | null;
  readonly lagSeconds: number | null;
  readonly durationMs: number;
  readonly lease?: { owner: string; expiresAt: string } | null;
}

interface Counters {
  delivered: number;
  duplicates: number;
  deadLettered: number;
  pendingResolved: number;
  batches: number;
  callsRead: number;
  checkpoints: number;
}

/** Marks a failure of the VICIdial database, as opposed to DynamoDB's, for the run's outcome. */
class SyncDatabaseError extends Error {
  override readonly cause: unknown;
  constructor(cause: unknown) {
    super((cause as Error)?.message ?? String(cause));
    this.name = 'SyncDatabaseError';
    this.cause = cause;
  }
}

async function database<T>(query: () => Promise<T>): Promise<T> {
  try {
    return await query();
  } catch (error) {
    throw new SyncDatabaseError(error);
  }
}

export async function runSync(deps: SyncDeps, options: RunOptions): Promise<RunSummary> {
  return new SyncRun(deps, options).run();
}

class SyncRun {
  private readonly s: SyncSettings;
  private readonly now: () => number;
  private readonly control: RunControl;
  private readonly delivery: CallDelivery;
  private readonly started: number;
  private readonly dryRun: boolean;
  private readonly counters: Counters = {
    delivered: 0,
    duplicates: 0,
    deadLettered: 0,
    pendingResolved: 0,
    batches: 0,
    callsRead: 0,
    checkpoints: 0,
  };
  private lease: Lease | undefined;
  private cursor: Cursor | undefined;
  /** Pending calls as last written to the checkpoint. */
  private pending = new Map<string, PendingCall>();
  /** Pending calls as the queued writes will leave them: what new decisions must build on. */
  private planned = new Map<string, PendingCall>();
  private dbNow = 0;
  /** Serializes checkpoint writes: each one is conditioned on the cursor the previous one wrote. */
  private writes: Promise<void> = Promise.resolve();
  private lastWriteAt = 0;

  constructor(
    private readonly deps: SyncDeps,
    private readonly options: RunOptions,
  ) {
    this.s = deps.settings;
    this.now = deps.now ?? Date.now;
    this.started = this.now();
    this.dryRun = options.dryRun ?? false;
    this.control = new RunControl(options.deadline, this.now);
    this.delivery = new CallDelivery(
      deps.api,
      deps.keys,
      { ...(deps.retryPolicy ?? DEFAULT_RETRY_POLICY), maxAttempts: this.s.apiMaxAttempts },
      this.control,
      deps.log,
      deps.random,
    );
  }

  private log(
    level: 'debug' | 'info' | 'warn' | 'error',
    event: string,
    fields: Record<string, unknown> = {},
  ) {
    this.deps.log.log(level, event, { syncId: this.s.syncId, ...fields });
  }

  private get leaseMs(): number {
    return this.s.leaseSeconds * 1000;
  }

  async run(): Promise<RunSummary> {
    const { checkpoints } = this.deps;
    const syncId = this.s.syncId;
    const initial = cursorAt(this.s.startFrom ?? Math.floor(this.now() / 1000) - 3600);
    if (this.dryRun) {
      const state = await checkpoints.read(syncId);
      this.cursor = state?.cursor ?? initial;
      for (const p of state?.pending ?? []) this.pending.set(p.uniqueid, p);
      this.planned = new Map(this.pending);
    } else {
      const acquired = await checkpoints.acquire(syncId, this.options.owner, this.leaseMs, initial);
      if (!acquired.acquired) {
        const holder = acquired.holder;
        this.log('info', 'lease_skipped', {
          holder: holder?.owner ?? null,
          leaseExpiresAt: holder ? new Date(holder.expiresAt).toISOString() : null,
        });
        return this.summary('skipped', 'lease_held', {
          lease: holder ? { owner: holder.owner, expiresAt: new Date(holder.expiresAt).toISOString() } : null,
        });
      }
      this.lease = acquired.lease;
      this.cursor = acquired.state.cursor;
      for (const p of acquired.state.pending) this.pending.set(p.uniqueid, p);
      this.planned = new Map(this.pending);
      this.lastWriteAt = this.now();
    }
    this.log('info', 'run_start', {
      owner: this.options.owner,
      fence: this.lease?.fence ?? null,
      dryRun: this.dryRun,
      cursorEpoch: this.cursor.endEpoch,
      cursorUid: this.cursor.uniqueid,
      cursorTime: new Date(this.cursor.endEpoch * 1000).toISOString(),
      pending: this.pending.size,
    });

    const renewal = this.lease
      ? setInterval(() => this.renewIfIdle(), Math.floor(this.leaseMs / 3))
      : undefined;
    let outcome: RunOutcome = 'completed';
    try {
      this.dbNow = await database(() => this.deps.calls.now());
      await this.resolvePending();
      await this.drain();
    } catch (error) {
      this.fail(error);
    } finally {
      if (renewal) clearInterval(renewal);
      await this.writes;
    }
    if (this.control.stopped) {
      outcome = PLANNED_STOPS.has(this.control.reason as StopReason) ? 'partial' : 'failed';
    }
    const summary = this.summary(outcome, this.control.reason, { detail: this.control.detail });
    if (this.lease) {
      const released = await checkpoints
        .release(this.lease, {
          outcome,
          at: new Date(this.now()).toISOString(),
          delivered: summary.delivered,
          deadLettered: summary.deadLettered,
          lagSeconds: summary.lagSeconds,
          ...(summary.reason ? { reason: summary.reason } : {}),
        })
        .catch((error) => {
          this.log('warn', 'lease_release_failed', describeError(error));
          return false;
        });
      if (!released && this.control.reason !== 'lease_lost') this.log('warn', 'lease_release_refused', {});
    }
    this.log(outcome === 'failed' ? 'error' : 'info', 'run_end', { ...summary });
    return summary;
  }

  private fail(error: unknown): void {
    if (error instanceof LeaseLostError) {
      this.control.stop('lease_lost', error.message);
      this.log('error', 'lease_lost', describeError(error));
      return;
    }
    const database = error instanceof SyncDatabaseError;
    const cause = database ? error.cause : error;
    const reason: StopReason = database ? 'database_error' : 'checkpoint_error';
    this.control.stop(reason, (cause as Error).message);
    this.log('error', reason, describeError(cause));
  }

  private summary(
    outcome: RunOutcome,
    reason?: StopReason | 'lease_held',
    extra: Partial<RunSummary> = {},
  ): RunSummary {
    const lag = this.cursor && this.dbNow ? lagSeconds(this.cursor, this.dbNow) : null;
    return {
      syncId: this.s.syncId,
      outcome,
      ...(reason ? { reason } : {}),
      ...extra,
      dryRun: this.dryRun,
      delivered: this.counters.delivered,
      duplicates: this.counters.duplicates,
      retried: this.delivery.retries,
      deadLettered: this.counters.deadLettered,
      pending: this.pending.size,
      pendingResolved: this.counters.pendingResolved,
      batches: this.counters.batches,
      callsRead: this.counters.callsRead,
      checkpoints: this.counters.checkpoints,
      cursor: this.cursor ?? null,
      lagSeconds: lag,
      durationMs: this.now() - this.started,
    };
  }

  /** Reads slices after the cursor until caught up, a limit is reached, or something stops the run. */
  private async drain(): Promise<void> {
    for (;;) {
      if (this.control.stopped || !this.control.checkTime()) return;
      if (this.options.maxBatches !== undefined && this.counters.batches >= this.options.maxBatches) {
        this.control.stop('max_batches');
        return;
      }
      const cursor = this.cursor as Cursor;
      this.dbNow = await database(() => this.deps.calls.now());
      const plan = planSlice(cursor, this.dbNow, this.s.settleSeconds, this.s.sliceSeconds);
      if (!plan) return;
      const rows = await database(() =>
        this.deps.calls.readSlice({
          cursor,
          sliceEnd: plan.sliceEnd,
          limit: this.s.batchSize,
          lookbackSeconds: this.s.lookbackSeconds,
        }),
      );
      const exhausted = rows.length < this.s.batchSize;
      if (rows.length > 0) {
        this.counters.batches++;
        this.counters.callsRead += rows.length;
        this.log('info', 'batch', {
          batch: this.counters.batches,
          rows: rows.length,
          cursorEpoch: cursor.endEpoch,
          sliceEnd: plan.sliceEnd,
          lagSeconds: lagSeconds(cursor, this.dbNow),
        });
      }
      await this.processBatch(rows, exhausted ? plan.sliceEnd : undefined);
      if (this.control.stopped) return;
      if (exhausted && plan.reachesSettleBound) return;
    }
  }

  /**
   * Resolves the calls of one batch and checkpoints over the contiguous resolved prefix: after the
   * batch, and every CHECKPOINT_INTERVAL_MS while it is under way, so a crash re-sends at most the calls
   * resolved since the last write.
   *
   * @param exhaustedThrough set when the read returned fewer rows than a batch: the whole slice up to
   *   this epoch is then known, and the cursor may move past it even where no call ended.
   */
  private async processBatch(rows: readonly CallRow[], exhaustedThrough: number | undefined): Promise<void> {
    const prefix = new ResolvedPrefix(rows.length);
    const effects: { park?: PendingCall; unpark?: string }[] = rows.map(() => ({}));
    const toSend: number[] = [];
    let parking = 0;
    rows.forEach((row, i) => {
      const known = this.planned.has(row.uniqueid);
      if (isTransient(row, this.s.transientStatuses)) {
        if (known) {
          prefix.resolve(i);
        } else if (this.planned.size + parking < this.s.pendingMax) {
          parking++;
          effects[i] = { park: { uniqueid: row.uniqueid, endEpoch: row.end_epoch, firstSeen: this.dbNow } };
          prefix.resolve(i);
          this.log('info', 'pending', this.callFields(row));
        } else {
          this.log('warn', 'pending_full', { ...this.callFields(row), pendingMax: this.s.pendingMax });
          toSend.push(i);
        }
      } else {
        if (known) effects[i] = { unpark: row.uniqueid };
        toSend.push(i);
      }
    });

    let flushed = 0;
    const flush = (): Promise<void> => {
      const upTo = prefix.length;
      const complete = upTo === rows.length;
      if (upTo <= flushed && !(complete && exhaustedThrough !== undefined)) return this.writes;
      const last = rows[upTo - 1];
      const next =
        complete && exhaustedThrough !== undefined
          ? cursorAfter(exhaustedThrough)
          : last
            ? cursorOf(last)
            : (this.cursor as Cursor);
      for (let i = flushed; i < upTo; i++) {
        const effect = effects[i];
        if (effect?.park) this.planned.set(effect.park.uniqueid, effect.park);
        if (effect?.unpark) this.planned.delete(effect.unpark);
      }
      flushed = upTo;
      return this.checkpoint(next);
    };

    const timer = setInterval(() => void flush(), this.s.checkpointIntervalMs);
    try {
      await forEachConcurrent(
        toSend,
        this.s.concurrency,
        () => this.control.stopped || !this.control.checkTime(),
        async (index) => {
          if (await this.resolveCall(rows[index] as CallRow, 'scan')) prefix.resolve(index);
        },
      );
    } finally {
      clearInterval(timer);
    }
    await flush();
  }

  /** Queues a conditional checkpoint write; a refused one stops the run (the lease was lost). */
  private checkpoint(next: Cursor): Promise<void> {
    const pending = new Map(this.planned);
    this.writes = this.writes.then(async () => {
      if (this.control.reason === 'lease_lost' || this.control.reason === 'checkpoint_error') return;
      const previous = this.cursor as Cursor;
      const pendingChanged =
        pending.size !== this.pending.size || [...pending.keys()].some((k) => !this.pending.has(k));
      if (sameCursor(previous, next) && !pendingChanged) return;
      if (!this.dryRun && this.lease) {
        try {
          await this.deps.checkpoints.advance(
            this.lease,
            previous,
            next,
            [...pending.values()],
            this.leaseMs,
          );
        } catch (error) {
          this.fail(error);
          return;
        }
        this.counters.checkpoints++;
        this.lastWriteAt = this.now();
      }
      this.cursor = next;
      this.pending = pending;
      this.log('info', 'checkpoint', {
        cursorEpoch: next.endEpoch,
        cursorUid: next.uniqueid,
        cursorTime: new Date(next.endEpoch * 1000).toISOString(),
        pending: pending.size,
        lagSeconds: lagSeconds(next, this.dbNow),
        dryRun: this.dryRun,
      });
    });
    return this.writes;
  }

  /** Keeps the lease alive through long waits (API retries) when no checkpoint write has renewed it. */
  private renewIfIdle(): void {
    const lease = this.lease;
    if (!lease || this.now() - this.lastWriteAt < this.leaseMs / 3) return;
    this.writes = this.writes.then(async () => {
      if (this.control.reason === 'lease_lost') return;
      try {
        await this.deps.checkpoints.renew(lease, this.leaseMs);
        this.lastWriteAt = this.now();
      } catch (error) {
        this.fail(error);
      }
    });
  }

  /**
   * Looks again at calls parked with a transient status: delivers those whose disposition arrived (or
   * that waited longer than PENDING_MAX_AGE_SECONDS), hands back to the scan those whose end moved past
   * the cursor, and dead-letters those that vanished from vicidial_log.
   */
  private async resolvePending(): Promise<void> {
    if (this.pending.size === 0) return;
    const parked = [...this.planned.values()];
    const rows = new Map(
      (await database(() => this.deps.calls.readByUniqueid(parked.map((p) => p.uniqueid)))).map((r) => [
        r.uniqueid,
        r,
      ]),
    );
    const remaining = this.planned;
    const toSend: { row: CallRow; parked: PendingCall }[] = [];
    for (const p of parked) {
      const row = rows.get(p.uniqueid);
      if (!row) {
        const ok = await this.deadLetter(
          p.uniqueid,
          null,
          'row left vicidial_log (archived or deleted) before its disposition arrived',
          { endEpoch: p.endEpoch },
        );
        if (ok) remaining.delete(p.uniqueid);
        continue;
      }
      if (compareCursor(cursorOf(row), this.cursor as Cursor) > 0) {
        // Its end moved past the cursor: the scan reads it in its new place, once.
        remaining.delete(p.uniqueid);
        this.log('info', 'pending_requeued', { ...this.callFields(row) });
        continue;
      }
      if (!isTransient(row, this.s.transientStatuses)) {
        toSend.push({ row, parked: p });
      } else if (this.dbNow - row.end_epoch > this.s.pendingMaxAgeSeconds) {
        this.log('warn', 'pending_expired', {
          ...this.callFields(row),
          ageSeconds: this.dbNow - row.end_epoch,
        });
        toSend.push({ row, parked: p });
      }
    }
    await forEachConcurrent(
      toSend,
      this.s.concurrency,
      () => this.control.stopped || !this.control.checkTime(),
      async ({ row }) => {
        if (await this.resolveCall(row, 'pending')) {
          remaining.delete(row.uniqueid);
          this.counters.pendingResolved++;
        }
      },
    );
    await this.checkpoint(this.cursor as Cursor);
  }

  private callFields(row: CallRow): Record<string, unknown> {
    return {
      uniqueid: row.uniqueid,
      campaignId: row.campaign_id,
      disposition: row.status,
      duration: row.length_in_sec,
      endEpoch: row.end_epoch,
    };
  }

  /** Delivers or dead-letters one call; false when it stays unresolved (the run is stopping). */
  private async resolveCall(row: CallRow, source: 'scan' | 'pending'): Promise<boolean> {
    const payload = toPayload(row);
    const problem = payloadProblem(payload);
    if (problem) return this.deadLetter(row.uniqueid, payload, `invalid row: ${problem}`, { row });
    if (this.dryRun) {
      this.log('info', 'call_would_send', { ...this.callFields(row), source });
      this.counters.delivered++;
      return true;
    }
    const started = this.now();
    let result: DeliveryResult;
    try {
      result = await this.delivery.deliver(payload);
    } catch (error) {
      // Only the key provider throws here (a secret that cannot be read).
      this.control.stop('api_auth', (error as Error).message);
      this.log('error', 'api_key_unavailable', describeError(error));
      return false;
    }
    const durationMs = this.now() - started;
    switch (result.kind) {
      case 'delivered':
        this.counters.delivered++;
        if (result.duplicate) this.counters.duplicates++;
        this.log('info', 'call_sent', {
          ...this.callFields(row),
          httpStatus: result.status,
          attempt: result.attempts,
          duplicate: result.duplicate,
          durationMs,
          source,
        });
        return true;
      case 'rejected':
        return this.deadLetter(row.uniqueid, payload, `rejected by the API: HTTP ${result.status}`, {
          row,
          httpStatus: result.status,
          excerpt: result.excerpt,
          attempts: result.attempts,
        });
      case 'gave_up':
        this.control.stop('api_unavailable', `${result.error} after ${result.attempts} attempts`);
        this.log('error', 'api_unavailable', {
          ...this.callFields(row),
          httpStatus: result.status,
          attempt: result.attempts,
          error: result.error,
        });
        return false;
      case 'auth_failed':
        this.control.stop('api_auth', `HTTP ${result.status} with a freshly fetched key`);
        this.log('error', 'api_auth_failed', { ...this.callFields(row), httpStatus: result.status });
        return false;
      case 'stopped':
        return false;
    }
  }

  private async deadLetter(
    uniqueid: string,
    payload: CallResultPayload | null,
    reason: string,
    details: { row?: CallRow; endEpoch?: number; httpStatus?: number; excerpt?: string; attempts?: number },
  ): Promise<boolean> {
    const fields = {
      ...(details.row ? this.callFields(details.row) : { uniqueid }),
      reason,
      httpStatus: details.httpStatus ?? null,
    };
    if (this.dryRun) {
      this.counters.deadLettered++;
      this.log('warn', 'call_would_dead_letter', fields);
      return true;
    }
    try {
      await this.deps.checkpoints.putDeadLetter({
        syncId: this.s.syncId,
        uniqueid,
        reason,
        httpStatus: details.httpStatus ?? null,
        responseExcerpt: details.excerpt ?? null,
        payload: payload ? JSON.stringify(payload) : null,
        endEpoch: details.row?.end_epoch ?? details.endEpoch ?? null,
        campaignId: details.row?.campaign_id ?? null,
        createdAt: new Date(this.now()).toISOString(),
        attempts: details.attempts ?? 0,
      });
    } catch (error) {
      this.control.stop('dead_letter_error', (error as Error).message);
      this.log('error', 'dead_letter_failed', { ...fields, ...describeError(error) });
      return false;
    }
    this.counters.deadLettered++;
    this.log('warn', 'call_dead_lettered', fields);
    return true;
  }
}
