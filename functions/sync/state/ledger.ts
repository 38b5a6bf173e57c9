import {
  type AttributeValue,
  type DynamoDBClient,
  GetItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { n, requestTimeout, s } from './dynamo';
import { ledgerSk, partitionKey, SORT_KEYS } from './keys';

/**
 * The delivery ledger: the uniqueid of every call the sync resolved (delivered or dead-lettered), by
 * the hour and minute of its end, so a run can skip what a stopped or crashed run already sent, and
 * reconcile can prove, hour by hour, that every eligible call reached the API.
 *
 * Layout, in the checkpoint table: a string-set attribute per minute of end_epoch (`m<minute epoch>`),
 * in items of an hour (`ledger#<hour epoch>`) or, where calls are dense, of a block of 1 to 15 minutes
 * (`ledger#<hour>#<block start>`), sized from the density a write sees so an item holds about
 * ITEM_UIDS calls: a write costs by the size of its item, and DynamoDB refuses items over 400 KB.
 * Writes only ADD to string sets, so repeating one (a retried request, a run after a crash) changes
 * nothing, and readers take the union of an hour's items whatever layout wrote them. Items expire with
 * the table's TTL attribute `expiresAt`, LEDGER_DAYS after their hour.
 */

export interface LedgerEntry {
  readonly uniqueid: string;
  readonly endEpoch: number;
  /** Default `delivered`. A dead-lettered call is resolved but was never stored by the API. */
  readonly outcome?: LedgerOutcome;
}

export type LedgerOutcome = 'delivered' | 'dead_lettered';

/**
 * Attribute name prefixes: `m<minute>` for delivered calls (and, in items written before the outcome
 * was recorded, dead-lettered ones too), `d<minute>` for dead-lettered ones. The post gate asks
 * "delivered?" (`m`); reconcile and the scan ask "resolved?" (either).
 */
const ATTR_PREFIX: Record<LedgerOutcome, string> = { delivered: 'm', dead_lettered: 'd' };
const RESOLVED_ATTR = /^[md]\d+$/;
const DELIVERED_ATTR = /^m\d+$/;

/** Calls an item is sized for: ~100 KB, a quarter of DynamoDB's item limit. */
const ITEM_UIDS = 4_000;
/** Block lengths in minutes (dividing the hour); the longest is what `loadAfter` looks back over. */
const BLOCKS = [15, 10, 5, 3, 2, 1] as const;
const LONGEST_BLOCK_MINUTES = 15;
/** One write carries at most this many uniqueids (a request is at most 400 KB too). */
const MAX_UIDS_PER_WRITE = 8_000;

export function hourOf(epoch: number): number {
  return Math.floor(epoch / 3600) * 3600;
}

function minuteOf(epoch: number): number {
  return Math.floor(epoch / 60) * 60;
}

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

/**
 * The items one hour's entries go to: the hour's own item when its calls are sparse, blocks of minutes
 * when dense (judged by the calls per minute this write carries), one item per minute when `dense`.
 */
export function itemsFor(
  hour: number,
  minutes: ReadonlyMap<number, Set<string>>,
  dense: boolean,
): Map<string, Map<number, Set<string>>> {
  const keys = [...minutes.keys()];
  const calls = [...minutes.values()].reduce((n, set) => n + set.size, 0);
  const span = (Math.max(...keys) - Math.min(...keys)) / 60 + 1;
  const perMinute = calls / span;
  const block = dense
    ? 1
    : perMinute * 60 <= ITEM_UIDS
      ? 60
      : (BLOCKS.find((b) => perMinute * b <= ITEM_UIDS) ?? 1);
  const out = new Map<string, Map<number, Set<string>>>();
  for (const [minute, set] of minutes) {
    const sk =
      block === 60
        ? ledgerSk(hour)
        : ledgerSk(hour, hour + Math.floor((minute - hour) / (block * 60)) * block * 60);
    let group = out.get(sk);
    if (!group) {
      group = new Map();
      out.set(sk, group);
    }
    group.set(minute, set);
  }
  return out;
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
    return s(partitionKey(syncId));
  }

  /** Records resolved calls; idempotent. */
  async record(syncId: string, entries: readonly LedgerEntry[], options: LedgerOptions): Promise<void> {
    if (entries.length === 0) return;
    const dead = entries.filter((e) => e.outcome === 'dead_lettered');
    const delivered = dead.length === 0 ? entries : entries.filter((e) => e.outcome !== 'dead_lettered');
    await this.recordOutcome(syncId, delivered, 'delivered', options);
    await this.recordOutcome(syncId, dead, 'dead_lettered', options);
  }

  private async recordOutcome(
    syncId: string,
    entries: readonly LedgerEntry[],
    outcome: LedgerOutcome,
    options: LedgerOptions,
  ): Promise<void> {
    if (entries.length === 0) return;
    const attr = ATTR_PREFIX[outcome];
    for (const [hour, minutes] of groupByHour(entries)) {
      const expiresAt = hour + 3600 + options.ledgerDays * 86_400;
      for (const [sk, group] of itemsFor(hour, minutes, this.dense.has(`${syncId}#${hour}`))) {
        try {
          await this.add(syncId, sk, attr, group, expiresAt, options);
        } catch (error) {
          if (!isTooLarge(error)) throw error;
          // Denser than the write could tell: one item per minute for this hour from now on.
          this.dense.add(`${syncId}#${hour}`);
          for (const [minute, set] of group) {
            const uids = [...set];
            for (let i = 0; i < uids.length; i += MAX_UIDS_PER_WRITE) {
              await this.add(
                syncId,
                ledgerSk(hour, minute),
                attr,
                new Map([[minute, new Set(uids.slice(i, i + MAX_UIDS_PER_WRITE))]]),
                expiresAt,
                options,
              );
            }
          }
        }
      }
    }
  }

  private async add(
    syncId: string,
    sk: string,
    attr: string,
    minutes: Map<number, Set<string>>,
    expiresAt: number,
    options: LedgerOptions,
  ): Promise<void> {
    const names: Record<string, string> = {};
    const values: Record<string, AttributeValue> = { ':e': n(expiresAt) };
    const adds: string[] = [];
    let i = 0;
    for (const [minute, set] of minutes) {
      names[`#m${i}`] = `${attr}${minute}`;
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
      { abortSignal: requestTimeout(options.timeoutMs) },
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
      ledgerSk(hourOf(fromEpoch)),
      `${ledgerSk(hourOf(toEpoch - 1))}~`,
    )) {
      for (const [name, attr] of Object.entries(item)) {
        if (!RESOLVED_ATTR.test(name) || !attr.SS) continue;
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
  async loadAfter(syncId: string, fromEpoch: number, attrs: RegExp = RESOLVED_ATTR): Promise<Set<string>> {
    const out = new Set<string>();
    const fromMinute = minuteOf(fromEpoch);
    const take = (item: Record<string, AttributeValue> | undefined) => {
      for (const [name, attr] of Object.entries(item ?? {})) {
        if (!attrs.test(name) || !attr.SS || Number(name.slice(1)) < fromMinute) continue;
        for (const uid of attr.SS) out.add(uid);
      }
    };
    const hour = hourOf(fromEpoch);
    const first = await this.client.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: { pk: this.pk(syncId), sk: s(ledgerSk(hour)) },
        ConsistentRead: true,
      }),
    );
    take(first.Item);
    // A block item starting up to LONGEST_BLOCK_MINUTES before the cursor's minute may cover it.
    const from = Math.max(hour, fromMinute - (LONGEST_BLOCK_MINUTES - 1) * 60);
    for await (const item of this.items(syncId, ledgerSk(hour, from), `${SORT_KEYS.ledgerPrefix}~`))
      take(item);
    return out;
  }

  /**
   * What the ledger records for each of these calls, looked up by the minutes their end may have been
   * recorded under (`fromEpoch`: its start, since an end only moves forward and never precedes the
   * start; `toEpoch`: its end now). Calls the ledger does not hold are absent from the answer. Reads
   * the hours the ranges touch, contiguous hours in one query.
   */
  async outcomes(
    syncId: string,
    calls: readonly { uniqueid: string; fromEpoch: number; toEpoch: number }[],
  ): Promise<Map<string, LedgerOutcome>> {
    const out = new Map<string, LedgerOutcome>();
    if (calls.length === 0) return out;
    const wanted = new Map<string, { from: number; to: number }>();
    const hours = new Set<number>();
    for (const c of calls) {
      const from = minuteOf(Math.min(c.fromEpoch, c.toEpoch));
      const to = minuteOf(c.toEpoch);
      wanted.set(c.uniqueid, { from, to });
      for (let h = hourOf(from); h <= hourOf(to); h += 3600) hours.add(h);
    }
    const sorted = [...hours].sort((a, b) => a - b);
    for (let i = 0; i < sorted.length; ) {
      let j = i;
      while (j + 1 < sorted.length && (sorted[j + 1] as number) === (sorted[j] as number) + 3600) j++;
      for await (const item of this.items(
        syncId,
        ledgerSk(sorted[i] as number),
        `${ledgerSk(sorted[j] as number)}~`,
      )) {
        for (const [name, attr] of Object.entries(item)) {
          if (!RESOLVED_ATTR.test(name) || !attr.SS) continue;
          const minute = Number(name.slice(1));
          const delivered = DELIVERED_ATTR.test(name);
          for (const uid of attr.SS) {
            const range = wanted.get(uid);
            if (!range || minute < range.from || minute > range.to) continue;
            if (delivered || !out.has(uid)) out.set(uid, delivered ? 'delivered' : 'dead_lettered');
          }
        }
      }
      i = j + 1;
    }
    return out;
  }

  /** Every uniqueid the ledger records as delivered for calls ending at or after `fromEpoch`. */
  async deliveredAfter(syncId: string, fromEpoch: number): Promise<Set<string>> {
    return this.loadAfter(syncId, fromEpoch, DELIVERED_ATTR);
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
