import type { Cursor } from '../calls/cursor';
import type { CallResultPayload } from '../calls/payload';
import { CallDelivery, type DeliveryResult } from '../delivery/call-delivery';
import { DEFAULT_RETRY_POLICY } from '../delivery/retry-policy';
import { Throttle } from '../delivery/throttle';
import type { RunControl } from '../run-control';
import type {
  AcquireResult,
  AdoptRange,
  CheckpointState,
  DeadLetter,
  HeldState,
  LastRun,
  Lease,
} from '../state/checkpoint-store';
import type { FollowedItem } from '../state/followed-log';
import type { LedgerEntry } from '../state/ledger';
import type { RunLog } from './run-log';
import type { SyncDeps } from './types';

/**
 * What a run does to the world: posts to the API and writes to DynamoDB. The story and its steps never
 * call the API client or the checkpoint store for these themselves; they ask the effects, so a dry run
 * is this interface's other implementation (it reads the same state, posts nothing and writes nothing,
 * and says what it would have done) rather than a flag through the steps. Reads go to the store either
 * way.
 */
export interface RunEffects {
  readonly dryRun: boolean;
  /** Takes the sync's lease (a dry run reads the checkpoint without one). */
  claim(owner: string, leaseMs: number, initial: Cursor, timeoutMs: number): Promise<AcquireResult>;
  startLedger(lease: Lease, since: number, adopt: AdoptRange | undefined, timeoutMs: number): Promise<void>;
  post(payload: CallResultPayload, fields: Record<string, unknown>): Promise<DeliveryResult>;
  /** Says a call was delivered (or would have been): its fields, then the answer's, merged once by the log. */
  sent(...fields: Record<string, unknown>[]): void;
  putDeadLetter(letter: DeadLetter, timeoutMs: number): Promise<void>;
  /** Says a call was dead-lettered (or would have been). */
  deadLettered(fields: Record<string, unknown>): void;
  recordLedger(entries: readonly LedgerEntry[], timeoutMs: number): Promise<void>;
  /** Items holding followed calls, put before the checkpoint write that names them. */
  writeFollowed(items: readonly FollowedItem[], timeoutMs: number): Promise<void>;
  /** Items no checkpoint names any more (best effort). */
  dropFollowed(ids: readonly string[]): Promise<void>;
  advance(lease: Lease, previous: Cursor, next: Cursor, held: HeldState, timeoutMs: number): Promise<void>;
  renew(lease: Lease): Promise<void>;
  release(
    lease: Lease,
    lastRun: LastRun,
    final: { previous: Cursor; next: Cursor; held: HeldState } | undefined,
    timeoutMs: number,
  ): Promise<boolean>;
  repairs(timeoutMs: number): Promise<{ uniqueid: string; endEpoch: number }[]>;
  deleteRepair(uniqueid: string, timeoutMs: number): Promise<void>;
  /** Requests retried, cut after sending (ambiguous), and answered 429, and the concurrency left. */
  deliveryStats(): { retried: number; ambiguous: number; rateLimited: number; concurrency: number };
}

/** The real thing: the API over the pooled client, DynamoDB through the checkpoint store. */
export function liveEffects(deps: SyncDeps, control: RunControl, log: RunLog): RunEffects {
  const s = deps.settings;
  const store = deps.checkpoints;
  const leaseMs = s.leaseSeconds * 1000;
  const throttle = new Throttle(s.concurrency, deps.now ?? Date.now);
  const delivery = new CallDelivery(
    deps.api,
    deps.keys,
    {
      policy: { ...(deps.retryPolicy ?? DEFAULT_RETRY_POLICY), maxAttempts: s.apiMaxAttempts },
      apiTimeoutMs: s.apiTimeoutMs,
    },
    control,
    throttle,
    // The delivery's own lines (call_retry, call_ambiguous, rate_limited) carry the sync's id too.
    log,
    deps.random,
  );
  return {
    dryRun: false,
    claim: (owner, ms, initial, timeoutMs) => store.acquire(s.syncId, owner, ms, initial, { timeoutMs }),
    startLedger: (lease, since, adopt, timeoutMs) => store.startLedger(lease, since, adopt, { timeoutMs }),
    post: (payload, fields) => delivery.deliver(payload, fields),
    sent: (...fields) => log.log('info', 'call_sent', ...fields),
    putDeadLetter: (letter, timeoutMs) => store.putDeadLetter(letter, { timeoutMs }),
    deadLettered: (fields) => log.log('warn', 'call_dead_lettered', fields),
    recordLedger: (entries, timeoutMs) =>
      store.ledger.record(s.syncId, entries, { ledgerDays: s.ledgerDays, timeoutMs }),
    async writeFollowed(items, timeoutMs) {
      for (const item of items) await store.followed.put(s.syncId, item, timeoutMs);
    },
    dropFollowed: (ids) => store.followed.delete(s.syncId, ids),
    advance: (lease, previous, next, held, timeoutMs) =>
      store.advance(lease, previous, next, held, leaseMs, { timeoutMs }),
    renew: (lease) => store.renew(lease, leaseMs),
    release: (lease, lastRun, final, timeoutMs) => store.release(lease, lastRun, final, { timeoutMs }),
    repairs: (timeoutMs) => store.repairs(s.syncId, { timeoutMs }),
    deleteRepair: (uniqueid, timeoutMs) => store.deleteRepair(s.syncId, uniqueid, { timeoutMs }),
    deliveryStats: () => ({
      retried: delivery.retries,
      ambiguous: delivery.ambiguous,
      rateLimited: delivery.rateLimited,
      concurrency: throttle.current,
    }),
  };
}

/**
 * The dry run's stand-in: the same reads, no lease taken, nothing posted or written; each call it would
 * have posted or dead-lettered is logged as such.
 */
export function dryEffects(deps: SyncDeps, log: RunLog): RunEffects {
  const s = deps.settings;
  const store = deps.checkpoints;
  return {
    dryRun: true,
    async claim(owner, _ms, initial, timeoutMs) {
      const state = (await store.read(s.syncId, { timeoutMs })) ?? newSyncState(s.syncId, initial);
      return { acquired: true, lease: { syncId: s.syncId, owner, fence: state.fence }, state };
    },
    startLedger: async () => {},
    post: async () => ({ kind: 'delivered', status: 0, attempts: 0 }),
    sent: (...fields) => log.log('info', 'call_would_send', ...fields),
    putDeadLetter: async () => {},
    deadLettered: (fields) => log.log('warn', 'call_would_dead_letter', fields),
    recordLedger: async () => {},
    writeFollowed: async () => {},
    dropFollowed: async () => {},
    advance: async () => {},
    renew: async () => {},
    release: async () => true,
    // A dry run does not take repairs off the queue, so it does not post them either.
    repairs: async () => [],
    deleteRepair: async () => {},
    deliveryStats: () => ({ retried: 0, ambiguous: 0, rateLimited: 0, concurrency: s.concurrency }),
  };
}

/** The state of a sync seen for the first time, as the first real run would create it. */
function newSyncState(syncId: string, cursor: Cursor): CheckpointState {
  return {
    syncId,
    cursor,
    pending: [],
    followedLog: { items: [], snapshotBytes: 0, deltaBytes: 0 },
    parked: [],
    ahead: [],
    frontier: 0,
    ledgerSince: cursor.endEpoch,
    fence: 0,
    lease: null,
    updatedAt: null,
    lastRun: null,
    resend: null,
    adopt: null,
    skipped: [],
  };
}
