import { CallDelivery } from './call-delivery';
import type { CheckpointStore, DeadLetter, LastRun } from './checkpoint-store';
import { type Cursor, cursorAt, lagSeconds } from './cursor';
import type { SyncDeps } from './engine';
import type { SyncLog } from './log';
import { type CallResultPayload, payloadProblem, toPayload } from './payload';
import { DEFAULT_RETRY_POLICY } from './retry-policy';
import { forEachConcurrent, RunControl } from './run-control';

/** The operator's actions besides a run: status, reset and dead-letter handling, shared by CLI and handler. */

export interface StatusReport {
  readonly syncId: string;
  readonly exists: boolean;
  readonly cursor: Cursor | null;
  readonly cursorTime: string | null;
  readonly lagSeconds: number | null;
  readonly lease: { owner: string; expiresAt: string } | null;
  readonly pending: number;
  readonly deadLetters: number;
  readonly updatedAt: string | null;
  readonly lastRun: LastRun | null;
}

export async function readStatus(
  store: CheckpointStore,
  syncId: string,
  nowMs = Date.now(),
): Promise<StatusReport> {
  const [state, deadLetters] = await Promise.all([store.read(syncId), store.countDeadLetters(syncId)]);
  const nowEpoch = Math.floor(nowMs / 1000);
  const lease = state?.lease && state.lease.expiresAt > nowMs ? state.lease : null;
  return {
    syncId,
    exists: state !== undefined,
    cursor: state?.cursor ?? null,
    cursorTime: state ? new Date(state.cursor.endEpoch * 1000).toISOString() : null,
    lagSeconds: state ? lagSeconds(state.cursor, nowEpoch) : null,
    lease: lease ? { owner: lease.owner, expiresAt: new Date(lease.expiresAt).toISOString() } : null,
    pending: state?.pending.length ?? 0,
    deadLetters,
    updatedAt: state?.updatedAt ?? null,
    lastRun: state?.lastRun ?? null,
  };
}

export async function resetCheckpoint(
  store: CheckpointStore,
  syncId: string,
  toEpoch: number,
  force: boolean,
  log: SyncLog,
): Promise<StatusReport> {
  const state = await store.reset(syncId, cursorAt(toEpoch), force);
  log.log('warn', 'checkpoint_reset', {
    syncId,
    cursorEpoch: state.cursor.endEpoch,
    cursorTime: new Date(state.cursor.endEpoch * 1000).toISOString(),
    fence: state.fence,
    force,
  });
  return readStatus(store, syncId);
}

export async function listDeadLetters(store: CheckpointStore, syncId: string): Promise<DeadLetter[]> {
  const out: DeadLetter[] = [];
  for await (const letter of store.deadLetters(syncId)) out.push(letter);
  return out;
}

/** The parts of a sync a replay needs: the same ones a run uses. */
export type ReplayDeps = Pick<
  SyncDeps,
  'settings' | 'checkpoints' | 'calls' | 'api' | 'keys' | 'log' | 'retryPolicy'
>;

export interface ReplaySummary {
  readonly syncId: string;
  readonly total: number;
  readonly delivered: number;
  readonly stillRejected: number;
  readonly notAttempted: number;
  readonly stoppedBy?: string;
}

export interface ReplayOptions {
  /** Epoch ms after which no further letter is posted (a Lambda's remaining time); the rest wait. */
  readonly deadline?: number;
}

/**
 * Posts every dead letter again, from the row as it is now (an operator may have fixed it in VICIdial)
 * or, when the row is gone, from the stored payload, CONCURRENCY at a time with the run's retry policy.
 * Delivered letters are deleted; refused ones are kept with the new answer. Transient trouble, a refused
 * key or the deadline stops the replay, keeping the letters not yet attempted.
 */
export async function replayDeadLetters(
  deps: ReplayDeps,
  options: ReplayOptions = {},
): Promise<ReplaySummary> {
  const { syncId, concurrency, apiMaxAttempts } = deps.settings;
  const letters = await listDeadLetters(deps.checkpoints, syncId);
  const rows = new Map(
    (await deps.calls.readByUniqueid(letters.map((l) => l.uniqueid))).map((r) => [r.uniqueid, r]),
  );
  const control = new RunControl(options.deadline);
  const delivery = new CallDelivery(
    deps.api,
    deps.keys,
    { ...(deps.retryPolicy ?? DEFAULT_RETRY_POLICY), maxAttempts: apiMaxAttempts },
    control,
    deps.log,
  );
  let delivered = 0;
  let stillRejected = 0;
  let attempted = 0;
  await forEachConcurrent(
    letters,
    concurrency,
    () => !control.checkTime(),
    async (letter) => {
      attempted++;
      const row = rows.get(letter.uniqueid);
      const payload: CallResultPayload | null = row
        ? toPayload(row)
        : letter.payload
          ? (JSON.parse(letter.payload) as CallResultPayload)
          : null;
      const keep = async (reason: string, httpStatus: number | null, excerpt: string | null) => {
        stillRejected++;
        await deps.checkpoints.putDeadLetter({
          ...letter,
          reason,
          httpStatus,
          responseExcerpt: excerpt,
          payload: payload ? JSON.stringify(payload) : letter.payload,
          attempts: letter.attempts + 1,
        });
        deps.log.log('warn', 'dead_letter_kept', { syncId, uniqueid: letter.uniqueid, reason, httpStatus });
      };
      if (!payload) return keep('row no longer in vicidial_log and no stored payload', null, null);
      const problem = payloadProblem(payload);
      if (problem) return keep(`invalid row: ${problem}`, null, null);
      const result = await delivery.deliver(payload);
      switch (result.kind) {
        case 'delivered':
          delivered++;
          await deps.checkpoints.deleteDeadLetter(syncId, letter.uniqueid);
          deps.log.log('info', 'dead_letter_replayed', {
            syncId,
            uniqueid: letter.uniqueid,
            httpStatus: result.status,
            duplicate: result.duplicate,
          });
          return;
        case 'rejected':
          return keep(`rejected by the API: HTTP ${result.status}`, result.status, result.excerpt);
        case 'gave_up':
          control.stop('api_unavailable', result.error);
          attempted--;
          return;
        case 'auth_failed':
          control.stop('api_auth', `HTTP ${result.status}`);
          attempted--;
          return;
        case 'stopped':
          attempted--;
          return;
      }
    },
  );
  return {
    syncId,
    total: letters.length,
    delivered,
    stillRejected,
    notAttempted: letters.length - attempted,
    ...(control.reason ? { stoppedBy: control.reason } : {}),
  };
}
