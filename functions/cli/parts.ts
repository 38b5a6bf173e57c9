import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { type CheckpointSettings, isApiFault, type RunSummary } from '../sync';

/**
 * Errors that name the part that failed: "connect ECONNREFUSED 127.0.0.1:39998" does not say it was
 * DynamoDB, and "connect ETIMEDOUT" does not say which database.
 */

export function dynamoLabel(settings: CheckpointSettings): string {
  const endpoint = settings.endpoint ?? `dynamodb.${settings.region}.amazonaws.com`;
  return `checkpoint table ${settings.table} (DynamoDB ${endpoint})`;
}

const LABELLED = Symbol('did-sync part');

/**
 * Every failed DynamoDB request carries the table and endpoint in its message; its name (and so every
 * `ConditionalCheckFailedException` test) is unchanged.
 */
export function labelDynamoErrors(client: DynamoDBClient, settings: CheckpointSettings): void {
  labelErrors(client, dynamoLabel(settings));
}

/** The same for any SDK client (Secrets Manager: "secrets (Secrets Manager <endpoint>)"). */
export function labelErrors(
  client: Pick<DynamoDBClient, 'middlewareStack'> | { middlewareStack: DynamoDBClient['middlewareStack'] },
  label: string,
): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      try {
        return await next(args);
      } catch (error) {
        if (error instanceof Error && !(error as { [LABELLED]?: boolean })[LABELLED]) {
          error.message = `${label}: ${error.message || error.name}`;
          (error as { [LABELLED]?: boolean })[LABELLED] = true;
        }
        throw error;
      }
    },
    { step: 'initialize', name: 'didSyncPartLabel' },
  );
}

export function isLabelled(error: unknown): boolean {
  return Boolean((error as { [LABELLED]?: boolean })?.[LABELLED]);
}

/** mysql2's and our connection's errors: codes of the wire (ECONN*, ETIMEDOUT), the protocol or the server. */
export function isDatabaseError(error: unknown): boolean {
  const e = error as { code?: unknown; sqlState?: unknown; name?: unknown };
  if (typeof e?.sqlState === 'string') return true;
  if (e?.name === 'DatabaseAccessError' || e?.name === 'DatabaseTimeoutError') return true;
  return (
    typeof e?.code === 'string' && /^(ER_|PROTOCOL_|ECONN|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND)/.test(e.code)
  );
}

export interface PartLabels {
  readonly database: () => string;
  readonly dynamo: string;
  /** Where the API key comes from (API_KEY, or a secret); undefined when the command has no API. */
  readonly apiKey?: string;
  readonly apiUrl?: string;
}

/** The run's failure, said with the part it concerns. */
export function failureLine(summary: RunSummary, parts: PartLabels): string | undefined {
  const detail = summary.detail ?? '';
  switch (summary.reason) {
    case 'database_error':
      return `database ${parts.database()}: ${detail}`;
    case 'checkpoint_error':
      return detail.includes('checkpoint table') ? detail : `${parts.dynamo}: ${detail}`;
    case 'api_auth':
      return `API key from ${parts.apiKey ?? 'API_KEY'} refused by ${parts.apiUrl ?? 'the API'}: ${detail}`;
    default:
      // The API's other faults (down, misconfigured): the detail says which.
      return isApiFault(summary.reason) ? `API ${parts.apiUrl ?? ''}: ${detail}` : detail || undefined;
  }
}
