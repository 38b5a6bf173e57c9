import { SYNC_ID, SYNC_ID_RULE } from '../sync/settings';

/**
 * What every invocation needs before knowing what it is: telling EventBridge Scheduler's `{"syncId": ...}`
 * from an operator's manual invoke, and how a refusal is answered. Kept apart from the manual events'
 * schemas (invocation.ts), which a scheduled run never loads.
 */
export class InvalidInvocationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidInvocationError';
  }
}

/**
 * EventBridge Scheduler sends an object without `action`; anything else comes from a person or a script
 * invoking the function by hand. An invalid scheduled event is a deployment bug (it throws and alarms);
 * an invalid manual one is answered to its caller (see `refusal`).
 */
export function isScheduledEvent(event: unknown): boolean {
  return Boolean(event) && typeof event === 'object' && !('action' in (event as object));
}

/**
 * What a manual caller gets back for a request refused as asked (an invalid event, a reset to an instant
 * the reset refuses, a reset while a run holds the lease), instead of a failed invocation that pages
 * someone. `errorType` is the refusing error's name, e.g. InvalidInvocationError.
 */
export interface InvocationRefusal {
  readonly error: string;
  readonly errorType: string;
}

export function refusal(error: Error): InvocationRefusal {
  return { error: error.message, errorType: error.name };
}

const HINT = 'a scheduled event must be {"syncId": "<id>"}';

const typeOf = (value: unknown) => (value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value);

/** EventBridge Scheduler's event, checked as strictly as the manual ones, without loading their schemas. */
export function parseScheduledEvent(event: object): {
  readonly action: 'scheduled';
  readonly syncId: string;
} {
  const fail = (path: string, message: string) =>
    new InvalidInvocationError(`invalid invocation: ${path}: ${message} (${HINT})`);
  const { syncId, ...rest } = event as { syncId?: unknown };
  if (typeof syncId !== 'string') {
    throw fail('syncId', `Invalid input: expected string, received ${typeOf(syncId)}`);
  }
  if (!SYNC_ID.test(syncId)) throw fail('syncId', SYNC_ID_RULE);
  const extra = Object.keys(rest);
  if (extra.length > 0) {
    throw fail(
      'event',
      `Unrecognized key${extra.length > 1 ? 's' : ''}: ${extra.map((k) => `"${k}"`).join(', ')}`,
    );
  }
  return { action: 'scheduled', syncId };
}
