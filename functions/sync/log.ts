import { Logger, type LogItem, LogLevelThreshold } from '@aws-lambda-powertools/logger';

/**
 * Structured logging: one JSON object per line with a stable `event` name, so operators filter in
 * CloudWatch Logs Insights with `filter event = "call_dead_lettered"`. Field names are shared by every
 * event (syncId, uniqueid, campaignId, disposition, httpStatus, attempt, durationMs, lagSeconds...).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface SyncLog {
  /**
   * `fields` may come in parts (keys first, the call, then what happened): the sink merges them once,
   * so a line per call costs no copy on its way through the layers that add keys.
   */
  log(level: LogLevel, event: string, ...fields: LogFields[]): void;
}

/** An INFO line waits at most this long to be written together with the lines after it. */
const LINE_BATCH_MS = 50;
const LINE_BATCH_MAX_CHARS = 64 * 1024;

/**
 * The lines of one stream, written a few at a time: a run logs a line per call, and one write(2) per
 * line was a tenth of a call's CPU at thousands of calls a minute. A line waits at most LINE_BATCH_MS;
 * every line waiting is written before a warning or an error (problems are never held back, and lines
 * keep their order), when a run or an invocation ends (`flushLogLines`), and when the process exits.
 * What a hard kill (Lambda's timeout, the OOM killer) can lose is the last LINE_BATCH_MS of INFO lines,
 * never a call: the run's deadline ends it well before Lambda's timeout, and flushes.
 */
export class LineBatch {
  private text = '';
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly stream: NodeJS.WritableStream) {}

  add(line: string): void {
    this.text += `${line}\n`;
    if (this.text.length >= LINE_BATCH_MAX_CHARS) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), LINE_BATCH_MS).unref();
  }

  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.text === '') return;
    const text = this.text;
    this.text = '';
    this.stream.write(text);
  }
}

const batches = new Map<NodeJS.WritableStream, LineBatch>();

function batchFor(stream: NodeJS.WritableStream): LineBatch {
  let batch = batches.get(stream);
  if (!batch) {
    if (batches.size === 0) process.once('exit', flushLogLines);
    batch = new LineBatch(stream);
    batches.set(stream, batch);
  }
  return batch;
}

/** Writes every log line still waiting (a run's or an invocation's end; the process's exit does it too). */
export function flushLogLines(): void {
  for (const batch of batches.values()) batch.flush();
}

/** Whether every value is a string, a number, a boolean or null (what the replacer passes through). */
function flat(attributes: Record<string, unknown>): boolean {
  for (const key in attributes) {
    const value = attributes[key];
    if (
      value !== null &&
      typeof value !== 'string' &&
      typeof value !== 'number' &&
      typeof value !== 'boolean'
    )
      return false;
  }
  return true;
}

/** POWERTOOLS_DEV: Powertools' own printing (indented, the global console) for a person reading it. */
function powertoolsDev(): boolean {
  const value = process.env.POWERTOOLS_DEV?.trim().toLowerCase();
  return value !== undefined && value !== '' && value !== 'false' && value !== '0';
}

/**
 * The Powertools logger (its JSON line, Lambda context, levels, sampling), printing through LineBatch:
 * INFO and DEBUG to stdout, WARN and above to stderr at once, as Powertools does. `allTo` sends every
 * line to one stream (the CLI keeps stdout for its answer).
 */
export class SyncLogger extends Logger {
  private readonly routine: LineBatch;
  private readonly problems: NodeJS.WritableStream;
  private readonly dev = powertoolsDev();

  constructor(options: ConstructorParameters<typeof Logger>[0] = {}, allTo?: NodeJS.WritableStream) {
    super(options);
    this.routine = batchFor(allTo ?? process.stdout);
    this.problems = allTo ?? process.stderr;
  }

  protected override printLog(logLevel: number, log: LogItem): void {
    // Lines Powertools prints while it is still being constructed go its own way.
    if (this.dev || this.routine === undefined) {
      super.printLog(logLevel, log);
      return;
    }
    log.prepareForPrint();
    const attributes = log.getAttributes();
    // Powertools' replacer (errors, bigints, cycles) leaves strings, numbers and booleans as they are,
    // and a replacer takes JSON.stringify off its fast path: a line of such values does without it.
    const line = flat(attributes)
      ? JSON.stringify(attributes)
      : JSON.stringify(attributes, this.getJsonReplacer());
    if (logLevel < LogLevelThreshold.WARN) {
      this.routine.add(line);
    } else {
      this.routine.flush();
      this.problems.write(`${line}\n`);
    }
  }
}

/** The Powertools logger prints the JSON line (and adds Lambda request id and function version there). */
export class PowertoolsSyncLog implements SyncLog {
  constructor(
    readonly logger: Logger = new SyncLogger({
      serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'did-sync',
    }),
  ) {}

  log(level: LogLevel, event: string, ...fields: LogFields[]): void {
    // Powertools copies each object's fields into the line, in order: `event` first.
    this.logger[level](event, { event }, ...fields);
  }
}

/**
 * A log whose every line carries `keys` (a sync's id): parts that do not know the sync (the delivery, a
 * replay's lease release) write lines the saved queries can still attribute.
 */
export function withKeys(log: SyncLog, keys: LogFields): SyncLog {
  return { log: (level, event, ...fields) => log.log(level, event, keys, ...fields) };
}

export interface LogEntry extends LogFields {
  level: LogLevel;
  event: string;
}

/** Keeps entries in memory: for tests and for summaries that need to look back at what happened. */
export class MemorySyncLog implements SyncLog {
  readonly entries: LogEntry[] = [];

  constructor(private readonly next?: SyncLog) {}

  log(level: LogLevel, event: string, ...fields: LogFields[]): void {
    this.entries.push(Object.assign({}, ...fields, { level, event }));
    this.next?.log(level, event, ...fields);
  }

  events(event: string): LogEntry[] {
    return this.entries.filter((e) => e.event === event);
  }
}

/** What an error may show in a log line: never its whole object, which can carry connection options. */
export function describeError(error: unknown): { errorName: string; errorCode?: string; error: string } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      errorName: error.name,
      ...(typeof code === 'string' ? { errorCode: code } : {}),
      error: error.message,
    };
  }
  return { errorName: 'Error', error: String(error) };
}
