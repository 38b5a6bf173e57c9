import type { CallRow } from '../calls/payload';
import type { LogFields, LogLevel, SyncLog } from '../log';

/** The run's log: every line carries the sync's id. */
export class RunLog {
  private readonly keys: LogFields;

  constructor(
    private readonly sink: SyncLog,
    syncId: string,
  ) {
    this.keys = { syncId };
  }

  /** `fields` in parts, as SyncLog takes them: a line per call is merged once, by the sink. */
  log(level: LogLevel, event: string, ...fields: LogFields[]): void {
    this.sink.log(level, event, this.keys, ...fields);
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
