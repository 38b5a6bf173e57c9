import type { ApiFaultStop } from '../run-control';

/**
 * Tells an outage from an isolated bad call. It counts, in completion order, fresh calls that failed in
 * a row (a delivery resets the count; retries of parked calls do not take part): at `limit` the API is
 * taken to be down and the run stops. The failures of the streak that tripped it are not parked: they
 * stay unresolved and the next run sends them again, so an outage never fills the parked set.
 */
export type FailureKind = 'transient' | 'endpoint' | 'forbidden';

/** The breaker's verdict is always one of the API's faults. */
export type OutageReason = ApiFaultStop;

export class OutageBreaker {
  private streak: FailureKind[] = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError(`breaker limit must be >= 1, got ${limit}`);
  }

  success(): void {
    this.streak = [];
  }

  /** Records a failed fresh call; true when the streak reaches the limit. */
  failure(kind: FailureKind): boolean {
    this.streak.push(kind);
    return this.tripped;
  }

  get tripped(): boolean {
    return this.streak.length >= this.limit;
  }

  get failuresInRow(): number {
    return this.streak.length;
  }

  /**
   * What the streak says: every call refused with a fresh key is the key (or an account rule), a wrong
   * path (404/405) is the URL, anything else the API being down.
   */
  reason(): OutageReason {
    if (this.streak.length > 0 && this.streak.every((k) => k === 'forbidden')) return 'api_auth';
    if (this.streak.some((k) => k === 'endpoint')) return 'api_misconfigured';
    return 'api_unavailable';
  }
}
