import type { ApiKeyProvider, DbCredentialSource, DbSettings } from '../sync';
import { parseSecretJson, type SecretCache, SecretFormatError } from './secret-cache';

/**
 * Database credentials from a secret in the JSON shape of Secrets Manager's MySQL rotation
 * (`engine`, `host`, `port`, `username`, `password`, `dbname`). AWSPENDING is offered as a last resort:
 * during single-user rotation the database may already have the new password before it is AWSCURRENT.
 */
export class SecretDbCredentials implements DbCredentialSource {
  constructor(
    private readonly cache: SecretCache,
    private readonly secretId: string,
    private readonly charset = 'utf8mb4',
  ) {}

  current(): Promise<DbSettings> {
    return this.read({});
  }

  refresh(): Promise<DbSettings> {
    return this.read({ fresh: true });
  }

  async pending(): Promise<DbSettings | undefined> {
    try {
      return await this.read({ stage: 'AWSPENDING', fresh: true });
    } catch (error) {
      // No rotation under way: there is no AWSPENDING version.
      if ((error as Error).name === 'ResourceNotFoundException') return undefined;
      throw error;
    }
  }

  private async read(options: { stage?: 'AWSCURRENT' | 'AWSPENDING'; fresh?: boolean }): Promise<DbSettings> {
    const json = parseSecretJson(this.secretId, await this.cache.get(this.secretId, options));
    const text = (field: string, required = true): string | undefined => {
      const value = json[field];
      if (value === undefined || value === null || value === '') {
        if (required) throw new SecretFormatError(this.secretId, `has no "${field}"`);
        return undefined;
      }
      if (typeof value !== 'string' && typeof value !== 'number') {
        throw new SecretFormatError(this.secretId, `field "${field}" must be a string`);
      }
      return String(value);
    };
    const port = Number(text('port', false) ?? 3306);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new SecretFormatError(this.secretId, 'field "port" must be a port number');
    }
    const engine = text('engine', false);
    if (engine && !/^(mysql|mariadb)$/i.test(engine)) {
      throw new SecretFormatError(this.secretId, `field "engine" must be mysql or mariadb, got "${engine}"`);
    }
    return {
      host: text('host') as string,
      port,
      user: text('username') as string,
      password: text('password') as string,
      database: text('dbname', false) ?? 'asterisk',
      charset: this.charset,
    };
  }
}

export interface ApiSecret {
  readonly apiKey: string;
  readonly apiUrl: string | undefined;
}

export async function readApiSecret(cache: SecretCache, secretId: string, fresh = false): Promise<ApiSecret> {
  const json = parseSecretJson(secretId, await cache.get(secretId, { fresh }));
  if (typeof json.apiKey !== 'string' || json.apiKey.trim() === '')
    throw new SecretFormatError(secretId, 'has no "apiKey"');
  if (json.apiUrl !== undefined && typeof json.apiUrl !== 'string') {
    throw new SecretFormatError(secretId, 'field "apiUrl" must be a string');
  }
  return { apiKey: json.apiKey, apiUrl: json.apiUrl };
}

/** The API key of one sync (tenants have their own); refreshed once by the engine after a 401/403. */
export function secretApiKey(cache: SecretCache, secretId: string): ApiKeyProvider {
  return {
    key: async () => (await readApiSecret(cache, secretId)).apiKey,
    refresh: async () => (await readApiSecret(cache, secretId, true)).apiKey,
  };
}
