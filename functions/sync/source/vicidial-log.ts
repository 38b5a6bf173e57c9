import type { Cursor } from '../calls/cursor';
import { CALL_COLUMNS, type CallRow } from '../calls/payload';
import { uniqueidPrefix } from '../calls/twins';
import type { QueryOptions, SqlClient } from './sql-client';
import { measureTimeZone, type TimeZoneReport } from './time-zone-check';

/**
 * The only queries the sync runs against VICIdial: read-only, parameterized, and bounded through the
 * `call_date` index so a MyISAM table of millions of rows is never scanned (a full scan holds a table
 * lock that stalls the dialer's own writes).
 */

export type { QueryOptions, SqlClient } from './sql-client';

export interface CallFilters {
  readonly minDurationSeconds: number;
  readonly campaigns: readonly string[];
  readonly excludeCampaigns: readonly string[];
  /** Upper-case statuses that are not final yet (INCALL, DISPO, QUEUE). */
  readonly transientStatuses: readonly string[];
}

/**
 * One chunk of the call_date-ordered scan: rows whose call_date is at or after `from` (a local
 * DATETIME string as the database returned it, or an epoch converted by the database) and at or
 * before `toEpoch`, in call_date order. Finished rows that can never be eligible (status final, length
 * not above the minimum) are left out by the query, but every row of the range is still read once.
 */
export interface ScanRead {
  readonly from: { readonly local: string; readonly inclusive: boolean } | { readonly epoch: number };
  readonly toEpoch: number;
  /** Rows at most; undefined reads one whole second (`from.local` exactly). */
  readonly limit: number | undefined;
}

export interface ScanRow extends CallRow {
  /** UNIX_TIMESTAMP(call_date), in the session's time zone. */
  cd_epoch: number;
}

const SELECT_COLUMNS = CALL_COLUMNS.map((c) => `\`${c}\``).join(', ');

function placeholders(n: number): string {
  return new Array(n).fill('?').join(', ');
}

function filterSql(filters: CallFilters, values: unknown[]): string {
  let sql = '';
  if (filters.campaigns.length > 0) {
    sql += ` AND campaign_id IN (${placeholders(filters.campaigns.length)})`;
    values.push(...filters.campaigns);
  }
  if (filters.excludeCampaigns.length > 0) {
    // A NULL campaign is not "another campaign": keep it so it ends as a dead letter, not silently unread.
    sql += ` AND (campaign_id IS NULL OR campaign_id NOT IN (${placeholders(filters.excludeCampaigns.length)}))`;
    values.push(...filters.excludeCampaigns);
  }
  return sql;
}

export function buildScanQuery(read: ScanRead, filters: CallFilters): { sql: string; values: unknown[] } {
  const values: unknown[] = [];
  let range: string;
  if (read.limit === undefined && 'local' in read.from) {
    range = 'call_date = ?';
    values.push(read.from.local);
  } else {
    if ('local' in read.from) {
      range = `call_date ${read.from.inclusive ? '>=' : '>'} ?`;
      values.push(read.from.local);
    } else {
      range = 'call_date >= FROM_UNIXTIME(?)';
      values.push(Math.max(0, read.from.epoch));
    }
    range += ' AND call_date <= FROM_UNIXTIME(?)';
    values.push(read.toEpoch);
  }
  // Rows that are finished yet can never be eligible are not worth returning (they are still read).
  let finished = "end_epoch IS NOT NULL AND status IS NOT NULL AND status <> ''";
  if (filters.transientStatuses.length > 0) {
    finished += ` AND UPPER(status) NOT IN (${placeholders(filters.transientStatuses.length)})`;
    values.push(...filters.transientStatuses);
  }
  values.push(filters.minDurationSeconds);
  const where = `${range} AND NOT (${finished} AND length_in_sec <= ?)${filterSql(filters, values)}`;
  // FORCE INDEX: on a small or young table the optimizer may prefer a scan, which on MyISAM locks the
  // table; the range read in index order stops after `limit` rows.
  let sql =
    `SELECT ${SELECT_COLUMNS}, UNIX_TIMESTAMP(call_date) AS cd_epoch FROM vicidial_log FORCE INDEX (call_date)` +
    ` WHERE ${where} ORDER BY call_date`;
  if (read.limit !== undefined) {
    sql += ' LIMIT ?';
    values.push(read.limit);
  }
  return { sql, values };
}

/**
 * Counts the eligible calls ending in [fromEpoch, toEpoch): what a backward reset will post again. The
 * call_date range (bounded by the lookback) keeps it on the index.
 */
export function buildCountQuery(
  fromEpoch: number,
  toEpoch: number,
  lookbackSeconds: number,
  filters: CallFilters,
): { sql: string; values: unknown[] } {
  const values: unknown[] = [
    Math.max(0, fromEpoch - lookbackSeconds - 3600),
    toEpoch + 3600,
    fromEpoch,
    toEpoch,
  ];
  let sql =
    'SELECT COUNT(*) AS n FROM vicidial_log FORCE INDEX (call_date)' +
    ' WHERE call_date >= FROM_UNIXTIME(?) AND call_date <= FROM_UNIXTIME(?)' +
    " AND end_epoch >= ? AND end_epoch < ? AND status IS NOT NULL AND status <> ''";
  if (filters.transientStatuses.length > 0) {
    sql += ` AND UPPER(status) NOT IN (${placeholders(filters.transientStatuses.length)})`;
    values.push(...filters.transientStatuses);
  }
  sql += ' AND length_in_sec > ?';
  values.push(filters.minDurationSeconds);
  sql += filterSql(filters, values);
  return { sql, values };
}

const BY_ID_CHUNK = 500;

function normalize<R extends CallRow>(row: R): R {
  // end_epoch is UNSIGNED INT and arrives as a number; keep the cursor arithmetic on plain numbers.
  return { ...row, end_epoch: Number(row.end_epoch) };
}

/**
 * The start-up read: rows with call_date in [fromEpoch, toEpoch) that may end at or after
 * `startEpoch` (still going, in an in-between state with a recent end, or finished after it), for a
 * new sync or a reset to follow. Bounded by the call_date range, not a row count: it returns few of the
 * rows it reads.
 */
export function buildAdoptQuery(
  fromEpoch: number,
  toEpoch: number,
  startEpoch: number,
  filters: CallFilters,
): { sql: string; values: unknown[] } {
  const values: unknown[] = [Math.max(0, fromEpoch), Math.max(0, toEpoch), startEpoch];
  let inBetween = "status IS NULL OR status = ''";
  if (filters.transientStatuses.length > 0) {
    inBetween += ` OR UPPER(status) IN (${placeholders(filters.transientStatuses.length)})`;
    values.push(...filters.transientStatuses);
  }
  let finished = "end_epoch IS NOT NULL AND status IS NOT NULL AND status <> ''";
  if (filters.transientStatuses.length > 0) {
    finished += ` AND UPPER(status) NOT IN (${placeholders(filters.transientStatuses.length)})`;
    values.push(...filters.transientStatuses);
  }
  values.push(filters.minDurationSeconds);
  const sql =
    `SELECT ${SELECT_COLUMNS}, UNIX_TIMESTAMP(call_date) AS cd_epoch FROM vicidial_log FORCE INDEX (call_date)` +
    ' WHERE call_date >= FROM_UNIXTIME(?) AND call_date < FROM_UNIXTIME(?)' +
    // Ends at or after the start point, or has no end yet (inserted at answer: no end, or end = start
    // and no length) while in an in-between state.
    ` AND (end_epoch >= ? OR ((end_epoch IS NULL OR end_epoch = 0 OR (COALESCE(length_in_sec, 0) = 0 AND end_epoch <= start_epoch)) AND (${inBetween})))` +
    ` AND NOT (${finished} AND length_in_sec <= ?)${filterSql(filters, values)} ORDER BY call_date`;
  return { sql, values };
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
    private readonly lookbackSeconds = 120,
  ) {}

  /** The database's clock: the one that stamped end_epoch. */
  async now(options?: QueryOptions): Promise<number> {
    const rows = await this.db.query<{ now: number | string }>('SELECT UNIX_TIMESTAMP() AS now', [], options);
    const now = Number(rows[0]?.now);
    if (!Number.isFinite(now)) throw new Error('database returned no UNIX_TIMESTAMP()');
    return Math.floor(now);
  }

  /** Whether call_date reads back in the session's zone as VICIdial wrote it (see time-zone-check.ts). */
  timeZone(options?: QueryOptions): Promise<TimeZoneReport> {
    return measureTimeZone(this.db, options?.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs });
  }

  /** One slice of the start-up read (see buildAdoptQuery). */
  async readAdopt(
    fromEpoch: number,
    toEpoch: number,
    startEpoch: number,
    options?: QueryOptions,
  ): Promise<ScanRow[]> {
    const { sql, values } = buildAdoptQuery(fromEpoch, toEpoch, startEpoch, this.filters);
    const rows = await this.db.query<ScanRow>(sql, values, options);
    return rows.map((r) => ({ ...normalize(r), cd_epoch: Number(r.cd_epoch) }));
  }

  /** One chunk of the call_date-ordered scan. */
  async readScan(read: ScanRead, options?: QueryOptions): Promise<ScanRow[]> {
    const { sql, values } = buildScanQuery(read, this.filters);
    const rows = await this.db.query<ScanRow>(sql, values, options);
    return rows.map((r) => ({ ...normalize(r), cd_epoch: Number(r.cd_epoch) }));
  }

  /**
   * Whether the session zone's UTC offset differs anywhere between `fromEpoch` and `toEpoch` (a
   * daylight-saving change): then local call_date values repeat or skip an hour there.
   */
  async offsetChanges(fromEpoch: number, toEpoch: number, options?: QueryOptions): Promise<boolean> {
    const offset = (p: string) => `TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', FROM_UNIXTIME(${p})) - ${p}`;
    const rows = await this.db.query<{ a: number; b: number }>(
      `SELECT ${offset('?')} AS a, ${offset('?')} AS b`,
      [Math.max(0, fromEpoch), Math.max(0, fromEpoch), Math.max(0, toEpoch), Math.max(0, toEpoch)],
      options,
    );
    return Number(rows[0]?.a) !== Number(rows[0]?.b);
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
   * Rows whose uniqueid shares this one's integer prefix (a range on the primary key): what VICIdial's
   * duplicate-row cleanup leaves of a twin it deleted.
   */
  async samePrefix(
    uniqueid: string,
    options?: QueryOptions,
  ): Promise<Pick<CallRow, 'uniqueid' | 'end_epoch' | 'lead_id'>[]> {
    const prefix = uniqueidPrefix(uniqueid);
    const rows = await this.db.query<Pick<CallRow, 'uniqueid' | 'end_epoch' | 'lead_id'>>(
      'SELECT uniqueid, end_epoch, lead_id FROM vicidial_log WHERE uniqueid >= ? AND uniqueid < ?',
      [`${prefix}.`, `${prefix}/`],
      options,
    );
    return rows.map((r) => ({ ...r, end_epoch: Number(r.end_epoch) }));
  }

  /**
   * The eligible calls ending in [fromEpoch, toEpoch), with their start: what a reset moves the cursor
   * over. call_date is bounded `startLookbackSeconds` before the range (the runs' start-up read reaches
   * that far) and an hour after it.
   */
  async eligibleEnding(
    fromEpoch: number,
    toEpoch: number,
    startLookbackSeconds: number,
    options?: QueryOptions,
  ): Promise<{ uniqueid: string; start_epoch: number; end_epoch: number }[]> {
    const values: unknown[] = [
      Math.max(0, fromEpoch - Math.max(startLookbackSeconds, this.lookbackSeconds + 3600)),
      toEpoch + 3600,
      fromEpoch,
      toEpoch,
    ];
    let sql =
      'SELECT uniqueid, start_epoch, end_epoch FROM vicidial_log FORCE INDEX (call_date)' +
      ' WHERE call_date >= FROM_UNIXTIME(?) AND call_date <= FROM_UNIXTIME(?)' +
      " AND end_epoch >= ? AND end_epoch < ? AND status IS NOT NULL AND status <> ''";
    if (this.filters.transientStatuses.length > 0) {
      sql += ` AND UPPER(status) NOT IN (${placeholders(this.filters.transientStatuses.length)})`;
      values.push(...this.filters.transientStatuses);
    }
    sql += ' AND length_in_sec > ?';
    values.push(this.filters.minDurationSeconds);
    sql += filterSql(this.filters, values);
    const rows = await this.db.query<{ uniqueid: string; start_epoch: number; end_epoch: number }>(
      sql,
      values,
      options,
    );
    return rows.map((r) => ({
      uniqueid: r.uniqueid,
      start_epoch: Number(r.start_epoch),
      end_epoch: Number(r.end_epoch),
    }));
  }

  /** How many eligible calls end in [from, to): what a backward reset will post again. */
  async countEligible(fromEpoch: number, toEpoch: number, options?: QueryOptions): Promise<number> {
    const { sql, values } = buildCountQuery(fromEpoch, toEpoch, this.lookbackSeconds, this.filters);
    const rows = await this.db.query<{ n: number }>(sql, values, options);
    return Number(rows[0]?.n ?? 0);
  }
}
