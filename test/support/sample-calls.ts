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
  /** null: the database fills it with FROM_UNIXTIME(start_epoch), in its own time zone, as VICIdial does. */
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

const AUTO_STATUSES = new Set(['NA', 'B', 'A', 'DROP', 'DC', 'PU', 'PM', 'N']);
const STATUS_MIX: [string, number][] = [
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

export const AWKWARD_COMMENTS = 'It\'s "quoted" \\ back\\slash 😀 ünïcödé';

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

/** One finished call ending at `end_epoch`; `seq` makes its uniqueid and lead unique. */
export function makeCall(
  overrides: Partial<VicidialLogRow> & { end_epoch: number },
  seq = 0,
): VicidialLogRow {
  const length = overrides.length_in_sec === undefined ? 20 + (seq % 40) : overrides.length_in_sec;
  const start = overrides.start_epoch ?? overrides.end_epoch - (length ?? 0);
  return {
    uniqueid: `${start}.${seq}`,
    lead_id: 100_000 + seq,
    list_id: 1001,
    campaign_id: 'SALESA',
    call_date: null,
    start_epoch: start,
    length_in_sec: length,
    status: 'NI',
    phone_code: '1',
    phone_number: String(5550000000 + seq),
    user: 'agent001',
    comments: null,
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
  fromEpoch: number;
  toEpoch: number;
  seed?: number;
  campaigns?: string[];
  /** Average calls sharing one end_epoch. */
  tiesPerSecond?: number;
  /** Fraction of agent calls still INCALL (disposition not yet submitted). */
  incallFraction?: number;
  /** Fraction of rows with NULL/empty phone numbers, odd comments and long texts. */
  awkwardFraction?: number;
  servers?: number;
}

function pick(random: () => number): string {
  let roll = random() * STATUS_MIX.reduce((a, [, w]) => a + w, 0);
  for (const [status, weight] of STATUS_MIX) {
    roll -= weight;
    if (roll < 0) return status;
  }
  return 'NA';
}

/** Deterministic for a seed; end epochs spread over [fromEpoch, toEpoch] in clusters of ties. */
export function generateCalls(opts: GenerateOptions): VicidialLogRow[] {
  const random = seededRandom(opts.seed ?? 1);
  const campaigns = opts.campaigns ?? ['SALESA', 'SALESB', 'RETENT'];
  const servers = opts.servers ?? 3;
  const ties = Math.max(1, opts.tiesPerSecond ?? 4);
  const counters = Array.from({ length: servers }, (_, i) => 100 + i * 7);
  const span = Math.max(1, opts.toEpoch - opts.fromEpoch);
  const rows: VicidialLogRow[] = [];
  for (let i = 0; i < opts.count; i++) {
    // Calls cluster on shared seconds: pick a second, then up to ~2x `ties` calls land on it.
    const cluster = Math.floor(random() * Math.max(1, Math.floor((opts.count / ties) * 1.0)));
    const end = opts.fromEpoch + Math.floor((cluster / Math.max(1, opts.count / ties)) * span);
    let status = pick(random);
    const auto = AUTO_STATUSES.has(status);
    const length = auto ? 1 + Math.floor(random() * 30) : 20 + Math.floor(random() * 880);
    if (!auto && random() < (opts.incallFraction ?? 0)) status = 'INCALL';
    const server = Math.floor(random() * servers);
    counters[server] = (counters[server] ?? 0) + 1 + Math.floor(random() * 3);
    const start = end - length;
    const row: VicidialLogRow = {
      uniqueid: `${start}.${server}${counters[server]}`,
      lead_id: 200_000 + i,
      list_id: 1000 + Math.floor(random() * 6),
      campaign_id: campaigns[Math.floor(random() * campaigns.length)] ?? 'SALESA',
      call_date: null,
      start_epoch: start,
      end_epoch: end,
      length_in_sec: length,
      status,
      phone_code: '1',
      phone_number: String(2000000000 + Math.floor(random() * 7999999999)),
      user: auto ? 'VDAD' : `agent${String(1 + Math.floor(random() * 40)).padStart(3, '0')}`,
      comments: auto ? null : random() < 0.3 ? 'callback requested' : null,
      processed: 'N',
      user_group: 'AGENTS',
      term_reason: auto ? (status === 'DROP' ? 'ABANDON' : 'NONE') : random() < 0.5 ? 'CALLER' : 'AGENT',
      alt_dial: 'MAIN',
      called_count: 1 + Math.floor(random() * 8),
    };
    if (random() < (opts.awkwardFraction ?? 0)) {
      const kind = Math.floor(random() * 4);
      if (kind === 0) row.phone_number = null;
      else if (kind === 1) row.phone_number = '';
      else if (kind === 2) row.comments = AWKWARD_COMMENTS;
      else row.comments = 'x'.repeat(200) + AWKWARD_COMMENTS.repeat(2).slice(0, 50);
    }
    rows.push(row);
  }
  // Unique ids even when two generated calls collide on start second and counter.
  const seen = new Set<string>();
  for (const row of rows) {
    while (seen.has(row.uniqueid)) row.uniqueid = `${row.uniqueid}1`.slice(0, 20);
    seen.add(row.uniqueid);
  }
  return rows;
}

const COLUMNS = [
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
 * Inserts rows with parameterized multi-row INSERTs. call_date is computed by the database
 * (FROM_UNIXTIME in its session zone) unless given, as VICIdial writes it in the server's local time.
 */
export async function insertCalls(
  conn: Connection | Pool,
  rows: readonly VicidialLogRow[],
  options: { chunkSize?: number } = {},
): Promise<void> {
  const chunkSize = options.chunkSize ?? 1000;
  const tuple = `(${COLUMNS.map(() => '?').join(', ')}, COALESCE(?, FROM_UNIXTIME(?)))`;
  for (let i = 0; i < rows.length; i += chunkSize) {
    const chunk = rows.slice(i, i + chunkSize);
    const values: unknown[] = [];
    for (const row of chunk) {
      for (const c of COLUMNS) values.push(row[c]);
      values.push(row.call_date, row.start_epoch);
    }
    await conn.query(
      `INSERT INTO vicidial_log (${COLUMNS.map((c) => `\`${c}\``).join(', ')}, call_date) VALUES ${chunk.map(() => tuple).join(', ')}`,
      values,
    );
  }
}

/** The agent submits the disposition screen. */
export async function setStatus(conn: Connection | Pool, uniqueid: string, status: string): Promise<void> {
  await conn.query('UPDATE vicidial_log SET status = ? WHERE uniqueid = ?', [status, uniqueid]);
}
