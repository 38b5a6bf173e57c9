/**
 * The sync's public surface for a run: what the adapters (functions/lambda, functions/cli,
 * bin/did-sync.ts) use; operator commands come from functions/sync/admin. Layers, each with its own index: calls/ (pure rules), source/ (VICIdial), delivery/ (the API),
 * state/ (DynamoDB), run/ (the engine), admin/ (operator commands); settings, log, run-control,
 * version and wiring are shared by all. Modules inside functions/sync never import this file.
 */
// Operator commands are the other surface, functions/sync/admin: loaded when an operator asks (a
// scheduled run never evaluates them). Only their types are here.
export type {
  CheckReport,
  DbClock,
  DeadLetterFilter,
  DeadLetterGroup,
  HourReport,
  ReconcileReport,
  ResetReport,
  StatusReport,
  TraceReport,
} from './admin';
export { isoOf } from './calls';
export { type ApiKeyProvider, type DidOptimizerClient, staticApiKey } from './delivery';
export { flushLogLines, PowertoolsSyncLog, SyncLogger } from './log';
export { FINAL_WRITE_MS, type RunOptions, type RunSummary, runSync, type SyncDeps } from './run/engine';
export { isApiFault } from './run-control';
export {
  type ApiSettings,
  boolSetting,
  type CheckpointSettings,
  type DbSettings,
  type Env,
  intSetting,
  parseApiSettings,
  parseCheckpointSettings,
  parseConnectionSettings,
  parseInstant,
  parseSyncSettings,
  requiredSetting,
  SettingError,
  SYNC_ID,
  SYNC_ID_RULE,
  type SyncSettings,
  validateApiUrl,
} from './settings';
export { type DbCredentialSource, parseDbSettings, staticCredentials, VicidialDbConnection } from './source';
export {
  CheckpointStore,
  type DeadLetter,
  failureBeforeRun,
  LeaseHeldError,
  RunHistory,
  recordOf,
  setUpTable,
  worthRecording,
} from './state';
export { USER_AGENT } from './version';
export { createApiClient, createDynamoClient, createSync, type Sync } from './wiring';
