import type { CallResultPayload } from '../calls/payload';
import { payloadProblem, toPayload } from '../calls/payload';
import { CallDelivery } from '../delivery/call-delivery';
import { DEFAULT_RETRY_POLICY } from '../delivery/retry-policy';
import { Throttle } from '../delivery/throttle';
import { describeError } from '../log';
import type { SyncDeps } from '../run/engine';
import { forEachConcurrent, RunControl } from '../run-control';
import type { CheckpointStore, DeadLetter } from '../state/checkpoint-store';

/** The operator's dead-letter commands: list, group by cause, and replay (CLI and handler alike). */

/** Which dead letters a listing or a replay concerns; every given field must match. */
export interface DeadLetterFilter {
  readonly campaign?: string | undefined;
  /** A part of the reason, case-insensitive ("422", "missing required"). */
  readonly reason?: string | undefined;
  readonly uniqueid?: string | undefined;
}

export function matchesFilter(letter: DeadLetter, filter: DeadLetterFilter): boolean {
  if (filter.campaign !== undefined && letter.campaignId !== filter.campaign) return false;
  if (filter.uniqueid !== undefined && letter.uniqueid !== filter.uniqueid) return false;
  if (filter.reason !== undefined) {
    const needle = filter.reason.toLowerCase();
    const hay = `${letter.reason} ${letter.responseExcerpt ?? ''}`.toLowerCase();
    if (!hay.includes(needle)) return false;
  }
  return true;
}

export async function listDeadLetters(
  store: CheckpointStore,
  syncId: string,
  filter: DeadLetterFilter = {},
): Promise<DeadLetter[]> {
  const out: DeadLetter[] = [];
  for await (const letter of store.deadLetters(syncId)) if (matchesFilter(letter, filter)) out.push(letter);
  return out;
}

/** Dead letters of one reason and campaign, with what the API answered (a person fixes causes, not calls). */
export interface DeadLetterGroup {
  readonly reason: string;
  readonly campaignId: string | null;
  readonly count: number;
  /** The API's answers in this group, most frequent first (at most three), with their counts. */
  readonly answers: readonly { readonly answer: string; readonly count: number }[];
  readonly oldest: string;
  readonly newest: string;
  /** A few of its calls, to look one up with `did-sync trace`. */
  readonly sample: readonly string[];
}

export function groupDeadLetters(letters: readonly DeadLetter[]): DeadLetterGroup[] {
  const groups = new Map<string, { letters: DeadLetter[] }>();
  for (const l of letters) {
    const key = JSON.stringify([l.reason, l.campaignId]);
    let g = groups.get(key);
    if (!g) {
      g = { letters: [] };
      groups.set(key, g);
    }
    g.letters.push(l);
  }
  const out: DeadLetterGroup[] = [];
  for (const { letters: ls } of groups.values()) {
    const first = ls[0] as DeadLetter;
    const answers = new Map<string, number>();
    for (const l of ls) {
      if (l.responseExcerpt) answers.set(l.responseExcerpt, (answers.get(l.responseExcerpt) ?? 0) + 1);
    }
    const times = ls.map((l) => l.createdAt).sort();
    out.push({
      reason: first.reason,
      campaignId: first.campaignId,
      count: ls.length,
      answers: [...answers]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 3)
        .map(([answer, count]) => ({ answer, count })),
      oldest: times[0] ?? '',
      newest: times.at(-1) ?? '',
      sample: ls.slice(0, 3).map((l) => l.uniqueid),
    });
  }
  return out.sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
}

/** The parts of a sync a replay needs: the same ones a run uses. */
export type ReplayDeps = Pick<
  SyncDeps,
  'settings' | 'checkpoints' | 'calls' | 'api' | 'keys' | 'log' | 'retryPolicy'
>;

export interface ReplaySummary {
  readonly syncId: string;
  /** False when a run or another replay held the sync's lease: nothing was posted. */
  readonly replayed: boolean;
  readonly holder?: { owner: string; expiresAt: string } | null;
  readonly total: number;
  readonly delivered: number;
  readonly stillRejected: number;
  /** Letters whose post failed every attempt (API trouble): kept as they were. */
  readonly failed: number;
  readonly notAttempted: number;
  /** Letters the ledger records as delivered (by a later run or replay): not posted again, removed. */
  readonly alreadyDelivered?: number;
  readonly stoppedBy?: string;
  readonly detail?: string;
}

export interface ReplayOptions {
  /** Who replays: unique per replay, like a run's owner. */
  readonly owner: string;
  /** Epoch ms by which the replay has ended (a Lambda's remaining time); the rest wait. */
  readonly deadline?: number;
  /** Only these letters; the others are left as they are. */
  readonly filter?: DeadLetterFilter;
}

/**
 * Posts every dead letter again, from the row as it is now (an operator may have fixed it in VICIdial)
 * or, when the row is gone, from the stored payload, CONCURRENCY at a time with the run's retry policy.
 * It holds the sync's lease like a run, so a replay and a run (or two replays) never post the same
 * letter twice. Delivered letters are deleted; refused ones kept with the new answer.
 */
export async function replayDeadLetters(deps: ReplayDeps, options: ReplayOptions): Promise<ReplaySummary> {
  const { syncId, concurrency, apiMaxAttempts, leaseSeconds, apiTimeoutMs } = deps.settings;
  const store = deps.checkpoints;
  const leaseMs = leaseSeconds * 1000;
  const empty = {
    syncId,
    total: 0,
    delivered: 0,
    stillRejected: 0,
    failed: 0,
    notAttempted: 0,
    alreadyDelivered: 0,
  };
  const state = await store.read(syncId);
  if (!state) return { ...empty, replayed: true };
  const acquired = await store.acquire(syncId, options.owner, leaseMs, state.cursor);
  if (!acquired.acquired) {
    const holder = acquired.holder
      ? { owner: acquired.holder.owner, expiresAt: new Date(acquired.holder.expiresAt).toISOString() }
      : null;
    deps.log.log('info', 'replay_skipped', { syncId, holder: holder?.owner ?? null });
    return {
      ...empty,
      replayed: false,
      holder,
      detail: `sync "${syncId}" is busy (lease held by ${holder?.owner ?? 'unknown'}${holder ? ` until ${holder.expiresAt}` : ''}): try again when it is done`,
    };
  }
  const lease = acquired.lease;
  const control = new RunControl(options.deadline);
  const renewal = setInterval(
    () => {
      store.renew(lease, leaseMs).catch((error) => {
        control.stop('lease_lost', (error as Error).message);
      });
    },
    Math.floor(leaseMs / 3),
  );
  const letters = await listDeadLetters(store, syncId, options.filter);
  let delivered = 0;
  let stillRejected = 0;
  let failed = 0;
  let attempted = 0;
  let alreadyDelivered = 0;
  try {
    if (!control.mayStart()) return finished();
    const rows = new Map(
      (
        await deps.calls.readByUniqueid(
          letters.map((l) => l.uniqueid),
          state.cursor,
          { timeoutMs: control.timeLeft() },
        )
      ).map((r) => [r.uniqueid, r]),
    );
    // R3: a letter whose call the ledger records as delivered is never posted again.
    const outcomes = await store.ledger.outcomes(
      syncId,
      letters.map((l) => {
        const row = rows.get(l.uniqueid);
        const end = row?.end_epoch ?? l.endEpoch ?? 0;
        return { uniqueid: l.uniqueid, fromEpoch: Number(row?.start_epoch ?? end) || end, toEpoch: end };
      }),
    );
    const delivery = new CallDelivery(
      deps.api,
      deps.keys,
      {
        policy: { ...(deps.retryPolicy ?? DEFAULT_RETRY_POLICY), maxAttempts: apiMaxAttempts },
        apiTimeoutMs,
      },
      control,
      new Throttle(concurrency),
      deps.log,
    );
    await forEachConcurrent(
      letters,
      concurrency,
      () => !control.mayStart(),
      async (letter) => {
        attempted++;
        const row = rows.get(letter.uniqueid);
        if (outcomes.get(letter.uniqueid) === 'delivered') {
          alreadyDelivered++;
          await store.deleteDeadLetter(syncId, letter.uniqueid);
          deps.log.log('info', 'dead_letter_already_delivered', { syncId, uniqueid: letter.uniqueid });
          return;
        }
        const payload: CallResultPayload | null = row
          ? toPayload(row)
          : letter.payload
            ? (JSON.parse(letter.payload) as CallResultPayload)
            : null;
        const keep = async (reason: string, httpStatus: number | null, excerpt: string | null) => {
          stillRejected++;
          await store.putDeadLetter({
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
        const result = await delivery.deliver(payload, { syncId, uniqueid: letter.uniqueid });
        switch (result.kind) {
          case 'delivered':
            delivered++;
            // R2: the ledger knows it is delivered before the letter that would let it be posted goes.
            await store.ledger
              .record(
                syncId,
                [{ uniqueid: letter.uniqueid, endEpoch: payload.endEpoch, outcome: 'delivered' }],
                {
                  ledgerDays: deps.settings.ledgerDays,
                },
              )
              .catch((error) =>
                deps.log.log('error', 'ledger_write_failed', {
                  syncId,
                  uniqueid: letter.uniqueid,
                  ...describeError(error),
                }),
              );
            await store.deleteDeadLetter(syncId, letter.uniqueid);
            deps.log.log('info', 'dead_letter_replayed', {
              syncId,
              uniqueid: letter.uniqueid,
              httpStatus: result.status,
            });
            return;
          case 'rejected':
            return keep(`rejected by the API: HTTP ${result.status}`, result.status, result.excerpt);
          case 'failed':
            failed++;
            return;
          case 'misconfigured':
            control.stop('api_misconfigured', result.detail);
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
  } finally {
    clearInterval(renewal);
    await store
      .release(lease, undefined, undefined, { timeoutMs: 2_000 })
      .catch((error) => deps.log.log('warn', 'lease_release_failed', describeError(error)));
  }
  return finished();

  function finished(): ReplaySummary {
    return {
      syncId,
      replayed: true,
      total: letters.length,
      delivered,
      stillRejected,
      failed,
      notAttempted: letters.length - attempted,
      alreadyDelivered,
      ...(control.reason ? { stoppedBy: control.reason } : {}),
      ...(control.detail ? { detail: control.detail } : {}),
    };
  }
}
