import type { QueryOptions, SqlClient } from './sql-client';

/**
 * Does the database session read `call_date` in the zone VICIdial wrote it in?
 *
 * VICIdial writes `call_date` (the call's start, a DATETIME) in the writing machine's local time and
 * `start_epoch` as Unix seconds; no VICIdial code sets the session `time_zone`. Every read of the sync
 * bounds `call_date` with `FROM_UNIXTIME(epoch)`, which converts in the *session's* zone. When the two
 * zones differ by hours, the bounds sit hours away from the calls and whole slices read nothing.
 *
 * The measurement: over the most recent rows, `UNIX_TIMESTAMP(call_date) - start_epoch` (both in the
 * session's zone) is about 0 when the zones agree. Its median is the *difference*: positive when
 * `call_date` runs ahead of the session's local time, i.e. was written in a zone east of the session's.
 * Example: session UTC, VICIdial writing at UTC+08:00 → call_date reads 8 h late in UTC →
 * difference = +28800 s, and the zone to set is session offset + difference = +08:00. (The session's
 * zone is then 28800 s *behind* the writer's: the same fact with the opposite sign.)
 */

export type TimeZoneStatus = 'ok' | 'mismatch' | 'unknown';

/** One row's evidence. */
export interface TimeZoneSample {
  /** UNIX_TIMESTAMP(call_date) - start_epoch, in seconds, call_date read in the session's zone. */
  readonly differenceSeconds: number;
  /** The session zone's UTC offset changes within an hour of start_epoch: local time repeats or skips there. */
  readonly nearDstChange: boolean;
}

/** The database session's zone, as the server reports it. */
export interface SessionZone {
  /** @@session.time_zone: 'SYSTEM', '+08:00' or a named zone. */
  readonly timeZone: string;
  /** @@system_time_zone, the zone SYSTEM stands for (only meaningful when timeZone is SYSTEM). */
  readonly systemTimeZone: string | null;
  /** The session zone's UTC offset now, in seconds (east positive). */
  readonly offsetSeconds: number;
}

export interface TimeZoneReport {
  readonly status: TimeZoneStatus;
  /** @@session.time_zone. */
  readonly sessionTimeZone: string;
  /** @@system_time_zone when the session zone is SYSTEM, else null. */
  readonly systemTimeZone: string | null;
  /** The session zone's UTC offset now, e.g. '+00:00'. */
  readonly sessionOffset: string;
  /** Median UNIX_TIMESTAMP(call_date) - start_epoch: positive when call_date runs ahead of the session. */
  readonly differenceSeconds: number | null;
  /** The same as ±HH:MM (to the minute). */
  readonly difference: string | null;
  /** Rows the median was taken over. */
  readonly rowsUsed: number;
  /** Rows left out because they fall within an hour of a daylight-saving change of the session zone. */
  readonly rowsExcluded: number;
  /** For a mismatch: the UTC offset call_date appears to be written in, the VICIDIAL_DB_TIME_ZONE to set. */
  readonly suggestedTimeZone: string | null;
  /** One line for an operator; for a mismatch it names the fix. */
  readonly message: string;
}

/** Below this, a difference is clock skew (VICIdial tolerates ±8 s) or back-dated rows, not a zone. */
export const TIME_ZONE_MISMATCH_SECONDS = 900;
export const TIME_ZONE_SAMPLE_ROWS = 100;
/** Rows older than this say little about today's configuration; none at all → unknown. */
export const TIME_ZONE_RECENT_SECONDS = 7 * 86400;

/** The middle value (mean of the two middle ones for an even count, rounded); NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length % 2 === 1) return sorted[mid] as number;
  return Math.round(((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2);
}

/** Seconds as a UTC offset, ±HH:MM, rounded to the minute: 28800 → '+08:00', -16200 → '-04:30'. */
export function formatOffset(seconds: number): string {
  const minutes = Math.round(Math.abs(seconds) / 60);
  const sign = seconds < 0 && minutes > 0 ? '-' : '+';
  const hh = String(Math.floor(minutes / 60)).padStart(2, '0');
  const mm = String(minutes % 60).padStart(2, '0');
  return `${sign}${hh}:${mm}`;
}

/** Real zones sit on quarter hours; the measured difference carries seconds of clock skew. */
function toQuarterHour(seconds: number): number {
  return Math.round(seconds / 900) * 900;
}

function describeSession(session: SessionZone): string {
  const now = `now ${formatOffset(session.offsetSeconds)}`;
  return session.timeZone.toUpperCase() === 'SYSTEM' && session.systemTimeZone
    ? `SYSTEM (${session.systemTimeZone}, ${now})`
    : `${session.timeZone} (${now})`;
}

function signed(seconds: number): string {
  return `${seconds > 0 ? '+' : ''}${seconds}`;
}

/**
 * Judges the samples: `mismatch` only when the median difference reaches `thresholdSeconds` either
 * way, so back-dated rows (busy and disconnected calls carry their dial time) and small clock skews
 * never raise it. Rows near a daylight-saving change of the session zone are left out: there the
 * session cannot tell which of two local hours call_date meant.
 */
export function judgeTimeZone(
  samples: readonly TimeZoneSample[],
  session: SessionZone,
  options: { thresholdSeconds?: number } = {},
): TimeZoneReport {
  const threshold = options.thresholdSeconds ?? TIME_ZONE_MISMATCH_SECONDS;
  const used = samples.filter((s) => !s.nearDstChange && Number.isFinite(s.differenceSeconds));
  const base = {
    sessionTimeZone: session.timeZone,
    systemTimeZone: session.timeZone.toUpperCase() === 'SYSTEM' ? session.systemTimeZone : null,
    sessionOffset: formatOffset(session.offsetSeconds),
    rowsUsed: used.length,
    rowsExcluded: samples.length - used.length,
  };
  const zone = describeSession(session);
  if (used.length === 0) {
    return {
      ...base,
      status: 'unknown',
      differenceSeconds: null,
      difference: null,
      suggestedTimeZone: null,
      message:
        samples.length === 0
          ? `time zone not checked: no recent call with a start_epoch to compare call_date with (session zone ${zone})`
          : `time zone not checked: all ${samples.length} recent calls fall within an hour of a daylight-saving change (session zone ${zone})`,
    };
  }
  const difference = median(used.map((s) => s.differenceSeconds));
  const measured = `median UNIX_TIMESTAMP(call_date) - start_epoch ${signed(difference)} s over ${used.length} calls`;
  if (Math.abs(difference) < threshold) {
    return {
      ...base,
      status: 'ok',
      differenceSeconds: difference,
      difference: formatOffset(difference),
      suggestedTimeZone: null,
      message: `call_date agrees with the session time zone ${zone}: ${measured}`,
    };
  }
  const suggested = formatOffset(toQuarterHour(session.offsetSeconds + difference));
  const direction = difference > 0 ? 'ahead of' : 'behind';
  const by = formatOffset(Math.abs(difference)).slice(1);
  return {
    ...base,
    status: 'mismatch',
    differenceSeconds: difference,
    difference: formatOffset(difference),
    suggestedTimeZone: suggested,
    message:
      `call_date runs ${by} ${direction} the session time zone ${zone} ` +
      `(median ${signed(difference)} s over ${used.length} calls): reads miss calls; ` +
      `set VICIDIAL_DB_TIME_ZONE=${suggested} (or the named zone VICIdial runs in, e.g. America/New_York)`,
  };
}

interface SampleRow {
  difference: number | string | null;
  nearDstChange: number | string | null;
}

interface SessionRow {
  timeZone: string;
  systemTimeZone: string | null;
  offsetSeconds: number | string;
}

/** offset(t) = local seconds since 1970 - t: the session zone's UTC offset at epoch t (SQL). */
const offsetAt = (epoch: string) =>
  `(TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', FROM_UNIXTIME(${epoch})) - (${epoch}))`;

/**
 * The most recent rows through the call_date index (backwards over a bounded range, never a scan).
 * Epochs are cast to SIGNED: call_date earlier than start_epoch gives a negative difference, which
 * UNSIGNED arithmetic refuses as out of range.
 */
const SAMPLE_SQL =
  'SELECT CAST(UNIX_TIMESTAMP(call_date) AS SIGNED) - CAST(start_epoch AS SIGNED) AS difference, ' +
  `${offsetAt('CAST(start_epoch AS SIGNED) - 3600')} <> ${offsetAt('CAST(start_epoch AS SIGNED) + 3600')} AS nearDstChange ` +
  'FROM vicidial_log FORCE INDEX (call_date) ' +
  'WHERE call_date >= FROM_UNIXTIME(UNIX_TIMESTAMP() - ?) AND start_epoch > 0 ' +
  'ORDER BY call_date DESC LIMIT ?';

const SESSION_SQL =
  'SELECT @@session.time_zone AS timeZone, @@system_time_zone AS systemTimeZone, ' +
  "TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', NOW()) - UNIX_TIMESTAMP() AS offsetSeconds";

export async function readSessionZone(db: SqlClient, options: QueryOptions = {}): Promise<SessionZone> {
  const [row] = await db.query<SessionRow>(SESSION_SQL, [], options);
  if (!row) throw new Error('database returned no time zone');
  return {
    timeZone: String(row.timeZone),
    systemTimeZone: row.systemTimeZone === null ? null : String(row.systemTimeZone),
    offsetSeconds: Number(row.offsetSeconds),
  };
}

/** Measures the session zone against call_date over the ~100 most recent calls of the last week. */
export async function measureTimeZone(
  db: SqlClient,
  options: { sampleRows?: number; recentSeconds?: number; timeoutMs?: number } = {},
): Promise<TimeZoneReport> {
  const query = options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs };
  const session = await readSessionZone(db, query);
  const rows = await db.query<SampleRow>(
    SAMPLE_SQL,
    [options.recentSeconds ?? TIME_ZONE_RECENT_SECONDS, options.sampleRows ?? TIME_ZONE_SAMPLE_ROWS],
    query,
  );
  const samples: TimeZoneSample[] = rows
    .filter((r) => r.difference !== null)
    .map((r) => ({
      differenceSeconds: Number(r.difference),
      // NULL: an epoch FROM_UNIXTIME cannot convert; such a row cannot be judged either.
      nearDstChange: r.nearDstChange === null || Number(r.nearDstChange) !== 0,
    }));
  return judgeTimeZone(samples, session);
}
