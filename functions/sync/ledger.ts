import {
  type AttributeValue,
  type DynamoDBClient,
  GetItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';

/**
 * The delivery ledger: the uniqueid of every call the sync resolved (delivered or dead-lettered), by
 * the hour and minute of its end, so a run can skip what a stopped or crashed run already sent, and
 * reconcile can prove, hour by hour, that every eligible call reached the API.
 *
 * Layout, in the checkpoint table: one item per sync and hour of end_epoch (`ledger#<hour epoch>`), a
 * string-set attribute per minute (`m<minute epoch>`). Writes only ADD to string sets, so repeating one
 * (a retried request, a run after a crash) changes nothing. An hour too dense for one item (DynamoDB's
 * 400 KB) spills into one item per minute (`ledger#<hour>#<minute>`); reading an hour reads both.
 * Items expire with the table's TTL attribute `expiresAt`, LEDGER_DAYS after their hour.
 */

export interface LedgerEntry {
  readonly uniqueid: string;
  readonly endEpoch: number;
}

const PREFIX = 'ledger#';
/** Keep an item well below DynamoDB's 400 KB: a minute at 10,000 calls is ~250 KB. */
const MAX_UIDS_PER_WRITE = 8_000;

export function hourOf(epoch: number): number {
  return Math.floor(epoch / 3600) * 3600;
}

function minuteOf(epoch: number): number {
  return Math.floor(epoch / 60) * 60;
}

const s = (value: string): AttributeValue => ({ S: value });
const n = (value: number): AttributeValue => ({ N: String(value) });

/** Entries grouped by hour, then minute: one write per hour in the common case. */
export function groupByHour(entries: readonly LedgerEntry[]): Map<number, Map<number, Set<string>>> {
  const hours = new Map<number, Map<number, Set<string>>>();
  for (const e of entries) {
    const hour = hourOf(e.endEpoch);
    let minutes = hours.get(hour);
    if (!minutes) {
      minutes = new Map();
      hours.set(hour, minutes);
    }
    const minute = minuteOf(e.endEpoch);
    let set = minutes.get(minute);
    if (!set) {
      set = new Set();
      minutes.set(minute, set);
    }
    set.add(e.uniqueid);
  }
  return hours;
}

function isTooLarge(error: unknown): boolean {
  const e = error as { name?: string; message?: string };
  return e?.name === 'ValidationException' && /size/i.test(e.message ?? '');
}

export interface LedgerOptions {
  readonly ledgerDays: number;
  readonly timeoutMs?: number;
}

export class DeliveryLedger {
  /** Hours found too dense for one item in this process: written per minute straight away. */
  private readonly dense = new Set<string>();
  /** Writes sent, for the run's figures. */
  writes = 0;

  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  private pk(syncId: string): AttributeValue {
    return s(`sync#${syncId}`);
  }

  /** Records resolved calls; idempotent. */
  async record(syncId: string, entries: readonly LedgerEntry[], options: LedgerOptions): Promise<void> {
    if (entries.length === 0) return;
    for (const [hour, minutes] of groupByHour(entries)) {
      const expiresAt = hour + 3600 + options.ledgerDays * 86_400;
      const key = `${syncId}#${hour}`;
      const total = [...minutes.values()].reduce((k, set) => k + set.size, 0);
      if (!this.dense.has(key) && total <= MAX_UIDS_PER_WRITE) {
        try {
          await this.add(syncId, `${PREFIX}${hour}`, minutes, expiresAt, options);
          continue;
        } catch (error) {
          if (!isTooLarge(error)) throw error;
          this.dense.add(key);
        }
      }
      for (const [minute, set] of minutes) {
        const uids = [...set];
        for (let i = 0; i < uids.length; i += MAX_UIDS_PER_WRITE) {
          await this.add(
            syncId,
            `${PREFIX}${hour}#${minute}`,
            new Map([[minute, new Set(uids.slice(i, i + MAX_UIDS_PER_WRITE))]]),
            expiresAt,
            options,
          );
        }
      }
    }
  }

  private async add(
    syncId: string,
    sk: string,
    minutes: Map<number, Set<string>>,
    expiresAt: number,
    options: LedgerOptions,
  ): Promise<void> {
    const names: Record<string, string> = {};
    const values: Record<string, AttributeValue> = { ':e': n(expiresAt) };
    const adds: string[] = [];
    let i = 0;
    for (const [minute, set] of minutes) {
      names[`#m${i}`] = `m${minute}`;
      values[`:m${i}`] = { SS: [...set] };
      adds.push(`#m${i} :m${i}`);
      i++;
    }
    this.writes++;
    await this.client.send(
      new UpdateItemCommand({
        TableName: this.tableName,
        Key: { pk: this.pk(syncId), sk: s(sk) },
        UpdateExpression: `SET expiresAt = :e ADD ${adds.join(', ')}`,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
      }),
      { abortSignal: AbortSignal.timeout(Math.max(1, Math.min(options.timeoutMs ?? 5_000, 5_000))) },
    );
  }

  /**
   * The uniqueids recorded for calls ending in [fromEpoch, toEpoch), by hour (an hour with no item has
   * an empty set). Reads whole hours, a query page at a time.
   */
  async load(syncId: string, fromEpoch: number, toEpoch: number): Promise<Map<number, Set<string>>> {
    const out = new Map<number, Set<string>>();
    for (let hour = hourOf(fromEpoch); hour < toEpoch; hour += 3600) out.set(hour, new Set());
    if (out.size === 0) return out;
    // '~' sorts after '#' and the digits: the last hour's spill items are included.
    for await (const item of this.items(
      syncId,
      `${PREFIX}${hourOf(fromEpoch)}`,
      `${PREFIX}${hourOf(toEpoch - 1)}~`,
    )) {
      for (const [name, attr] of Object.entries(item)) {
        if (!/^m\d+$/.test(name) || !attr.SS) continue;
        const minute = Number(name.slice(1));
        if (minute + 60 <= fromEpoch || minute >= toEpoch) continue;
        const set = out.get(hourOf(minute));
        if (set) for (const uid of attr.SS) set.add(uid);
      }
    }
    return out;
  }

  /**
   * Every uniqueid recorded for a call ending at or after `fromEpoch` (minute precision): what earlier
   * runs resolved beyond a cursor, whatever they wrote or failed to write afterwards. Reads the cursor's
   * hour item and every item after it; in a caught-up sync, one or two items.
   */
  async loadAfter(syncId: string, fromEpoch: number): Promise<Set<string>> {
    const out = new Set<string>();
    const fromMinute = minuteOf(fromEpoch);
    const take = (item: Record<string, AttributeValue> | undefined) => {
      for (const [name, attr] of Object.entries(item ?? {})) {
        if (!/^m\d+$/.test(name) || !attr.SS || Number(name.slice(1)) < fromMinute) continue;
        for (const uid of attr.SS) out.add(uid);
      }
    };
    const hour = hourOf(fromEpoch);
    const first = await this.client.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: { pk: this.pk(syncId), sk: s(`${PREFIX}${hour}`) },
        ConsistentRead: true,
      }),
    );
    take(first.Item);
    for await (const item of this.items(syncId, `${PREFIX}${hour}#${fromMinute}`, `${PREFIX}~`)) take(item);
    return out;
  }

  /** The sync's ledger items with keys between `from` and `to`, a query page at a time. */
  private async *items(
    syncId: string,
    from: string,
    to: string,
  ): AsyncGenerator<Record<string, AttributeValue>> {
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk AND sk BETWEEN :from AND :to',
          ExpressionAttributeValues: { ':pk': this.pk(syncId), ':from': s(from), ':to': s(to) },
          ExclusiveStartKey: startKey,
          ConsistentRead: true,
        }),
      );
      yield* page.Items ?? [];
      startKey = page.LastEvaluatedKey;
    } while (startKey);
  }
}
