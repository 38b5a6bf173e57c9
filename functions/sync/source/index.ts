/**
 * source/: reading VICIdial (MySQL/MariaDB, read-only): the connection, its settings and grants, the
 * queries on vicidial_log, the call_date scan and the time-zone check. Imports only calls/ and the
 * shared top-level modules (settings, log); never delivery/, state/, run/ or admin/.
 */
export * from './call-date-scan';
export * from './db-connection';
export * from './db-grants';
export * from './db-settings';
export * from './sql-client';
export * from './time-zone-check';
export * from './vicidial-log';
