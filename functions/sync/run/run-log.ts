import type { CallRow } from '../calls/payload';
import type { LogLevel, SyncLog } from '../log';

/** The run's log: every line carries the sync's id. */
export class RunLog {
  constructor(
    private readonly sink: SyncLog,
    private readonly syncId: string,
  ) {}

  log(level: LogLevel, event: string, fields: Record<string, unknown> = {}): void {
    this.sink.log(level, event, { syncId: this.syncId, ...fields });
  }
}

/** What every line about one call says of it. */
export function callFields(row: CallRow): Record<string, unknown> {
  return {
    uniqueid: row.uniqueid,
    campaignId: row.campaign_id,
    disposition: row.status,
    duration: row.length_in_sec,
    endEpoch: row.end_epoch,
  };
}
