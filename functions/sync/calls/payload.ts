/**
 * Mapping of a vicidial_log row to the DID Optimizer's call-result payload, and the checks that decide
 * whether a row can be sent at all. Pure: no I/O.
 */

/** The columns read from vicidial_log, as mysql2 returns them with `dateStrings: true`. */
export interface CallRow {
  uniqueid: string;
  lead_id: number | string | null;
  list_id: number | string | null;
  campaign_id: string | null;
  /** The database's own `YYYY-MM-DD HH:MM:SS` in its own time zone: passed through, never converted. */
  call_date: string | null;
  start_epoch: number | null;
  end_epoch: number;
  length_in_sec: number | null;
  status: string | null;
  phone_code: string | null;
  phone_number: string | null;
  user: string | null;
  comments: string | null;
  user_group: string | null;
  term_reason: string | null;
  alt_dial: string | null;
  called_count: number | null;
}

export const CALL_COLUMNS = [
  'uniqueid',
  'lead_id',
  'list_id',
  'campaign_id',
  'call_date',
  'start_epoch',
  'end_epoch',
  'length_in_sec',
  'status',
  'phone_code',
  'phone_number',
  'user',
  'comments',
  'user_group',
  'term_reason',
  'alt_dial',
  'called_count',
] as const satisfies readonly (keyof CallRow)[];

/** The body of `POST /api/v1/call-results`: camelCase names of the columns the service reads. */
export interface CallResultPayload {
  uniqueid: string;
  leadId: string | null;
  listId: string | null;
  campaignId: string | null;
  phoneNumber: string | null;
  phoneCode: string | null;
  disposition: string | null;
  duration: number | null;
  agentId: string | null;
  userGroup: string | null;
  termReason: string | null;
  comments: string | null;
  altDial: string | null;
  calledCount: number | null;
  callDate: string | null;
  startEpoch: number | null;
  endEpoch: number;
  timestamp: number;
}

function text(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  return String(value);
}

function num(value: unknown): number | null {
  if (value === null || value === undefined || value === '') return null;
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isFinite(n) ? n : null;
}

export function toPayload(row: CallRow): CallResultPayload {
  const endEpoch = Number(row.end_epoch);
  return {
    uniqueid: row.uniqueid,
    // Ids travel as strings, as the original script sent them: they are identifiers, not quantities.
    leadId: text(row.lead_id),
    listId: text(row.list_id),
    campaignId: text(row.campaign_id),
    phoneNumber: text(row.phone_number),
    phoneCode: text(row.phone_code),
    disposition: text(row.status),
    duration: num(row.length_in_sec),
    agentId: text(row.user),
    userGroup: text(row.user_group),
    termReason: text(row.term_reason),
    comments: text(row.comments),
    altDial: text(row.alt_dial),
    calledCount: num(row.called_count),
    callDate: text(row.call_date),
    startEpoch: num(row.start_epoch),
    endEpoch,
    timestamp: endEpoch,
  };
}

const REQUIRED: readonly (keyof CallResultPayload)[] = ['uniqueid', 'phoneNumber', 'campaignId'];

/**
 * Why the API would refuse this payload, or undefined if it is sendable. Checked before posting so a
 * row that can never be accepted is dead-lettered with a precise reason instead of costing a request.
 */
export function payloadProblem(payload: CallResultPayload): string | undefined {
  const missing = REQUIRED.filter((field) => {
    const value = payload[field];
    return value === null || value === undefined || String(value).trim() === '';
  });
  if (missing.length > 0) return `missing required fields: ${missing.join(', ')}`;
  return undefined;
}

/** A call whose disposition is still to come (an agent call before the disposition screen is submitted). */
export function isTransient(row: Pick<CallRow, 'status'>, transientStatuses: ReadonlySet<string>): boolean {
  return row.status !== null && transientStatuses.has(row.status.toUpperCase());
}

/** Has an end and a final status: nothing more will change it in the normal course. */
export function isFinished(
  row: Pick<CallRow, 'status' | 'end_epoch'>,
  transientStatuses: ReadonlySet<string>,
): boolean {
  return (
    row.end_epoch !== null &&
    row.end_epoch > 0 &&
    row.status !== null &&
    row.status.trim() !== '' &&
    !isTransient(row, transientStatuses)
  );
}

/** A finished call the sync sends: the original script's filters (final status, length above the minimum). */
export function isEligible(
  row: Pick<CallRow, 'status' | 'end_epoch' | 'length_in_sec'>,
  transientStatuses: ReadonlySet<string>,
  minDurationSeconds: number,
): boolean {
  return isFinished(row, transientStatuses) && Number(row.length_in_sec ?? 0) > minDurationSeconds;
}

/**
 * Still going: no end yet, or the row as VICIdial inserts it at connect (end = start, no length). Its
 * age says nothing yet; an in-between status on a call that has ended (DISPO) is another matter.
 */
export function isLive(row: Pick<CallRow, 'end_epoch' | 'start_epoch' | 'length_in_sec'>): boolean {
  if (!(row.end_epoch > 0)) return true;
  return !(Number(row.length_in_sec ?? 0) > 0) && row.end_epoch <= Number(row.start_epoch ?? 0);
}
