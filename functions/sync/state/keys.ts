import type { AttributeValue } from '@aws-sdk/client-dynamodb';

/**
 * The one place that says how the sync's items are keyed in the checkpoint table: every item of a
 * sync shares the partition `sync#<id>`; the sort key says what the item is. Changing a key here
 * changes it for every reader and writer at once (they are persisted: old items keep the old key).
 */

export const SORT_KEYS = {
  checkpoint: 'checkpoint',
  runs: 'runs',
  deadLetterPrefix: 'deadletter#',
  repairPrefix: 'repair#',
  ledgerPrefix: 'ledger#',
  checkPrefix: 'check#',
} as const;

export const partitionKey = (syncId: string): string => `sync#${syncId}`;

export const deadLetterSk = (uniqueid: string): string => SORT_KEYS.deadLetterPrefix + uniqueid;
export const repairSk = (uniqueid: string): string => SORT_KEYS.repairPrefix + uniqueid;
/** A ledger item: the hour's own (`ledger#<hour>`), or a block or minute of it (`ledger#<hour>#<start>`). */
export const ledgerSk = (hour: number | string, blockStart?: number | string): string =>
  blockStart === undefined
    ? `${SORT_KEYS.ledgerPrefix}${hour}`
    : `${SORT_KEYS.ledgerPrefix}${hour}#${blockStart}`;
/** `check`'s probe item: unique per probe, so two checks never meet. */
export const checkSk = (atIso: string, nonce: string): string => `${SORT_KEYS.checkPrefix}${atIso}#${nonce}`;

/** The key attributes of one of the sync's items. */
export function itemKey(syncId: string, sk: string): Record<string, AttributeValue> {
  return { pk: { S: partitionKey(syncId) }, sk: { S: sk } };
}
