/**
 * state/: the sync's state in DynamoDB, and the only code that calls DynamoDB for it: the checkpoint
 * (cursor, followed and parked calls, lease, fence), dead letters, repairs, the delivery ledger, the
 * run history, the table itself. Every item key is built in keys.ts. Imports only calls/ (and, for two
 * types the run defines, run/); never source/, delivery/ or admin/.
 */
export * from './checkpoint-store';
export * from './ledger';
export * from './run-history';
export * from './table-setup';
