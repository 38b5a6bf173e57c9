import type { Cursor } from './cursor';
import { CALL_COLUMNS, type CallRow } from './payload';

/**
 * The only queries the sync runs against VICIdial: read-only, parameterized, and bounded through the
 * `call_date` index so a MyISAM table of millions of rows is never scanned (a full scan holds a table
 * lock that stalls the dialer's own writes).
 */

export interface QueryOptions {
  /** The caller's time left for this query; the connection's query timeout never goes beyond it. */
  readonly timeoutMs?: number;
}

export interface SqlClient {
  query<T>(sql: string, values: readonly unknown[], options?: QueryOptions): Promise<T[]>;
}

export interface CallFilters {
  readonly minDurationSeconds: number;
  readonly campaigns: readonly string[];
  readonly excludeCampaigns: readonly string[];
}

export interface SliceRead {
  readonly cursor: Cursor;
  /** Latest end_epoch (inclusive) to return. */
  readonly sliceEnd: number;
  readonly limit: number;
  /** Longest call expected, in seconds: end_epoch > E implies call_date > FROM_UNIXTIME(E - lookback). */
  readonly lookbackSeconds: number;
}

/**
 * call_date is local time in the database's zone. Around a daylight-saving change local time repeats or
 * skips an hour, so an epoch bound converted with FROM_UNIXTIME can sit up to an hour on the wrong side
 * of a call's call_date: widen both ends of the call_date range by that much.
 */
export const TIME_ZONE_MARGIN_SECONDS = 3600;

const SELECT_COLUMNS = CALL_COLUMNS.map((c) => `\`${c}\``).join(', ');

function placeholders(n: number): string {
  return new Array(n).fill('?').join(', ');
}

export function buildSliceQuery(read: SliceRead, filters: CallFilters): { sql: string; values: unknown[] } {
  const { cursor, sliceEnd, limit, lookbackSeconds } = read;
  const values: unknown[] = [
    Math.max(0, cursor.endEpoch - lookbackSeconds - TIME_ZONE_MARGIN_SECONDS),
    sliceEnd + TIME_ZONE_MARGIN_SECONDS,
    sliceEnd,
    cursor.endEpoch,
    cursor.endEpoch,
    cursor.uniqueid,
    filters.minDurationSeconds,
  ];
  let campaignSql = '';
  if (filters.campaigns.length > 0) {
    campaignSql += ` AND campaign_id IN (${placeholders(filters.campaigns.length)})`;
    values.push(...filters.campaigns);
  }
  if (filters.excludeCampaigns.length > 0) {
    // A NULL campaign is not "another campaign": keep it so it ends as a dead letter, not silently unread.
    campaignSql += ` AND (campaign_id IS NULL OR campaign_id NOT IN (${placeholders(filters.excludeCampaigns.length)}))`;
    values.push(...filters.excludeCampaigns);
  }
  values.push(limit);
  // FROM_UNIXTIME runs in the database session's time zone, the one VICIdial wrote call_date in.
  // FORCE INDEX: on a small or young table the optimizer may prefer a scan, which on MyISAM locks
  // the table; the range read is always cheap enough.
  const sql =
    `SELECT ${SELECT_COLUMNS} FROM vicidial_log FORCE INDEX (call_date)` +
    ' WHERE call_date >= FROM_UNIXTIME(?) AND call_date <= FROM_UNIXTIME(?)' +
    ' AND end_epoch <= ?' +
    ' AND (end_epoch > ? OR (end_epoch = ? AND uniqueid > ?))' +
    " AND status IS NOT NULL AND status <> ''" +
    ' AND length_in_sec > ?' +
    campaignSql +
    ' ORDER BY end_epoch, uniqueid LIMIT ?';
  return { sql, values };
}

const BY_ID_CHUNK = 500;
const COUNT_SLICE_SECONDS = 6 * 3600;

function normalize<R extends CallRow>(row: R): R {
  // end_epoch is UNSIGNED INT and arrives as a number; keep the cursor arithmetic on plain numbers.
  return { ...row, end_epoch: Number(row.end_epoch) };
}

/** A row read by uniqueid, with where it stands against a cursor in the database's own order. */
export interface HeldRow extends CallRow {
  /** 1 when (end_epoch, uniqueid) is after the cursor, as `ORDER BY end_epoch, uniqueid` sees it. */
  beyond_cursor: number;
}

export class VicidialLog {
  constructor(
    private readonly db: SqlClient,
    private readonly filters: CallFilters,
    private readonly lookbackSeconds = 21_600,
  ) {}

  /** The database's clock: the one that stamped end_epoch. */
  async now(options?: QueryOptions): Promise<number> {
    const rows = await this.db.query<{ now: number | string }>('SELECT UNIX_TIMESTAMP() AS now', [], options);
    const now = Number(rows[0]?.now);
    if (!Number.isFinite(now)) throw new Error('database returned no UNIX_TIMESTAMP()');
    return Math.floor(now);
  }

  /** The next calls after the cursor, up to the slice end, in (end_epoch, uniqueid) order. */
  async readSlice(read: SliceRead, options?: QueryOptions): Promise<CallRow[]> {
    const { sql, values } = buildSliceQuery(read, this.filters);
    const rows = await this.db.query<CallRow>(sql, values, options);
    return rows.map(normalize);
  }

  /**
   * Rows by primary key, whatever their state: how held calls are looked at again. Each says whether it
   * now stands after `cursor`: compared by the database, whose collation orders the uniqueids.
   */
  async readByUniqueid(
    uniqueids: readonly string[],
    cursor: Cursor,
    options?: QueryOptions,
  ): Promise<HeldRow[]> {
    const out: HeldRow[] = [];
    for (let i = 0; i < uniqueids.length; i += BY_ID_CHUNK) {
      const chunk = uniqueids.slice(i, i + BY_ID_CHUNK);
      const rows = await this.db.query<HeldRow>(
        `SELECT ${SELECT_COLUMNS}, (end_epoch > ? OR (end_epoch = ? AND uniqueid > ?)) AS beyond_cursor` +
          ` FROM vicidial_log WHERE uniqueid IN (${placeholders(chunk.length)})`,
        [cursor.endEpoch, cursor.endEpoch, cursor.uniqueid, ...chunk],
        options,
      );
      out.push(...rows.map((r) => normalize({ ...r, beyond_cursor: Number(r.beyond_cursor) })));
    }
    return out;
  }

  /**
   * How many eligible calls end in [from, to): what a backward reset will post again. Read through the
   * call_date index like every read, a slice at a time.
   */
  async countEligible(fromEpoch: number, toEpoch: number, options?: QueryOptions): Promise<number> {
    let total = 0;
    for (let start = fromEpoch; start < toEpoch; start += COUNT_SLICE_SECONDS) {
      const end = Math.min(toEpoch, start + COUNT_SLICE_SECONDS) - 1;
      const { sql, values } = buildSliceQuery(
        {
          cursor: { endEpoch: start, uniqueid: '' },
          sliceEnd: end,
          limit: 0,
          lookbackSeconds: this.lookbackSeconds,
        },
        this.filters,
      );
      const counted = sql
        .replace(/^SELECT .* FROM vicidial_log/, 'SELECT COUNT(*) AS n FROM vicidial_log')
        .replace(/ ORDER BY end_epoch, uniqueid LIMIT \?$/, '');
      const rows = await this.db.query<{ n: number }>(counted, values.slice(0, -1), options);
      total += Number(rows[0]?.n ?? 0);
    }
    return total;
  }
}
