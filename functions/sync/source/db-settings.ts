import { readFileSync } from 'node:fs';
import { type DbSettings, type Env, intSetting, SettingError } from '../settings';

export const ASTGUICLIENT_CONF = '/etc/astguiclient.conf';

/** Reads `VARDB_server => 10.0.0.5` style lines of VICIdial's own server configuration. */
export function parseAstguiclientConf(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*(VAR\w+)\s*=>\s*(.*?)\s*$/.exec(line);
    if (match?.[1] && match[2] !== undefined) values[match[1]] = match[2];
  }
  return values;
}

const FROM_CONF: Record<string, string> = {
  VICIDIAL_DB_HOST: 'VARDB_server',
  VICIDIAL_DB_NAME: 'VARDB_database',
  VICIDIAL_DB_USER: 'VARDB_user',
  VICIDIAL_DB_PASSWORD: 'VARDB_pass',
  VICIDIAL_DB_PORT: 'VARDB_port',
};

/**
 * Database settings from `VICIDIAL_DB_*`, falling back to VICIdial's own `/etc/astguiclient.conf` when
 * none is set (the script then runs on a dialer box with no configuration of its own). No credential
 * has a default: VICIdial's well-known install defaults must never be what a deployment runs with.
 */
export function parseDbSettings(
  env: Env,
  readConf: (path: string) => string | undefined = readConfFile,
): DbSettings {
  const anySet = Object.keys(FROM_CONF).some((k) => env[k]?.trim());
  let source: Env = env;
  let origin = 'environment';
  if (!anySet) {
    const path = env.ASTGUICLIENT_CONF?.trim() || ASTGUICLIENT_CONF;
    const text = readConf(path);
    if (text !== undefined) {
      const conf = parseAstguiclientConf(text);
      source = { ...env, ...Object.fromEntries(Object.entries(FROM_CONF).map(([k, v]) => [k, conf[v]])) };
      origin = path;
    }
  }
  const need = (name: string): string => {
    const value = source[name]?.trim();
    if (!value) {
      throw new SettingError(
        name,
        origin === 'environment'
          ? `is required (or leave all VICIDIAL_DB_* unset to read ${ASTGUICLIENT_CONF})`
          : `is missing from ${origin} (${FROM_CONF[name]})`,
      );
    }
    return value;
  };
  const charset = env.VICIDIAL_DB_CHARSET?.trim() || 'utf8mb4';
  if (!/^[a-z0-9_]+$/i.test(charset))
    throw new SettingError('VICIDIAL_DB_CHARSET', `"${charset}" is not a charset name`);
  return {
    host: need('VICIDIAL_DB_HOST'),
    port: intSetting(source, 'VICIDIAL_DB_PORT', '3306', 1, 65535),
    user: need('VICIDIAL_DB_USER'),
    // The password is read untrimmed: spaces may be part of it.
    password: source.VICIDIAL_DB_PASSWORD ?? need('VICIDIAL_DB_PASSWORD'),
    database: source.VICIDIAL_DB_NAME?.trim() || 'asterisk',
    charset,
  };
}

function readConfFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
