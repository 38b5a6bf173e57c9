import { describeError } from '../log';
import type { RunControl, StopReason } from '../run-control';
import { SettingError } from '../settings';
import { LeaseLostError } from '../state/checkpoint-store';
import { SyncDatabaseError } from './database';
import type { RunLog } from './run-log';

/**
 * Turns an error into the reason the run stops: a lost lease, the VICIdial database, or DynamoDB. A
 * setting that cannot be meant is not a stop: it is thrown, and the adapter says which setting.
 */
export function stopFor(error: unknown, control: RunControl, log: RunLog): void {
  if (error instanceof SettingError) throw error;
  if (error instanceof LeaseLostError) {
    control.stop('lease_lost', error.message);
    log.log('error', 'lease_lost', describeError(error));
    return;
  }
  const database = error instanceof SyncDatabaseError;
  const cause = database ? error.cause : error;
  if (cause instanceof SettingError) throw cause;
  const reason: StopReason = database ? 'database_error' : 'checkpoint_error';
  control.stop(reason, (cause as Error).message);
  log.log('error', reason, describeError(cause));
}
