/**
 * calls/: the pure rules about a call, with no I/O: the cursor and its order, which calls are followed
 * or parked, the payload a row becomes, twins, time formatting. Imports nothing of the sync: every
 * other layer may import it.
 */
export * from './cursor';
export * from './cursor-rule';
export * from './held-calls';
export * from './payload';
export * from './time';
export * from './twins';
