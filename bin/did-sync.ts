#!/usr/bin/env -S npx tsx
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import { apiSource, chooseSync, type DatabaseSource, databaseSource } from '../functions/cli/cli-settings';
import { EXIT, parseCommandLine, positiveInt, UsageError } from '../functions/cli/commands';
import {
  formatDeadLetters,
  formatReconcile,
  formatReset,
  formatRunSummary,
  formatStatus,
  formatTrace,
} from '../functions/cli/format';
import { holdHeapNearDrainSize } from '../functions/cli/heap';
import { err, exitAfterDrain, out, outJson, stderrSyncLog } from '../functions/cli/output';
import {
  dynamoLabel,
  failureLine,
  isDatabaseError,
  isLabelled,
  labelDynamoErrors,
} from '../functions/cli/parts';
import {
  CheckpointStore,
  createDynamoClient,
  createSync,
  type DbClock,
  type DeadLetterFilter,
  type Env,
  FINAL_WRITE_MS,
  failureBeforeRun,
  isoOf,
  LeaseHeldError,
  parseCheckpointSettings,
  parseConnectionSettings,
  parseInstant,
  RunHistory,
  recordOf,
  runSync,
  SettingError,
  setUpTable,
  staticApiKey,
  USER_AGENT,
  VicidialDbConnection,
  worthRecording,
} from '../functions/sync';
import {
  formatCheckReport,
  listDeadLetters,
  ReconcileRangeError,
  ResetRefusedError,
  readStatus,
  reconcile,
  replayDeadLetters,
  resetCheckpoint,
  runChecks,
  traceCall,
} from '../functions/sync/admin';

/**
 * `did-sync`: the same engine as the Lambda, run by hand or from cron on a VICIdial box.
 * Exit codes: 0 ok, 1 found a problem (a failed run, a failed check, missing calls...), 2 usage or
 * settings. stdout holds only the answer (exactly one JSON document with --json); logs go to stderr.
 */

/** The process environment wins over ./.env, as with every dotenv-style tool. */
function loadEnv(cwd: string): Env {
  const path = join(cwd, '.env');
  const fromFile = existsSync(path) ? parseEnv(readFileSync(path, 'utf8')) : {};
  return { ...fromFile, ...process.env };
}

function instant(name: string, value: string | boolean | undefined): number | undefined {
  if (value === undefined || typeof value === 'boolean') return undefined;
  const epoch = parseInstant(value);
  if (epoch === undefined)
    throw new UsageError(`--${name}: "${value}" is not epoch seconds or ISO-8601 with a zone`);
  return epoch;
}

const str = (v: string | boolean | undefined): string | undefined => (typeof v === 'string' ? v : undefined);

/** Where the current failure happened, for an error that does not say so itself. */
let databaseLabel: (() => string) | undefined;

async function main(argv: string[]): Promise<number> {
  // Usage first: an unknown command or option is answered before any setting is read.
  const line = parseCommandLine(argv);
  if (line.kind === 'help') {
    // Asked-for help is the answer (stdout); usage shown for a missing command is an error (stderr).
    await (line.exitCode === EXIT.ok ? out(line.text) : err(line.text.trimEnd()));
    return line.exitCode;
  }
  const { command, values, positionals } = line;
  // A drain's heap stays near what it needs rather than what V8 would grow it to (functions/cli/heap.ts).
  holdHeapNearDrainSize();
  const json = values.json === true;
  const started = Date.now();
  const env = loadEnv(process.cwd());
  const checkpointSettings = parseCheckpointSettings(env);
  const dynamo = createDynamoClient(checkpointSettings);
  labelDynamoErrors(dynamo, checkpointSettings);
  const store = new CheckpointStore(dynamo, checkpointSettings.table);
  const history = new RunHistory(dynamo, checkpointSettings.table);
  const region = checkpointSettings.region;
  try {
    if (command.name === 'init-table') {
      const report = await setUpTable(dynamo, checkpointSettings.table, {
        emulator: checkpointSettings.endpoint !== undefined,
      });
      if (json) await outJson(report);
      else
        await out(
          `${report.ok ? '' : 'FAILED: '}table ${report.table}: ${report.created ? 'created' : 'already there'}, TTL on expiresAt ${report.ttl}${report.problem ? `\n  ${report.problem}` : ''}\n`,
        );
      return report.ok ? EXIT.ok : EXIT.problem;
    }
    // A local emulator starts empty; check tests the table as it is (creating it would hide a missing one).
    if (checkpointSettings.endpoint && command.name !== 'check') await store.ensureTable();
    const chosen = await chooseSync(env, str(values.sync), store);
    if (chosen.notice) await err(chosen.notice);
    const settings = chosen.settings;
    const syncId = settings.syncId;
    const log = stderrSyncLog();
    const needsDb =
      ['run', 'reconcile', 'check'].includes(command.name) ||
      (command.name === 'dead-letters' && values.replay === true);
    const dbSource: DatabaseSource | undefined = databaseSource(env, region, needsDb);
    databaseLabel = dbSource?.label;
    const parts = { database: () => dbSource?.label() ?? '-', dynamo: dynamoLabel(checkpointSettings) };
    // status, reset and trace read the database when its settings are there, and do without otherwise.
    const readOnlySync = () =>
      dbSource
        ? createSync({
            settings,
            api: { url: 'http://127.0.0.1', allowInsecure: false },
            db: dbSource.credentials,
            dbConnection: parseConnectionSettings(env),
            keys: staticApiKey(''),
            checkpoints: store,
            log,
          })
        : undefined;

    switch (command.name) {
      case 'check': {
        const api = await apiSource(env, chosen, region);
        // A short connect timeout: a database that does not answer must not hold the command.
        const connection = new VicidialDbConnection((dbSource as DatabaseSource).credentials, {
          ...parseConnectionSettings(env),
          connectTimeoutMs: 5_000,
          poolSize: 1,
        });
        try {
          const report = await runChecks({
            settings,
            db: connection,
            api: async () => ({ url: api.api.url, key: await api.keys.key() }),
            userAgent: USER_AGENT,
            dynamo,
            table: checkpointSettings.table,
          });
          await (json ? outJson(report) : out(formatCheckReport(report)));
          return report.ok ? EXIT.ok : EXIT.problem;
        } finally {
          // A query still waiting on a locked table would hold close(): give up on it after a moment.
          await Promise.race([
            connection.close().catch(() => undefined),
            new Promise((resolve) => setTimeout(resolve, 2_000).unref()),
          ]);
        }
      }
      case 'status': {
        const sync = readOnlySync();
        const clock: DbClock | undefined = sync ? () => sync.calls.now({ timeoutMs: 5_000 }) : undefined;
        const status = await readStatus(store, syncId, clock, history).finally(() => sync?.close());
        await (json ? outJson(status) : out(formatStatus(status)));
        return status.healthy ? EXIT.ok : EXIT.problem;
      }
      case 'reset': {
        const to = instant('to', values.to);
        if (to === undefined) throw new UsageError('reset needs --to <ISO-8601|epoch>', command);
        const sync = readOnlySync();
        const report = await resetCheckpoint(
          store,
          sync?.calls,
          syncId,
          to,
          {
            force: values.force === true,
            withoutDatabase: values['without-database'] === true,
            resend: values.resend === true,
            skipUndelivered: values['skip-undelivered'] === true,
          },
          log,
          settings,
        ).finally(() => sync?.close());
        if (json) await outJson(report);
        else await out(formatReset(report));
        return EXIT.ok;
      }
      case 'reconcile': {
        const since = instant('since', values.since);
        if (since === undefined) throw new UsageError('reconcile needs --since <ISO-8601|epoch>', command);
        const until = instant('until', values.until);
        const sync = readOnlySync();
        if (!sync)
          throw new SettingError(
            'VICIDIAL_DB_HOST',
            'reconcile reads vicidial_log: the database settings are required',
          );
        const report = await reconcile(
          { settings, calls: sync.calls, checkpoints: store, log },
          { since, ...(until === undefined ? {} : { until }), repair: values.repair === true },
        ).finally(() => sync.close());
        for (const note of report.notes) await err(`did-sync: note: ${note}`);
        await (json ? outJson(report) : out(formatReconcile(report)));
        return report.missing > 0 || report.notReached.length > 0 ? EXIT.problem : EXIT.ok;
      }
      case 'trace': {
        const sync = readOnlySync();
        if (!sync) await err("did-sync: note: no database settings: the call's row is not read");
        const report = await traceCall(
          { settings, calls: sync?.calls, checkpoints: store },
          positionals[0] as string,
        ).finally(() => sync?.close());
        await (json ? outJson(report) : out(formatTrace(report)));
        return report.settled ? EXIT.ok : EXIT.problem;
      }
      case 'dead-letters': {
        const filter: DeadLetterFilter = {
          campaign: str(values.campaign),
          reason: str(values.reason),
          uniqueid: str(values.uniqueid),
        };
        const filtered = Object.values(filter).some((v) => v !== undefined);
        if (values.replay !== true) {
          const letters = await listDeadLetters(store, syncId, filter);
          await (json ? outJson(letters) : out(formatDeadLetters(syncId, letters, filtered)));
          return EXIT.ok;
        }
        const api = await apiSource(env, chosen, region);
        const sync = createSync({
          settings,
          api: api.api,
          db: (dbSource as DatabaseSource).credentials,
          dbConnection: parseConnectionSettings(env),
          keys: api.keys,
          checkpoints: store,
          log,
        });
        try {
          const summary = await replayDeadLetters(sync, { owner: owner(), filter });
          if (json) await outJson(summary);
          if (!summary.replayed) {
            await err(`did-sync: ${summary.detail}`);
            return EXIT.problem;
          }
          if (!json)
            await out(
              `replayed ${summary.total - summary.notAttempted} of ${summary.total}${filtered ? ' matching the filter' : ''}: delivered ${summary.delivered}, still rejected ${summary.stillRejected}, failed ${summary.failed}${summary.stoppedBy ? `, stopped: ${summary.stoppedBy}${summary.detail ? ` (${summary.detail})` : ''}` : ''}\n`,
            );
          if (summary.stoppedBy === 'api_auth')
            await err(`did-sync: API key from ${api.keySource} refused by ${api.api.url}`);
          return summary.stoppedBy ? EXIT.problem : EXIT.ok;
        } finally {
          await sync.close();
        }
      }
      case 'run': {
        let api: Awaited<ReturnType<typeof apiSource>>;
        try {
          api = await apiSource(env, chosen, region);
        } catch (error) {
          // The run never started (its API secret could not be read): status must still show it.
          if (!(error instanceof SettingError) && values['dry-run'] !== true)
            await history
              .record(syncId, failureBeforeRun('secret_unreadable', (error as Error).message, 'cli'))
              .catch(() => undefined);
          throw error;
        }
        const maxSeconds = positiveInt('max-seconds', values['max-seconds']);
        const maxBatches = positiveInt('max-batches', values['max-batches']);
        const isNew = !(await store.read(syncId));
        const sync = createSync({
          settings,
          api: api.api,
          db: (dbSource as DatabaseSource).credentials,
          dbConnection: parseConnectionSettings(env),
          keys: api.keys,
          checkpoints: store,
          log,
        });
        try {
          const summary = await runSync(sync, {
            owner: owner(),
            dryRun: values['dry-run'] === true,
            ...(maxBatches ? { maxBatches } : {}),
            // Every wait ends here; the last checkpoint, the release and the summary fit in the rest.
            ...(maxSeconds ? { deadline: started + maxSeconds * 1000 - FINAL_WRITE_MS - 300 } : {}),
          });
          if (isNew)
            await err(
              `did-sync: notice: sync "${syncId}" had no checkpoint yet: this run ${summary.dryRun ? 'would start' : 'started'} it at ${settings.startFrom === undefined ? "one hour before the database's clock (set START_FROM to choose)" : `START_FROM ${isoOf(settings.startFrom)}`}`,
            );
          const failure =
            summary.outcome === 'failed'
              ? failureLine(summary, { ...parts, apiKey: api.keySource, apiUrl: api.api.url })
              : undefined;
          if (worthRecording(summary))
            await history
              .record(syncId, recordOf(summary, 'cli', failure))
              .catch((error) =>
                log.log('warn', 'run_record_failed', { syncId, error: (error as Error).message }),
              );
          await (json ? outJson(summary) : out(formatRunSummary(summary)));
          if (failure) await err(`did-sync: run failed: ${failure}`);
          return summary.outcome === 'failed' ? EXIT.problem : EXIT.ok;
        } finally {
          await Promise.race([sync.close(), new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
        }
      }
      default:
        throw new UsageError(`unknown command "${command.name}"`);
    }
  } finally {
    dynamo.destroy();
  }
}

function owner(): string {
  return `cli:${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

/** One line on stderr for what stopped the command, naming the part it concerns. */
function describeFailure(error: unknown): { line: string; code: number } {
  if (error instanceof UsageError) {
    const hint = error.command
      ? `usage: did-sync ${error.command.name} --help`
      : 'usage: did-sync <command> [options]; did-sync --help lists the commands';
    return { line: `did-sync: ${error.message}\n${hint}`, code: EXIT.usage };
  }
  if (error instanceof SettingError) return { line: `did-sync: setting ${error.message}`, code: EXIT.usage };
  if (error instanceof ResetRefusedError)
    return { line: `did-sync: reset refused: ${error.message}`, code: EXIT.usage };
  if (error instanceof ReconcileRangeError)
    return { line: `did-sync: reconcile refused: ${error.message}`, code: EXIT.usage };
  if (error instanceof LeaseHeldError) return { line: `did-sync: ${error.message}`, code: EXIT.problem };
  const e = error as Error;
  if (isLabelled(error)) return { line: `did-sync: ${e.message}`, code: EXIT.problem };
  if (isDatabaseError(error))
    return { line: `did-sync: database ${databaseLabel?.() ?? ''}: ${e.message}`, code: EXIT.problem };
  return { line: `did-sync: ${e.name}: ${e.message}`, code: EXIT.problem };
}

main(process.argv.slice(2))
  .then(
    (code) => code,
    async (error: unknown) => {
      const { line, code } = describeFailure(error);
      await err(line);
      return code;
    },
  )
  // Exit once stdout and stderr have drained: a socket the run gave up on (a hung API, a locked table)
  // must not keep the process up, and a pipe must get the whole answer.
  .then((code) => exitAfterDrain(code));
