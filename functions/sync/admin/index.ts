/**
 * admin/: the operator's commands besides a run, shared by the CLI and the handler: status, check,
 * reset, reconcile, trace, dead-letter list and replay. May import every other layer; no layer
 * imports it.
 */
export * from './check';
export * from './dead-letters';
export * from './reconcile';
export * from './reset';
export * from './status';
export * from './trace';
