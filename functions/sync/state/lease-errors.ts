/** How a lease write says it was refused: the run lost its lease, or a reset met a run holding it. */

/** The run no longer holds the lease (it expired and another run took it, or a forced reset). */
export class LeaseLostError extends Error {
  constructor(syncId: string, operation: string) {
    super(`lease on sync "${syncId}" was lost (${operation} refused): another run or a reset took over`);
    this.name = 'LeaseLostError';
  }
}

export class LeaseHeldError extends Error {
  constructor(
    syncId: string,
    readonly holder: { owner: string; expiresAt: number },
  ) {
    super(
      `sync "${syncId}" is running (lease held by ${holder.owner} until ${new Date(holder.expiresAt).toISOString()}); use --force to reset anyway`,
    );
    this.name = 'LeaseHeldError';
  }
}
