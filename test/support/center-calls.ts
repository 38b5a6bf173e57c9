import type { Connection, Pool } from 'mysql2/promise';
import { AUTO_STATUSES, COLUMNS, STATUS_MIX, seededRandom, type VicidialLogRow } from './sample-calls';

/**
 * A busy call center's vicidial_log as VICIdial writes it (see shared/reference/domain-facts.md), for
 * the benchmark and for tests that need the row life cycle rather than finished rows only:
 *
 * - **agent calls** (SALE, NI, CALLBK, XFER, DNC): inserted at answer with status QUEUE, no end, and
 *   `call_date = start_epoch` = the answer time (a manual dial: inserted at ringing as INCALL); INCALL
 *   once an agent takes it; at hangup `end_epoch` / `length_in_sec` are set and the status becomes
 *   DISPO; the final status comes with the agent's disposition a wrap-up time later, or never;
 * - **no answer** (NA, N): inserted complete about 70 s after dialing, call_date = start = end = the
 *   insert time, length 0;
 * - **busy / disconnected** (B, DC): inserted complete a few seconds after dialing with call_date
 *   back-dated to the dial time, start = end, length 0;
 * - **answering machine** (A): inserted complete at answer with end_epoch 3 s in the future, length 3;
 * - **played message / picked up** (PM, PU): inserted complete when they end, call_date back-dated to
 *   the answer;
 * - **drop from queue** (DROP): the QUEUE row inserted at answer is updated to DROP with an end.
 *
 * `rowsAsOf` gives each call's row exactly as it stands at one instant: absent before its insert, then
 * in whichever state its last write left it. Calls are dialed at an even rate; the status mix is
 * sample-calls' STATUS_MIX (73 % dialer outcomes, 27 % agent calls).
 */

export interface CenterOptions {
  /** Calls dialed per minute: each becomes one vicidial_log row. */
  readonly callsPerMinute: number;
  /** Dial times in [fromEpoch, toEpoch). */
  readonly fromEpoch: number;
  readonly toEpoch: number;
  /** Default 1. */
  readonly seed?: number;
  /** Default ['SALESA', 'SALESB', 'RETENT']. */
  readonly campaigns?: readonly string[];
  /** Dialer servers, each with its own uniqueid counter; default 3. */
  readonly servers?: number;
  /**
   * Agent talk times: 20 s plus an exponential tail, averaging `meanTalkSeconds` (default 180) and
   * cut at `maxTalkSeconds` (default 900): most calls are short, a few last the full 15 minutes.
   */
  readonly meanTalkSeconds?: number;
  readonly maxTalkSeconds?: number;
  /** Agent calls whose disposition is never submitted (they stay DISPO), default 0.005. */
  readonly neverDispositionedFraction?: number;
}

/** One call's whole life: the instants of its writes and the row after each. */
export interface CenterCall {
  readonly uniqueid: string;
  readonly dialAt: number;
  /** When its row is inserted. */
  readonly insertAt: number;
  /** When its row reaches its final status; undefined: never (a disposition never submitted). */
  readonly finalAt: number | undefined;
  readonly finalStatus: string;
  readonly agent: boolean;
  /** The row as it stands at `at`, or undefined before it is inserted. */
  rowAt(at: number): VicidialLogRow | undefined;
}

const AGENTS = 200;

/** Counters far apart, some close to a power of ten (as in sample-calls), one per dialer server. */
const COUNTER_BASES = [95, 9_970, 99_900, 4_321, 712_000];

function pickStatus(roll: number): string {
  let left = roll * 100;
  for (const [status, percent] of STATUS_MIX) {
    left -= percent;
    if (left < 0) return status;
  }
  return 'NA';
}

/**
 * The calls dialed in [fromEpoch, toEpoch), one minute of dial time at a time, in dial order.
 * Deterministic for a seed; each minute yields the calls dialed in it.
 */
export function* centerCalls(opts: CenterOptions): Generator<CenterCall[]> {
  const random = seededRandom(opts.seed ?? 1);
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const campaigns = opts.campaigns?.length ? opts.campaigns : ['SALESA', 'SALESB', 'RETENT'];
  const servers = Math.max(1, Math.floor(opts.servers ?? 3));
  const maxTalk = Math.max(20, opts.maxTalkSeconds ?? 900);
  const meanTail = Math.max(1, (opts.meanTalkSeconds ?? 180) - 20);
  const never = opts.neverDispositionedFraction ?? 0.005;
  const counters = Array.from(
    { length: servers },
    (_, s) => (COUNTER_BASES[s % COUNTER_BASES.length] ?? 100) * (1 + Math.floor(s / COUNTER_BASES.length)),
  );
  let lead = 300_000;
  // Calls per minute need not divide evenly: carry the fraction over.
  let owed = 0;
  for (let minute = opts.fromEpoch; minute < opts.toEpoch; minute += 60) {
    const seconds = Math.min(60, opts.toEpoch - minute);
    owed += (opts.callsPerMinute * seconds) / 60;
    const count = Math.floor(owed);
    owed -= count;
    const dials = Array.from({ length: count }, () => minute + int(0, seconds - 1)).sort((a, b) => a - b);
    const calls: CenterCall[] = [];
    for (const dialAt of dials) {
      const server = int(0, servers - 1);
      counters[server] = (counters[server] ?? 0) + int(1, 4);
      calls.push(
        makeCenterCall({
          uniqueid: `${dialAt}.${counters[server]}`,
          dialAt,
          leadId: lead++,
          status: pickStatus(random()),
          ring: int(5, 25),
          talk: Math.min(maxTalk, 20 + Math.round(-Math.log(1 - random()) * meanTail)),
          short: int(1, 30),
          take: int(0, 3),
          wrap: int(3, 90),
          noAnswerAfter: int(62, 78),
          busyAfter: int(2, 15),
          manual: random() < 0.1,
          neverDispositioned: random() < never,
          campaign: campaigns[int(0, campaigns.length - 1)] ?? 'SALESA',
          listId: int(1000, 1005),
          phone: `${int(2, 9)}${String(int(0, 99)).padStart(2, '0')}${int(2, 9)}${String(int(0, 999_999)).padStart(6, '0')}`,
          user: `agent${String(int(1, AGENTS)).padStart(3, '0')}`,
          callerHungUp: random() < 0.55,
          calledCount: int(1, 8),
        }),
      );
    }
    yield calls;
  }
}

interface Draw {
  uniqueid: string;
  dialAt: number;
  leadId: number;
  status: string;
  ring: number;
  talk: number;
  short: number;
  take: number;
  wrap: number;
  noAnswerAfter: number;
  busyAfter: number;
  manual: boolean;
  neverDispositioned: boolean;
  campaign: string;
  listId: number;
  phone: string;
  user: string;
  callerHungUp: boolean;
  calledCount: number;
}

function makeCenterCall(d: Draw): CenterCall {
  const auto = AUTO_STATUSES.has(d.status);
  const answerAt = d.dialAt + d.ring;
  const base = (status: string, callDate: number, end: number | null, length: number | null) => ({
    uniqueid: d.uniqueid,
    lead_id: d.leadId,
    list_id: d.listId,
    campaign_id: d.campaign,
    // The database computes FROM_UNIXTIME(start_epoch) in its session zone, as VICIdial's writers do.
    call_date: null,
    start_epoch: callDate,
    end_epoch: end,
    length_in_sec: length,
    status,
    phone_code: '1',
    phone_number: d.phone,
    user: auto ? 'VDAD' : d.user,
    comments: d.manual && !auto ? 'MANUAL' : 'AUTO',
    processed: 'N' as const,
    user_group: 'AGENTS',
    term_reason: termReason(d.status, auto, d.callerHungUp),
    alt_dial: 'MAIN',
    called_count: d.calledCount,
  });
  // Each stage: from `at` on, the row is `row` (stages in time order; the last one is final).
  let stages: { at: number; row: VicidialLogRow }[];
  if (!auto) {
    const start = d.manual ? d.dialAt : answerAt;
    const end = answerAt + d.talk;
    const length = end - start;
    stages = d.manual
      ? [{ at: d.dialAt, row: base('INCALL', start, null, null) }]
      : [
          { at: answerAt, row: base('QUEUE', start, null, null) },
          { at: answerAt + d.take, row: base('INCALL', start, null, null) },
        ];
    stages.push({ at: end, row: base('DISPO', start, end, length) });
    if (!d.neverDispositioned) stages.push({ at: end + d.wrap, row: base(d.status, start, end, length) });
  } else if (d.status === 'NA' || d.status === 'N') {
    const at = d.dialAt + d.noAnswerAfter;
    stages = [{ at, row: base(d.status, at, at, 0) }];
  } else if (d.status === 'B' || d.status === 'DC') {
    stages = [{ at: d.dialAt + d.busyAfter, row: base(d.status, d.dialAt, d.dialAt, 0) }];
  } else if (d.status === 'A') {
    stages = [{ at: answerAt, row: base('A', answerAt, answerAt + 3, 3) }];
  } else if (d.status === 'DROP') {
    const end = answerAt + d.short;
    stages = [
      { at: answerAt, row: base('QUEUE', answerAt, null, null) },
      { at: end, row: base('DROP', answerAt, end, d.short) },
    ];
  } else {
    // PU, PM and any other dialer outcome: written complete when it ends, back-dated to the answer.
    const end = answerAt + d.short;
    stages = [{ at: end, row: base(d.status, answerAt, end, d.short) }];
  }
  const last = stages[stages.length - 1] as { at: number; row: VicidialLogRow };
  const final = last.row.status === d.status;
  return {
    uniqueid: d.uniqueid,
    dialAt: d.dialAt,
    insertAt: (stages[0] as { at: number }).at,
    finalAt: final ? last.at : undefined,
    finalStatus: d.status,
    agent: !auto,
    rowAt(at: number) {
      let row: VicidialLogRow | undefined;
      for (const s of stages) {
        if (s.at > at) break;
        row = s.row;
      }
      return row ? { ...row } : undefined;
    },
  };
}

function termReason(status: string, auto: boolean, callerHungUp: boolean): VicidialLogRow['term_reason'] {
  if (!auto) return callerHungUp ? 'CALLER' : 'AGENT';
  switch (status) {
    case 'DROP':
      return 'ABANDON';
    case 'PU':
      return 'CALLER';
    case 'PM':
      return 'SYSTEM';
    default:
      return 'NONE';
  }
}

/** The rows of `calls` as they stand at `asOf`, in insert order (calls not inserted yet are left out). */
export function rowsAsOf(calls: readonly CenterCall[], asOf: number): VicidialLogRow[] {
  const present = calls.filter((c) => c.insertAt <= asOf);
  present.sort((a, b) => a.insertAt - b.insertAt);
  return present.map((c) => c.rowAt(asOf) as VicidialLogRow);
}

/**
 * What VICIdial writes to vicidial_log after `from` up to `to`: the rows inserted in between, and the
 * rows whose status, end or length changed (each as it stands at `to`).
 */
export function writesBetween(calls: readonly CenterCall[], from: number, to: number): VicidialLogRow[] {
  const out: VicidialLogRow[] = [];
  for (const call of calls) {
    const after = call.rowAt(to);
    if (!after) continue;
    const before = call.rowAt(from);
    if (
      !before ||
      before.status !== after.status ||
      before.end_epoch !== after.end_epoch ||
      before.length_in_sec !== after.length_in_sec
    ) {
      out.push(after);
    }
  }
  return out;
}

const PLAIN = /^[A-Za-z0-9 _.:-]*$/;

function literal(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`not a finite number: ${value}`);
    return String(value);
  }
  const text = String(value);
  // Only plain text is written inline; anything else is refused rather than escaped by hand.
  if (!PLAIN.test(text)) throw new Error(`bulk insert takes plain values only, got ${JSON.stringify(text)}`);
  return `'${text}'`;
}

/**
 * A multi-row INSERT of plain rows (what centerCalls makes: no quotes or unicode), written as literals:
 * several times faster than placeholders for a million rows. call_date, when null, is computed by the
 * database as FROM_UNIXTIME(start_epoch) in its session zone.
 */
export function bulkInsertSql(rows: readonly VicidialLogRow[]): string {
  const columns = [...COLUMNS, 'call_date'].map((c) => `\`${c}\``).join(', ');
  const tuples = rows.map((row) => {
    const values = COLUMNS.map((c) => literal(row[c]));
    values.push(
      row.call_date === null ? `FROM_UNIXTIME(${literal(row.start_epoch)})` : literal(row.call_date),
    );
    return `(${values.join(', ')})`;
  });
  return `INSERT INTO vicidial_log (${columns}) VALUES ${tuples.join(', ')}`;
}

export async function bulkInsert(conn: Connection | Pool, rows: readonly VicidialLogRow[]): Promise<void> {
  if (rows.length > 0) await conn.query(bulkInsertSql(rows));
}

/** New rows inserted, known ones updated in place (status, end, length), as VICIdial's UPDATEs do. */
export async function bulkUpsert(conn: Connection | Pool, rows: readonly VicidialLogRow[]): Promise<void> {
  if (rows.length === 0) return;
  await conn.query(
    `${bulkInsertSql(rows)} ON DUPLICATE KEY UPDATE status = VALUES(status), end_epoch = VALUES(end_epoch),` +
      ' length_in_sec = VALUES(length_in_sec)',
  );
}
