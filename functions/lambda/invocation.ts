import { z } from 'zod';
import { SYNC_ID, SYNC_ID_RULE } from '../sync/settings';

/**
 * What the function accepts: EventBridge Scheduler's `{"syncId": ...}`, or an operator's manual
 * invoke with an `action`. Anything else is refused before any side effect.
 */
const syncId = z.string().regex(SYNC_ID, SYNC_ID_RULE);
const instant = z.union([z.string().min(1), z.number().int().nonnegative()]);

const scheduled = z.object({ syncId }).strict();
const manual = z.discriminatedUnion('action', [
  z
    .object({
      action: z.literal('sync'),
      syncId,
      dryRun: z.boolean().optional(),
      maxBatches: z.number().int().positive().optional(),
    })
    .strict(),
  z.object({ action: z.literal('status'), syncId }).strict(),
  z
    .object({
      action: z.literal('reset'),
      syncId,
      to: instant,
      force: z.boolean().optional(),
      withoutDatabase: z.boolean().optional(),
    })
    .strict(),
  z.object({ action: z.literal('dead-letters'), syncId, replay: z.boolean().optional() }).strict(),
]);

export type Invocation = { readonly action: 'scheduled'; readonly syncId: string } | z.infer<typeof manual>;

export class InvalidInvocationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidInvocationError';
  }
}

export function parseInvocation(event: unknown): Invocation {
  if (event && typeof event === 'object' && !('action' in event)) {
    const result = scheduled.safeParse(event);
    if (result.success) return { action: 'scheduled', syncId: result.data.syncId };
    throw new InvalidInvocationError(describe(result.error, 'a scheduled event must be {"syncId": "<id>"}'));
  }
  const result = manual.safeParse(event);
  if (result.success) return result.data;
  throw new InvalidInvocationError(
    describe(result.error, 'expected {"action":"sync"|"status"|"reset"|"dead-letters","syncId":"<id>", ...}'),
  );
}

function describe(error: z.ZodError, hint: string): string {
  const issue = error.issues[0];
  const path = issue?.path.length ? issue.path.join('.') : 'event';
  return `invalid invocation: ${path}: ${issue?.message ?? 'invalid'} (${hint})`;
}
