#!/usr/bin/env -S npx tsx
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs, parseEnv } from 'node:util';
import { staticApiKey } from '../functions/sync/api-client';
import { formatCheckReport, runChecks } from '../functions/sync/check';
import { CheckpointStore, LeaseHeldError } from '../functions/sync/checkpoint-store';
import { staticCredentials, VicidialDbConnection } from '../functions/sync/db-connection';
import { parseDbSettings } from '../functions/sync/db-settings';
import { FINAL_WRITE_MS, type RunSummary, runSync } from '../functions/sync/engine';
import { PowertoolsSyncLog } from '../functions/sync/log';
import {
  type DbClock,
  listDeadLetters,
  ResetRefusedError,
  readStatus,
  replayDeadLetters,
  resetCheckpoint,
} from '../functions/sync/operations';
import { type HourReport, type ReconcileReport, reconcile } from '../functions/sync/reconcile';
import {
  type Env,
  parseApiSettings,
  parseCheckpointSettings,
  parseConnectionSettings,
  parseInstant,
  parseSyncSettings,
  requiredSetting,
  SettingError,
} from '../functions/sync/settings';
import { USER_AGENT } from '../functions/sync/version';
import type { VicidialLog } from '../functions/sync/vicidial-log';
import { createDynamoClient, createSync } from '../functions/sync/wiring';

/**
 * `did-sync`: the same engine as the Lambda, run by hand or from cron on a VICIdial box.
 * Exit codes: 0 done (or skipped: another run holds the lease), 1 the run failed, 2 bad settings or usage.
 * `check`: 0 when no check failed (warnings allowed), 1 when one did.
 */

const USAGE = `usage: did-sync <command> [options]

commands:
  run [--dry-run] [--max-batches N] [--max-seconds S]   sync until caught up (or a limit); ends within S + 2 s
  status [--json]                                       checkpoint, lag, lease, pending, parked, dead letters
  reset --to <ISO-8601|epoch> [--force] [--without-database]
                                                        move the checkpoint (refused while a run holds the lease,
                                                        or for an instant after the database's clock)
  dead-letters [--replay] [--json]                      list rejected calls, or post them again (takes the lease)
  check [--json]                                        try the database, its grant and time zone, the API key
                                                        and the checkpoint table; posts no call
  reconcile --since <ISO|epoch> [--until <ISO|epoch>] [--repair] [--json]
                                                        count, per hour, eligible calls the ledger has not seen;
                                                        --repair queues them for the next run

Settings come from the environment and ./.env (see README.md).`;

class UsageError extends Error {}

/** The process environment wins over ./.env, as with every dotenv-style tool. */
function loadEnv(cwd: string): Env {
  const path = join(cwd, '.env');
  const fromFile = existsSync(path) ? parseEnv(readFileSync(path, 'utf8')) : {};
  return { ...fromFile, ...process.env };
}

function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new UsageError(`--${name} must be a positive whole number`);
  return Number(value);
}

function printSummary(summary: RunSummary): void {
  const lines = [
    `sync ${summary.syncId}: ${summary.outcome}${summary.reason ? ` (${summary.reason})` : ''}${summary.dryRun ? ' [dry run]' : ''}`,
    `  delivered ${summary.delivered}, retried ${summary.retried}, ambiguous ${summary.ambiguous}, rate-limited ${summary.rateLimited}, dead-lettered ${summary.deadLettered}`,
    `  pending ${summary.pending} (resolved ${summary.pendingResolved}), parked ${summary.parked} (new ${summary.parkedNew}, recovered ${summary.recovered}), skipped as delivered ${summary.skippedAhead}`,
    `  batches ${summary.batches}, calls read ${summary.callsRead}, checkpoints ${summary.checkpoints}, concurrency ${summary.concurrency}`,
    `  cursor ${summary.cursor ? `${new Date(summary.cursor.endEpoch * 1000).toISOString()} ${summary.cursor.uniqueid}` : '-'}, lag ${summary.lagSeconds ?? '-'} s, ${(summary.durationMs / 1000).toFixed(1)} s`,
  ];
  if (summary.detail) lines.push(`  ${summary.detail}`);
  if (summary.lease) lines.push(`  lease held by ${summary.lease.owner} until ${summary.lease.expiresAt}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return command ? 0 : 2;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      'dry-run': { type: 'boolean' },
      'max-batches': { type: 'string' },
      'max-seconds': { type: 'string' },
      json: { type: 'boolean' },
      to: { type: 'string' },
      force: { type: 'boolean' },
      'without-database': { type: 'boolean' },
      replay: { type: 'boolean' },
      since: { type: 'string' },
      until: { type: 'string' },
      repair: { type: 'boolean' },
    },
    strict: true,
  });
  const started = Date.now();
  const env = loadEnv(process.cwd());
  const settings = parseSyncSettings(env);
  const checkpointSettings = parseCheckpointSettings(env);
  const log = new PowertoolsSyncLog();
  const dynamo = createDynamoClient(checkpointSettings);
  const store = new CheckpointStore(dynamo, checkpointSettings.table);
  // status and reset read the database's clock when the database settings are there.
  const database = (): { calls: VicidialLog; close: () => Promise<void> } | undefined => {
    let db: ReturnType<typeof parseDbSettings>;
    try {
      db = parseDbSettings(env);
    } catch {
      return undefined;
    }
    const sync = createSync({
      settings,
      api: { url: 'http://127.0.0.1', allowInsecure: false },
      db: staticCredentials(db),
      dbConnection: parseConnectionSettings(env),
      keys: staticApiKey(''),
      checkpoints: store,
      log,
    });
    return { calls: sync.calls, close: () => sync.close() };
  };
  try {
    // check tests the table as it is: creating it here would hide a missing one.
    if (checkpointSettings.endpoint && command !== 'check') await store.ensureTable();
    switch (command) {
      case 'check': {
        const api = parseApiSettings(env);
        const key = requiredSetting(env, 'API_KEY', 'is required (the DID Optimizer API key)');
        // A short connect timeout: a database that does not answer must not hold the command.
        // The session zone and query timeout the sync itself runs with, so the check judges its reads.
        const connection = new VicidialDbConnection(staticCredentials(parseDbSettings(env)), {
          ...parseConnectionSettings(env),
          connectTimeoutMs: 5_000,
          poolSize: 1,
        });
        try {
          const report = await runChecks({
            settings,
            db: connection,
            api: async () => ({ url: api.url, key }),
            userAgent: USER_AGENT,
            dynamo,
            table: checkpointSettings.table,
          });
          process.stdout.write(
            values.json ? `${JSON.stringify(report, null, 2)}\n` : formatCheckReport(report),
          );
          return report.ok ? 0 : 1;
        } finally {
          // A query still waiting on a locked table would hold close() (and the process) open: give up
          // on it after a moment and let the process end.
          const closed = await Promise.race([
            connection.close().then(
              () => true,
              () => true,
            ),
            new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2_000).unref()),
          ]);
          if (!closed) setTimeout(() => process.exit(), 1_000).unref();
        }
      }
      case 'status': {
        const db = database();
        const clock: DbClock | undefined = db ? () => db.calls.now({ timeoutMs: 5_000 }) : undefined;
        const status = await readStatus(store, settings.syncId, clock).finally(() => db?.close());
        if (values.json) {
          process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
        } else {
          process.stdout.write(
            `${[
              `sync ${status.syncId}${status.exists ? '' : ' (no checkpoint yet)'}`,
              `  cursor     ${status.cursorTime ?? '-'} ${status.cursor?.uniqueid ?? ''}`,
              `  lag        ${status.lagSeconds ?? '-'} s (${status.clock} clock)`,
              ...(status.warning ? [`  WARNING    ${status.warning}`] : []),
              `  lease      ${status.lease ? `${status.lease.owner} until ${status.lease.expiresAt}` : 'free'}`,
              `  pending    ${status.pending}`,
              `  parked     ${status.parked}`,
              ...status.parkedCalls.map(
                (p) =>
                  `    ${p.uniqueid} ended ${new Date(p.endEpoch * 1000).toISOString()}, failed in ${p.failures} run(s) since ${new Date(p.firstFailedAt * 1000).toISOString()}, last HTTP ${p.lastStatus ?? 'none'}`,
              ),
              `  dead letters ${status.deadLetters}`,
              `  last run   ${status.lastRun ? `${status.lastRun.outcome} at ${status.lastRun.at}, delivered ${status.lastRun.delivered}` : '-'}`,
            ].join('\n')}\n`,
          );
        }
        return 0;
      }
      case 'reset': {
        if (!values.to) throw new UsageError('reset needs --to <ISO-8601|epoch>');
        const to = parseInstant(values.to);
        if (to === undefined)
          throw new UsageError(`--to: "${values.to}" is not epoch seconds or ISO-8601 with a zone`);
        const db = database();
        const report = await resetCheckpoint(
          store,
          db?.calls,
          settings.syncId,
          to,
          { force: values.force ?? false, withoutDatabase: values['without-database'] ?? false },
          log,
        ).finally(() => db?.close());
        process.stdout.write(
          `sync ${report.syncId}: checkpoint reset to ${report.cursorTime} (checked against the ${report.checkedAgainst} clock)` +
            `${report.rePost !== null ? `; ${report.rePost} eligible call(s) after it will be posted again` : ''}\n`,
        );
        return 0;
      }
      case 'reconcile': {
        const instant = (name: string, value: string | undefined) => {
          if (value === undefined) return undefined;
          const epoch = parseInstant(value);
          if (epoch === undefined)
            throw new UsageError(`--${name}: "${value}" is not epoch seconds or ISO-8601 with a zone`);
          return epoch;
        };
        const since = instant('since', values.since);
        if (since === undefined) throw new UsageError('reconcile needs --since <ISO-8601|epoch>');
        const until = instant('until', values.until);
        const db = database();
        if (!db)
          throw new SettingError(
            'VICIDIAL_DB_HOST',
            'reconcile reads vicidial_log: the database settings are required',
          );
        const report = await reconcile(
          { settings, calls: db.calls, checkpoints: store, log },
          { since, ...(until === undefined ? {} : { until }), repair: values.repair ?? false },
        ).finally(() => db.close());
        if (values.json) {
          process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        } else {
          const line = (label: string, h: HourReport | ReconcileReport) =>
            `${label.padEnd(24)} eligible ${h.eligible}, delivered ${h.delivered}, dead-lettered ${h.deadLettered}, pending ${h.pending}, parked ${h.parked}, queued ${h.queued}, missing ${h.missing}`;
          const lines = [
            `sync ${report.syncId}: reconcile ${report.since} .. ${report.until}${report.repair ? ' (repair)' : ''}`,
          ];
          for (const h of report.hours) if (h.missing > 0) lines.push(`  ${line(h.hour, h)}`);
          lines.push(`  ${line('total', report)}`);
          if (report.missingUniqueids.length > 0)
            lines.push(
              `  missing: ${report.missingUniqueids.slice(0, 20).join(' ')}${report.missing > 20 ? ' ...' : ''}`,
            );
          if (report.notReached.length > 0)
            lines.push(`  not reached before the deadline: ${report.notReached.join(', ')}`);
          lines.push(`  ${report.rowsRead} rows read in ${(report.durationMs / 1000).toFixed(1)} s`);
          if (report.repair && report.queued > 0)
            lines.push('  queued calls go out with the next run (did-sync run delivers them now)');
          process.stdout.write(`${lines.join('\n')}\n`);
        }
        return report.missing > 0 || report.notReached.length > 0 ? 1 : 0;
      }
      case 'run':
      case 'dead-letters': {
        if (command === 'dead-letters' && !values.replay) {
          const letters = await listDeadLetters(store, settings.syncId);
          if (values.json) {
            process.stdout.write(`${JSON.stringify(letters, null, 2)}\n`);
          } else {
            for (const l of letters) {
              process.stdout.write(`${l.uniqueid}\t${l.createdAt}\t${l.campaignId ?? '-'}\t${l.reason}\n`);
            }
            process.stdout.write(`${letters.length} dead letter(s) for sync ${settings.syncId}\n`);
          }
          return 0;
        }
        const api = parseApiSettings(env);
        const key = requiredSetting(env, 'API_KEY', 'is required (the DID Optimizer API key)');
        const sync = createSync({
          settings,
          api,
          db: staticCredentials(parseDbSettings(env)),
          dbConnection: parseConnectionSettings(env),
          keys: staticApiKey(key),
          checkpoints: store,
          log,
        });
        const owner = `cli:${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
        try {
          if (command === 'dead-letters') {
            const summary = await replayDeadLetters(sync, { owner });
            if (!summary.replayed) {
              process.stderr.write(`did-sync: ${summary.detail}\n`);
              return 1;
            }
            process.stdout.write(
              `replayed ${summary.total - summary.notAttempted} of ${summary.total}: delivered ${summary.delivered}, still rejected ${summary.stillRejected}, failed ${summary.failed}${summary.stoppedBy ? `, stopped: ${summary.stoppedBy}${summary.detail ? ` (${summary.detail})` : ''}` : ''}\n`,
            );
            return summary.stoppedBy ? 1 : 0;
          }
          const maxSeconds = positiveInt('max-seconds', values['max-seconds']);
          const maxBatches = positiveInt('max-batches', values['max-batches']);
          const summary = await runSync(sync, {
            owner,
            dryRun: values['dry-run'] ?? false,
            ...(maxBatches ? { maxBatches } : {}),
            // Every wait ends here; the last checkpoint, the release and the summary fit in the rest.
            ...(maxSeconds ? { deadline: started + maxSeconds * 1000 - FINAL_WRITE_MS - 300 } : {}),
          });
          printSummary(summary);
          return summary.outcome === 'failed' ? 1 : 0;
        } finally {
          await sync.close();
        }
      }
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } finally {
    dynamo.destroy();
  }
}

main(process.argv.slice(2))
  .then(
    (code) => code,
    (error: unknown) => {
      if (error instanceof SettingError) {
        process.stderr.write(`did-sync: setting ${error.message}\n`);
        return 2;
      }
      if (error instanceof ResetRefusedError) {
        process.stderr.write(`did-sync: reset refused: ${error.message}\n`);
        return 2;
      }
      if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
        process.stderr.write(`did-sync: ${(error as Error).message}\n${USAGE}\n`);
        return 2;
      }
      if (error instanceof LeaseHeldError) {
        process.stderr.write(`did-sync: ${error.message}\n`);
        return 1;
      }
      process.stderr.write(`did-sync: ${(error as Error).name}: ${(error as Error).message}\n`);
      return 1;
    },
  )
  .then((code) => {
    // Exit now: a socket the run gave up on (a hung API, a locked table) must not keep the process up.
    process.exit(code);
  });
