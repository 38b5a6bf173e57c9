import * as z from 'zod/mini';
import { SYNC_ID, SYNC_ID_RULE } from '../sync';
import { InvalidInvocationError, isScheduledEvent, parseScheduledEvent } from './scheduled-event';
import './zod-messages';

/**
 * What the function accepts: EventBridge Scheduler's `{"syncId": ...}`, or an operator's manual
 * invoke with an `action`. Anything else is refused before any side effect.
 */
const syncId = z.string().check(z.regex(SYNC_ID, SYNC_ID_RULE));
const instant = z.union([z.string().check(z.minLength(1)), z.int().check(z.nonnegative())]);

const manual = z.discriminatedUnion('action', [
  z.strictObject({
    action: z.literal('sync'),
    syncId,
    dryRun: z.optional(z.boolean()),
    maxBatches: z.optional(z.int().check(z.positive())),
  }),
  z.strictObject({ action: z.literal('status'), syncId }),
  z.strictObject({
    action: z.literal('reset'),
    syncId,
    to: instant,
    force: z.optional(z.boolean()),
    withoutDatabase: z.optional(z.boolean()),
    resend: z.optional(z.boolean()),
    skipUndelivered: z.optional(z.boolean()),
  }),
  z.strictObject({ action: z.literal('dead-letters'), syncId, replay: z.optional(z.boolean()) }),
  z.strictObject({ action: z.literal('check'), syncId }),
  // `hours`: the last N hours up to the cursor (the hourly schedule); or an explicit since/until.
  z.strictObject({
    action: z.literal('reconcile'),
    syncId,
    since: z.optional(instant),
    until: z.optional(instant),
    hours: z.optional(z.int().check(z.positive(), z.lte(24 * 31))),
    repair: z.optional(z.boolean()),
  }),
]);

export type Invocation = { readonly action: 'scheduled'; readonly syncId: string } | z.infer<typeof manual>;

export { InvalidInvocationError, type InvocationRefusal, isScheduledEvent, refusal } from './scheduled-event';

export function parseInvocation(event: unknown): Invocation {
  if (isScheduledEvent(event)) return parseScheduledEvent(event as object);
  const result = manual.safeParse(event);
  if (result.success) return result.data;
  throw new InvalidInvocationError(
    describe(
      result.error,
      'expected {"action":"sync"|"status"|"reset"|"dead-letters"|"check"|"reconcile","syncId":"<id>", ...}',
    ),
  );
}

function describe(error: z.core.$ZodError, hint: string): string {
  const issue = error.issues[0];
  const path = issue?.path.length ? issue.path.join('.') : 'event';
  return `invalid invocation: ${path}: ${issue?.message ?? 'invalid'} (${hint})`;
}
