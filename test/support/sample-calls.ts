import type { Connection, Pool } from 'mysql2/promise';

/**
 * Realistic vicidial_log rows for tests, the demo and the benchmark: an outbound campaign's status mix,
 * many calls ending in the same second, Asterisk-style uniqueids from several dialer servers, agent
 * calls left INCALL, and awkward rows.
 */
export interface VicidialLogRow {
  uniqueid: string;
  lead_id: number;
  list_id: number | null;
  campaign_id: string | null;
  /**
   * 'YYYY-MM-DD HH:MM:SS' in the database server's local zone. null: the database fills it with
   * FROM_UNIXTIME(start_epoch) in its own session zone, as VICIdial's writers do.
   */
  call_date: string | null;
  start_epoch: number | null;
  end_epoch: number | null;
  length_in_sec: number | null;
  status: string | null;
  phone_code: string | null;
  phone_number: string | null;
  user: string | null;
  comments: string | null;
  processed: 'Y' | 'N' | null;
  user_group: string | null;
  term_reason: 'CALLER' | 'AGENT' | 'QUEUETIMEOUT' | 'ABANDON' | 'AFTERHOURS' | 'NONE' | 'SYSTEM' | null;
  alt_dial: string | null;
  called_count: number | null;
}

/** Weights in percent of an outbound campaign's finished calls. */
export const STATUS_MIX: readonly (readonly [status: string, percent: number])[] = [
  ['NA', 35],
  ['B', 8],
  ['A', 15],
  ['DROP', 4],
  ['DC', 3],
  ['N', 5],
  ['SALE', 5],
  ['NI', 12],
  ['CALLBK', 5],
  ['XFER', 3],
  ['DNC', 2],
  ['PU', 2],
  ['PM', 1],
];

/** Outcomes the dialer writes itself (user VDAD, a few seconds long); the rest are agent dispositions. */
export const AUTO_STATUSES: ReadonlySet<string> = new Set(['NA', 'B', 'A', 'DROP', 'DC', 'N', 'PU', 'PM']);

export const AWKWARD_COMMENTS = 'It\'s "quoted" \\ back\\slash 😀 ünïcödé';

/** Exactly 255 characters (code points), the column's limit, with multi-byte ones up to the end. */
export const LONG_COMMENTS = Array.from(AWKWARD_COMMENTS.repeat(8)).slice(0, 255).join('');

/** mulberry32: small, seedable, good enough for test data. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * One finished agent call (NI) ending at `end_epoch`; `seq` makes its uniqueid, lead and phone number
 * unique. Overrides win, including explicit nulls.
 */
export function makeCall(
  overrides: Partial<VicidialLogRow> & { end_epoch: number },
  seq = 0,
): VicidialLogRow {
  const length =
    overrides.length_in_sec !== undefined
      ? overrides.length_in_sec
      : typeof overrides.start_epoch === 'number'
        ? overrides.end_epoch - overrides.start_epoch
        : 20 + (seq % 40);
  const start =
    overrides.start_epoch !== undefined ? overrides.start_epoch : overrides.end_epoch - (length ?? 0);
  return {
    uniqueid: `${start ?? overrides.end_epoch}.${seq}`,
    lead_id: 100_000 + seq,
    list_id: 1001,
    campaign_id: 'SALESA',
    call_date: null,
    start_epoch: start,
    length_in_sec: length,
    status: 'NI',
    phone_code: '1',
    phone_number: String(5_550_000_000 + seq),
    user: 'agent001',
    comments: 'AUTO',
    processed: 'N',
    user_group: 'AGENTS',
    term_reason: 'CALLER',
    alt_dial: 'MAIN',
    called_count: 1,
    ...overrides,
  };
}

export interface GenerateOptions {
  count: number;
  /** First and last possible end_epoch, inclusive; toEpoch <= fromEpoch puts every call on fromEpoch. */
  fromEpoch: number;
  toEpoch: number;
  /** Default 1. */
  seed?: number;
  /** Default ['SALESA', 'SALESB', 'RETENT']. */
  campaigns?: string[];
  /** Average calls sharing one end_epoch, default 4 (more when the span is too short for the count). */
  tiesPerSecond?: number;
  /** Fraction of agent-handled calls still INCALL (hung up, disposition not yet submitted), default 0. */
  incallFraction?: number;
  /** Fraction of rows with NULL or empty phone numbers, quotes/backslashes/emoji or 255-character comments, default 0. */
  awkwardFraction?: number;
  /** Dialer servers, each with its own uniqueid counter, default 3. */
  servers?: number;
}

// Counters far apart and some just below a power of ten, so one second's uniqueids mix lengths
// ("x.98" > "x.10012" as strings) and a counter crosses a digit boundary during a run.
const COUNTER_BASES = [95, 9_970, 99_900, 4_321, 712_000];

/**
 * Deterministic for a seed. Rows come in the order VICIdial would insert them: dialer outcomes when
 * they end, agent calls when they connect; lead_id increases in that order.
 */
export function generateCalls(opts: GenerateOptions): VicidialLogRow[] {
  const { count, fromEpoch, toEpoch } = opts;
  if (!Number.isInteger(count) || count < 0)
    throw new Error(`count must be a non-negative integer: ${count}`);
  const random = seededRandom(opts.seed ?? 1);
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const campaigns = opts.campaigns?.length ? opts.campaigns : ['SALESA', 'SALESB', 'RETENT'];
  const servers = Math.max(1, Math.floor(opts.servers ?? 3));
  const ties = Math.max(1, opts.tiesPerSecond ?? 4);
  const incallFraction = opts.incallFraction ?? 0;
  const awkwardFraction = opts.awkwardFraction ?? 0;
  // An empty or inverted range (a caller's "from the cursor to now" right after a run) puts every call
  // on fromEpoch rather than failing.
  const span = Math.max(1, toEpoch - fromEpoch + 1);
  // Calls land in `slots` shared seconds, `ties` per slot on average; slots spread evenly over the span.
  const slots = Math.max(1, Math.round(count / ties));

  const drafts: { row: VicidialLogRow; server: number; insertAt: number; index: number }[] = [];
  for (let index = 0; index < count; index++) {
    // Every row draws the same number of values whatever the options, so changing a fraction changes
    // only the rows it concerns, not the whole data set.
    const end = fromEpoch + Math.floor((int(0, slots - 1) * span) / slots);
    let status = pickStatus(random());
    const auto = AUTO_STATUSES.has(status);
    const length = auto ? int(1, 30) : int(20, 900);
    const incall = random() < incallFraction;
    const server = int(0, servers - 1);
    const listId = int(1000, 1005);
    const campaign = campaigns[int(0, campaigns.length - 1)] ?? 'SALESA';
    const phone = `${int(2, 9)}${int(0, 99).toString().padStart(2, '0')}${int(2, 9)}${int(0, 999_999)
      .toString()
      .padStart(6, '0')}`;
    const agent = `agent${String(int(1, 40)).padStart(3, '0')}`;
    const manual = random() < 0.1;
    const reasonRoll = random();
    const calledCount = int(1, 8);
    const awkward = random() < awkwardFraction;
    const awkwardKind = int(0, 3);

    if (!auto && incall) status = 'INCALL';
    const start = end - length;
    const row: VicidialLogRow = {
      uniqueid: '',
      lead_id: 0,
      list_id: listId,
      campaign_id: campaign,
      call_date: null,
      start_epoch: start,
      end_epoch: end,
      length_in_sec: length,
      status,
      phone_code: '1',
      phone_number: phone,
      user: auto ? 'VDAD' : agent,
      comments: !auto && manual ? 'MANUAL' : 'AUTO',
      processed: 'N',
      user_group: 'AGENTS',
      term_reason: termReason(status, auto, reasonRoll),
      alt_dial: 'MAIN',
      called_count: calledCount,
    };
    if (awkward) {
      if (awkwardKind === 0) row.phone_number = null;
      else if (awkwardKind === 1) row.phone_number = '';
      else if (awkwardKind === 2) row.comments = AWKWARD_COMMENTS;
      else row.comments = LONG_COMMENTS;
    }
    drafts.push({ row, server, insertAt: auto ? end : start, index });
  }

  // Asterisk numbers channels as they start, so each server's counter follows start order, not end order.
  const counters = Array.from(
    { length: servers },
    (_, s) => (COUNTER_BASES[s % COUNTER_BASES.length] ?? 100) * (1 + Math.floor(s / COUNTER_BASES.length)),
  );
  const used = new Set<string>();
  const byStart = [...drafts].sort(
    (a, b) => (a.row.start_epoch ?? 0) - (b.row.start_epoch ?? 0) || a.index - b.index,
  );
  for (const d of byStart) {
    // Several channels (customer leg, agent leg, local channels) take numbers per call.
    let uniqueid: string;
    do {
      counters[d.server] = (counters[d.server] ?? 0) + int(1, 4);
      uniqueid = `${d.row.start_epoch}.${counters[d.server]}`;
    } while (used.has(uniqueid));
    used.add(uniqueid);
    d.row.uniqueid = uniqueid;
  }

  drafts.sort((a, b) => a.insertAt - b.insertAt || a.index - b.index);
  return drafts.map((d, i) => {
    d.row.lead_id = 200_000 + i;
    return d.row;
  });
}

function pickStatus(roll: number): string {
  let left = roll * 100;
  for (const [status, percent] of STATUS_MIX) {
    left -= percent;
    if (left < 0) return status;
  }
  return 'NA';
}

function termReason(status: string, auto: boolean, roll: number): VicidialLogRow['term_reason'] {
  if (!auto) return roll < 0.55 ? 'CALLER' : 'AGENT';
  switch (status) {
    case 'DROP':
      return roll < 0.7 ? 'ABANDON' : 'QUEUETIMEOUT';
    case 'PU':
      return 'CALLER';
    case 'PM':
      return 'SYSTEM';
    default:
      return 'NONE';
  }
}

/** vicidial_log's columns as the stand-ins insert them (call_date is computed by the database). */
export const COLUMNS = [
  'uniqueid',
  'lead_id',
  'list_id',
  'campaign_id',
  'start_epoch',
  'end_epoch',
  'length_in_sec',
  'status',
  'phone_code',
  'phone_number',
  'user',
  'comments',
  'processed',
  'user_group',
  'term_reason',
  'alt_dial',
  'called_count',
] as const;

/**
 * Multi-row parameterized INSERTs. call_date is never computed on this host: the database evaluates
 * FROM_UNIXTIME(start_epoch) in its session zone, as VICIdial's call_date is the server's local time.
 * An explicit row.call_date is kept unless `timeZoneAware` is true, which always lets the database
 * compute it.
 */
export async function insertCalls(
  conn: Connection | Pool,
  rows: readonly VicidialLogRow[],
  options: { chunkSize?: number; timeZoneAware?: boolean } = {},
): Promise<void> {
  const chunkSize = Math.max(1, Math.floor(options.chunkSize ?? 1000));
  const callDate = options.timeZoneAware ? 'FROM_UNIXTIME(?)' : 'COALESCE(?, FROM_UNIXTIME(?))';
  const tuple = `(${COLUMNS.map(() => '?').join(', ')}, ${callDate})`;
  const columnList = [...COLUMNS, 'call_date'].map((c) => `\`${c}\``).join(', ');
  for (let i = 0; i < rows.length; i += chunkSize) {
    const chunk = rows.slice(i, i + chunkSize);
    const values: unknown[] = [];
    for (const row of chunk) {
      for (const c of COLUMNS) values.push(row[c]);
      if (!options.timeZoneAware) values.push(row.call_date);
      values.push(row.start_epoch);
    }
    // query(), not execute(): client-side placeholders have no 65,535-parameter limit per statement.
    await conn.query(
      `INSERT INTO vicidial_log (${columnList}) VALUES ${chunk.map(() => tuple).join(', ')}`,
      values,
    );
  }
}

/** The agent submits the disposition screen. */
export async function setStatus(conn: Connection | Pool, uniqueid: string, status: string): Promise<void> {
  await conn.query('UPDATE vicidial_log SET status = ? WHERE uniqueid = ?', [status, uniqueid]);
}
