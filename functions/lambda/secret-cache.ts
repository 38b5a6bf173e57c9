import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

/**
 * Secret values cached across warm invocations for a TTL, so a run every minute does not pay a
 * Secrets Manager call each time, yet a rotation is picked up without a redeploy: after the TTL, or at
 * once when a caller asks for a fresh value because the old one was refused.
 */
export class SecretCache {
  private readonly entries = new Map<string, { value: string; fetchedAt: number }>();

  constructor(
    private readonly client: SecretsManagerClient,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async get(
    secretId: string,
    options: { stage?: 'AWSCURRENT' | 'AWSPENDING'; fresh?: boolean } = {},
  ): Promise<string> {
    const stage = options.stage ?? 'AWSCURRENT';
    const key = `${stage}:${secretId}`;
    const cached = this.entries.get(key);
    if (cached && !options.fresh && this.now() - cached.fetchedAt < this.ttlMs) return cached.value;
    const out = await this.client.send(
      new GetSecretValueCommand({ SecretId: secretId, VersionStage: stage }),
    );
    if (out.SecretString === undefined)
      throw new SecretFormatError(secretId, 'has no SecretString (binary secrets are not supported)');
    this.entries.set(key, { value: out.SecretString, fetchedAt: this.now() });
    return out.SecretString;
  }
}

/** A secret that cannot be used; the message names the secret and the field, never a value. */
export class SecretFormatError extends Error {
  constructor(secretId: string, problem: string) {
    super(`secret ${secretId} ${problem}`);
    this.name = 'SecretFormatError';
  }
}

export function parseSecretJson(secretId: string, text: string): Record<string, unknown> {
  try {
    const value = JSON.parse(text) as unknown;
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // fall through: the parser's message could quote the secret's text
  }
  throw new SecretFormatError(secretId, 'is not a JSON object');
}
