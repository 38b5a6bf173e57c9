import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import type { DbSettings } from '../../functions/sync/settings';

/**
 * A throwaway MariaDB server for tests, the demo and the benchmark: Debian's own `mariadbd`
 * with its own datadir, socket and a free loopback port, removed again on stop().
 * `TEST_MYSQL_URL` points everything at an existing server instead.
 */
export interface LocalMariaDb {
  /** mysql://root@127.0.0.1:PORT: root on the server, no database selected. */
  readonly url: string;
  stop(): Promise<void>;
}

export const VICIDIAL_LOG_DDL_PATH = findReference('vicidial_log.sql');

function findReference(file: string): string {
  // shared/ sits beside the repository in CI and on developer machines; a copy in test/fixtures
  // keeps a lone clone working.
  const candidates = [
    join(import.meta.dirname, '..', '..', '..', 'shared', 'reference', file),
    join(import.meta.dirname, '..', 'fixtures', file),
  ];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`cannot find ${file} (looked in ${candidates.join(', ')})`);
  return found;
}

function which(binary: string): string | undefined {
  for (const dir of [
    '/usr/sbin',
    '/usr/bin',
    '/usr/local/sbin',
    '/usr/local/bin',
    ...(process.env.PATH ?? '').split(':'),
  ]) {
    const p = join(dir, binary);
    if (existsSync(p)) return p;
  }
  return undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function startLocalMariaDb(options: { timeZone?: string } = {}): Promise<LocalMariaDb> {
  const external = process.env.TEST_MYSQL_URL;
  if (external) return { url: external, stop: async () => {} };
  // mariadb-install-db has been seen to crash once in a while on a loaded machine: a fresh datadir
  // and a second try make a flaky bootstrap a non-event instead of a red CI.
  let lastError: unknown;
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      return await startOnce(options);
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

async function startOnce(options: { timeZone?: string }): Promise<LocalMariaDb> {
  const mariadbd = which('mariadbd') ?? which('mysqld');
  const installDb = which('mariadb-install-db') ?? which('mysql_install_db');
  if (!mariadbd || !installDb) {
    throw new Error(
      "mariadbd not found: install Debian's mariadb-server (apt-get install mariadb-server) or set TEST_MYSQL_URL",
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'did-sync-mariadb-'));
  const datadir = join(dir, 'data');
  try {
    execFileSync(
      installDb,
      [
        '--no-defaults',
        `--datadir=${datadir}`,
        '--auth-root-authentication-method=normal',
        '--user=root',
        '--skip-test-db',
      ],
      { stdio: 'pipe' },
    );
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    const stderr = String((error as { stderr?: Buffer }).stderr ?? '').slice(-1000);
    throw new Error(`mariadb-install-db failed: ${(error as Error).message}\n${stderr}`);
  }
  const port = await freePort();
  const socket = join(dir, 'sock');
  // A tmpdir of its own: mariadbd deletes the #sql* files it finds in its tmpdir at start-up, so with the
  // shared /tmp a second throwaway server (another test file, the bench, a CI run) would delete the
  // filesort and temporary-table files of a server already at work.
  const scratch = join(dir, 'tmp');
  mkdirSync(scratch);
  const args = [
    '--no-defaults',
    `--datadir=${datadir}`,
    `--socket=${socket}`,
    `--tmpdir=${scratch}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    '--user=root',
    '--skip-log-bin',
    '--skip-name-resolve',
    `--pid-file=${join(dir, 'pid')}`,
    `--log-error=${join(dir, 'error.log')}`,
    '--character-set-server=utf8mb4',
    '--collation-server=utf8mb4_general_ci',
    '--max-connections=500',
  ];
  if (options.timeZone) args.push(`--default-time-zone=${options.timeZone}`);
  const child: ChildProcess = spawn(mariadbd, args, { stdio: 'ignore', detached: false });
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  const url = `mysql://root@127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const conn = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root' });
      await conn.end();
      break;
    } catch (err) {
      if (exited || Date.now() > deadline) {
        const log = existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : '';
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`local MariaDB did not start: ${(err as Error).message}\n${log.slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    url,
    async stop() {
      if (!exited) {
        await new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
        });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Creates a fresh database holding an empty vicidial_log exactly as VICIdial creates it. */
export async function createVicidialDatabase(serverUrl: string, name: string): Promise<string> {
  const conn = await mysql.createConnection({ uri: serverUrl, multipleStatements: true });
  try {
    await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
    await conn.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`);
    await conn.query(`USE \`${name}\``);
    await conn.query(readFileSync(VICIDIAL_LOG_DDL_PATH, 'utf8'));
  } finally {
    await conn.end();
  }
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

/** The engine's database settings for a `mysql://user:password@host:port/database` URL of these helpers. */
export function dbSettingsOf(databaseUrl: string): DbSettings {
  const url = new URL(databaseUrl);
  return {
    host: url.hostname,
    port: Number(url.port),
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    database: decodeURIComponent(url.pathname.slice(1)),
    charset: 'utf8mb4',
  };
}
