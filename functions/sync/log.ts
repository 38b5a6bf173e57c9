import { Logger } from '@aws-lambda-powertools/logger';

/**
 * Structured logging: one JSON object per line with a stable `event` name, so operators filter in
 * CloudWatch Logs Insights with `filter event = "call_dead_lettered"`. Field names are shared by every
 * event (syncId, uniqueid, campaignId, disposition, httpStatus, attempt, durationMs, lagSeconds...).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface SyncLog {
  log(level: LogLevel, event: string, fields?: LogFields): void;
}

/** The Powertools logger prints the JSON line (and adds Lambda request id and function version there). */
export class PowertoolsSyncLog implements SyncLog {
  constructor(
    readonly logger: Logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'did-sync' }),
  ) {}

  log(level: LogLevel, event: string, fields: LogFields = {}): void {
    this.logger[level](event, { event, ...fields });
  }
}

/**
 * A log whose every line carries `keys` (a sync's id): parts that do not know the sync (the delivery, a
 * replay's lease release) write lines the saved queries can still attribute.
 */
export function withKeys(log: SyncLog, keys: LogFields): SyncLog {
  return { log: (level, event, fields = {}) => log.log(level, event, { ...keys, ...fields }) };
}

export interface LogEntry extends LogFields {
  level: LogLevel;
  event: string;
}

/** Keeps entries in memory: for tests and for summaries that need to look back at what happened. */
export class MemorySyncLog implements SyncLog {
  readonly entries: LogEntry[] = [];

  constructor(private readonly next?: SyncLog) {}

  log(level: LogLevel, event: string, fields: LogFields = {}): void {
    this.entries.push({ ...fields, level, event });
    this.next?.log(level, event, fields);
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
