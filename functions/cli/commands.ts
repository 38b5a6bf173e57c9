import { parseArgs } from 'node:util';

/**
 * The `did-sync` command line as data: each command's options, usage and examples. Parsing is pure
 * (no settings, no I/O), so an unknown command or option is answered before anything is read, every
 * command has its own `--help`, and the README's examples are checked against these same specs.
 */

export const EXIT = { ok: 0, problem: 1, usage: 2 } as const;

interface OptionSpec {
  readonly type: 'boolean' | 'string';
  /** The placeholder shown in help, for string options. */
  readonly value?: string;
  readonly help: string;
}

export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  /** Positional arguments, in order (shown in the usage line). */
  readonly args?: readonly { readonly name: string; readonly help: string }[];
  readonly options: Readonly<Record<string, OptionSpec>>;
  readonly examples: readonly string[];
  /** What the exit codes mean for this command, beyond 2 = usage or settings. */
  readonly exit: string;
  /** Extra notes in the command's help. */
  readonly notes?: string;
}

const json: OptionSpec = {
  type: 'boolean',
  help: 'one JSON document on stdout (logs go to stderr)',
};
const sync: OptionSpec = {
  type: 'string',
  value: 'id',
  help: 'the sync to act on (instead of SYNC_ID; required when SYNCS lists several)',
};

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'run',
    summary: 'sync until caught up (or a limit)',
    options: {
      'dry-run': { type: 'boolean', help: 'read and map calls, post nothing, write nothing' },
      'max-batches': { type: 'string', value: 'N', help: 'stop after N batches' },
      'max-seconds': {
        type: 'string',
        value: 'S',
        help: 'stop reading after S seconds; ends within S + 2 s',
      },
      json,
      sync,
    },
    examples: ['did-sync run', 'did-sync run --dry-run --max-batches 1', 'did-sync run --max-seconds 50'],
    exit: '0 completed, partial or skipped (another run holds the lease); 1 the run failed',
  },
  {
    name: 'status',
    summary: 'is it healthy, and if not why: cursor, lag, lease, runs, held calls, dead letters',
    options: { json, sync },
    examples: ['did-sync status', 'did-sync status --json'],
    exit: '0 healthy; 1 the last run failed, or a warning (cursor ahead, database clock unavailable)',
  },
  {
    name: 'reset',
    summary: 'move the checkpoint',
    options: {
      to: {
        type: 'string',
        value: 'ISO-8601|epoch',
        help: 'the new cursor (epoch seconds, or ISO-8601 with a zone)',
      },
      force: { type: 'boolean', help: 'reset even while a run holds the lease (that run is fenced out)' },
      resend: {
        type: 'boolean',
        help: 'backward: post once more the calls the ledger records as delivered (counted and logged)',
      },
      'skip-undelivered': {
        type: 'boolean',
        help: 'forward: skip the eligible calls never delivered (reconcile reports them as skipped)',
      },
      'without-database': {
        type: 'boolean',
        help: "check the instant against this host's clock when the database cannot be reached",
      },
      json,
      sync,
    },
    examples: [
      'did-sync reset --to 2026-11-30T08:00:00Z',
      'did-sync reset --to 2026-11-30T08:00:00Z --resend',
      'did-sync reset --to 1796052439 --skip-undelivered',
      'did-sync reset --to 1796052439 --force',
    ],
    exit: '0 moved; 1 a run holds the lease',
    notes:
      "Refused (exit 2, nothing written) for an instant after the database's clock, before 2000, or in milliseconds.",
  },
  {
    name: 'dead-letters',
    summary: 'list rejected calls grouped by reason and campaign, or post them again',
    options: {
      replay: { type: 'boolean', help: 'post them again (takes the lease like a run)' },
      campaign: { type: 'string', value: 'id', help: 'only letters of this campaign' },
      reason: { type: 'string', value: 'text', help: 'only letters whose reason contains this text' },
      uniqueid: { type: 'string', value: 'id', help: 'only this call' },
      json,
      sync,
    },
    examples: [
      'did-sync dead-letters',
      'did-sync dead-letters --json',
      'did-sync dead-letters --replay --campaign RETENT',
      'did-sync dead-letters --replay --reason "HTTP 422" --uniqueid 1796052439.1234',
    ],
    exit: '0 listed, or every replayed letter delivered; 1 a replay stopped or another run holds the lease',
  },
  {
    name: 'check',
    summary: 'try the database, its grant and time zone, the API key and the checkpoint table; posts no call',
    options: { json, sync },
    examples: ['did-sync check', 'did-sync check --json'],
    exit: '0 no check failed (warnings allowed); 1 one did',
  },
  {
    name: 'reconcile',
    summary: 'count, per hour, eligible calls the ledger has not seen; --repair queues them',
    options: {
      since: {
        type: 'string',
        value: 'ISO|epoch',
        help: 'start of the range (epoch seconds or ISO-8601 with a zone)',
      },
      until: {
        type: 'string',
        value: 'ISO|epoch',
        help: 'end of the range, exclusive (default: the cursor)',
      },
      repair: { type: 'boolean', help: 'queue the missing calls for the next run' },
      json,
      sync,
    },
    examples: [
      'did-sync reconcile --since 2026-11-29T00:00:00Z',
      'did-sync reconcile --since 2026-11-29T00:00:00Z --until 2026-11-29T06:00:00Z --repair',
      'did-sync reconcile --since 1796052439 --json',
    ],
    exit: '0 nothing missing; 1 calls missing or hours not reached',
    notes:
      'Refused (exit 2): milliseconds, a range in the future, --since after --until. A range reaching before the ledger start, or before LEDGER_DAYS (expired ledger hours), is narrowed and the report says so.',
  },
  {
    name: 'trace',
    summary:
      "one call's fate: its row, the ledger hour that holds it, followed/parked/queued/dead-letter state",
    args: [{ name: 'uniqueid', help: "the call's uniqueid (vicidial_log.uniqueid)" }],
    options: { json, sync },
    examples: ['did-sync trace 1796052439.1234', 'did-sync trace 1796052439.1234 --json'],
    exit: '0 delivered, or on its way (followed, parked, queued, not yet reached); 1 dead-lettered, missing or never seen',
  },
  {
    name: 'init-table',
    summary: 'create the checkpoint table (keys pk/sk, TTL on expiresAt) for cron-only use',
    options: { json },
    examples: ['did-sync init-table'],
    exit: '0 created, or already there with the right keys; 1 it exists with other keys',
  },
];

const BY_NAME = new Map(COMMANDS.map((c) => [c.name, c]));

export function commandSpec(name: string): CommandSpec | undefined {
  return BY_NAME.get(name);
}

function optionLine(name: string, o: OptionSpec): string {
  return `--${name}${o.type === 'string' ? ` <${o.value ?? 'value'}>` : ''}`;
}

export function usageLine(c: CommandSpec): string {
  const args = (c.args ?? []).map((a) => `<${a.name}>`).join(' ');
  const options = Object.entries(c.options)
    .map(([name, o]) => `[${optionLine(name, o)}]`)
    .join(' ');
  return ['did-sync', c.name, args, options].filter((s) => s !== '').join(' ');
}

export function commandHelp(c: CommandSpec): string {
  const width = Math.max(...Object.entries(c.options).map(([n, o]) => optionLine(n, o).length), 10) + 2;
  return [
    `usage: ${usageLine(c)}`,
    '',
    `${c.summary}.`,
    ...(c.notes ? ['', c.notes] : []),
    '',
    ...(c.args?.length
      ? ['arguments:', ...c.args.map((a) => `  ${`<${a.name}>`.padEnd(width)}${a.help}`), '']
      : []),
    'options:',
    ...Object.entries(c.options).map(([n, o]) => `  ${optionLine(n, o).padEnd(width)}${o.help}`),
    `  ${'--help'.padEnd(width)}this help`,
    '',
    `exit: ${c.exit}; 2 usage or settings.`,
    '',
    'examples:',
    ...c.examples.map((e) => `  ${e}`),
    '',
  ].join('\n');
}

export const GLOBAL_USAGE = [
  "usage: did-sync <command> [options]     did-sync <command> --help for a command's options",
  '',
  'commands:',
  ...COMMANDS.map((c) => `  ${c.name.padEnd(14)}${c.summary}`),
  '',
  'Exit codes: 0 ok, 1 found a problem, 2 usage or settings. With --json, stdout holds exactly one',
  'JSON document; logs and notices always go to stderr. Settings come from the environment and ./.env',
  '(see README.md).',
  '',
].join('\n');

export class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose usage to show with the message. */
    readonly command?: CommandSpec,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export type CommandLine =
  | { readonly kind: 'help'; readonly text: string; readonly exitCode: number }
  | {
      readonly kind: 'command';
      readonly command: CommandSpec;
      readonly values: Readonly<Record<string, string | boolean | undefined>>;
      readonly positionals: readonly string[];
    };

/** Parses argv (without node and the script); throws UsageError for anything it cannot mean. */
export function parseCommandLine(argv: readonly string[]): CommandLine {
  const [name, ...rest] = argv;
  if (name === undefined) return { kind: 'help', text: GLOBAL_USAGE, exitCode: EXIT.usage };
  if (name === '--help' || name === '-h' || name === 'help') {
    const about = rest[0] === undefined ? undefined : commandSpec(rest[0]);
    if (rest[0] !== undefined && !about) throw new UsageError(`unknown command "${rest[0]}"`);
    return { kind: 'help', text: about ? commandHelp(about) : GLOBAL_USAGE, exitCode: EXIT.ok };
  }
  const command = commandSpec(name);
  if (!command) {
    throw new UsageError(
      name.startsWith('-') ? `a command comes first, got "${name}"` : `unknown command "${name}"`,
    );
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    return { kind: 'help', text: commandHelp(command), exitCode: EXIT.ok };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...rest],
      options: Object.fromEntries(Object.entries(command.options).map(([n, o]) => [n, { type: o.type }])),
      allowPositionals: (command.args?.length ?? 0) > 0,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(`${command.name}: ${(error as Error).message.split('\n')[0]}`, command);
  }
  const wanted = command.args?.length ?? 0;
  if (parsed.positionals.length !== wanted) {
    throw new UsageError(
      wanted === 0
        ? `${command.name} takes no arguments, got "${parsed.positionals.join(' ')}"`
        : `${command.name} needs ${command.args?.map((a) => `<${a.name}>`).join(' ')}`,
      command,
    );
  }
  return {
    kind: 'command',
    command,
    values: parsed.values as Record<string, string | boolean | undefined>,
    positionals: parsed.positionals,
  };
}

export function positiveInt(name: string, value: string | boolean | undefined): number | undefined {
  if (value === undefined || typeof value === 'boolean') return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new UsageError(`--${name} must be a positive whole number, got "${value}"`);
  return Number(value);
}
