import type { RunControl } from '../run-control';
import type { VicidialLog } from '../source/vicidial-log';

/** Marks a failure of the VICIdial database, as opposed to DynamoDB's, for the run's outcome. */
export class SyncDatabaseError extends Error {
  override readonly cause: unknown;
  constructor(cause: unknown) {
    super((cause as Error)?.message ?? String(cause));
    this.name = 'SyncDatabaseError';
    this.cause = cause;
  }
}

/**
 * The run's view of VICIdial's database: every query within the run's time left, and the database's
 * clock (the one that stamped end_epoch), read at the start and before each chunk of the scan.
 */
export class RunDatabase {
  /** Epoch seconds of the last clock read. */
  now = 0;

  constructor(
    readonly calls: VicidialLog,
    private readonly control: RunControl,
  ) {}

  async query<T>(query: (options: { timeoutMs: number }) => Promise<T>): Promise<T> {
    try {
      return await query({ timeoutMs: this.control.timeLeft() });
    } catch (error) {
      throw new SyncDatabaseError(error);
    }
  }

  async readClock(): Promise<number> {
    this.now = await this.query((o) => this.calls.now(o));
    return this.now;
  }
}
