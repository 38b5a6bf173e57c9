import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runChecks } from '../../functions/sync/admin/check';
import { parseSyncSettings } from '../../functions/sync/settings';
import { CheckpointStore } from '../../functions/sync/state/checkpoint-store';
import { type LocalDynamoDb, startLocalDynamoDb } from '../support/local-dynamodb';
import { type Json, manySyncs, resources, SYNTH, synthAll } from './synth';

/**
 * Tenant isolation with functionPerSync: the items each kind of code writes and reads (through the real
 * store, ledger and check, against dynalite) are tested against each function role's table statement,
 * evaluated as IAM does: the action listed, and every partition key among `dynamodb:LeadingKeys`.
 */

interface Request {
  kind: string;
  action: string;
  pk: string;
}

const requests: Request[] = [];
let kind = '';
let local: LocalDynamoDb;
let dynamo: DynamoDBClient;
let store: CheckpointStore;
const TABLE = 'isolation';

/** The partition keys a request touches (Key, Item, or a Query's :pk). */
function partitionKeys(input: Json): string[] {
  const pk = input.Key?.pk?.S ?? input.Item?.pk?.S ?? input.ExpressionAttributeValues?.[':pk']?.S;
  return pk === undefined ? [] : [pk];
}

beforeAll(async () => {
  local = await startLocalDynamoDb();
  dynamo = new DynamoDBClient({
    endpoint: local.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  dynamo.middlewareStack.add(
    (next, context) => async (args) => {
      const action = `dynamodb:${String(context.commandName).replace(/Command$/, '')}`;
      for (const pk of partitionKeys(args.input)) requests.push({ kind, action, pk });
      return next(args);
    },
    { step: 'initialize', name: 'recordKeys' },
  );
  store = new CheckpointStore(dynamo, TABLE);
  await store.ensureTable();
  requests.length = 0;

  const syncId = 'main';
  const now = Math.floor(Date.now() / 1000);
  kind = 'checkpoint';
  const acquired = await store.acquire(syncId, 'test', 60_000, { endEpoch: now - 3600, uniqueid: '' });
  if (!acquired.acquired) throw new Error('lease not acquired');
  await store.read(syncId);
  kind = 'ledger';
  await store.ledger.record(syncId, [{ uniqueid: '1700000000.1', endEpoch: now - 600 }], { ledgerDays: 8 });
  await store.ledger.load(syncId, now - 3600, now);
  kind = 'dead letter';
  await store.putDeadLetter({
    syncId,
    uniqueid: '1700000000.2',
    reason: 'test',
    httpStatus: 422,
    responseExcerpt: null,
    payload: null,
    endEpoch: now - 600,
    campaignId: 'C1',
    createdAt: new Date().toISOString(),
    attempts: 1,
    expiresAt: now + 86_400,
  } as Parameters<CheckpointStore['putDeadLetter']>[0]);
  await store.countDeadLetters(syncId);
  await store.deleteDeadLetter(syncId, '1700000000.2');
  kind = 'repair';
  await store.putRepair(syncId, { uniqueid: '1700000000.3', endEpoch: now - 600 }, now + 86_400);
  await store.repairs(syncId);
  await store.deleteRepair(syncId, '1700000000.3');
  kind = 'check probe';
  const failing = async () => {
    throw new Error('not part of this test');
  };
  await runChecks(
    {
      settings: parseSyncSettings({ SYNC_ID: syncId }),
      db: { query: failing } as never,
      api: failing,
      userAgent: 'test',
      dynamo,
      table: TABLE,
    },
    { timeoutMs: 2_000 },
  );
  kind = 'release';
  await store.release(acquired.lease, undefined);
}, SYNTH);

afterAll(async () => {
  dynamo?.destroy();
  await local?.close();
});

/** Whether the role's statements allow `action` on the table for partition key `pk`. */
function allowed(statements: Json[], tableId: string, action: string, pk: string): boolean {
  return statements.some((x) => {
    if (x.Effect !== 'Allow' || !x.Resource || JSON.stringify(x.Resource).indexOf(tableId) < 0) return false;
    if (![x.Action].flat().includes(action)) return false;
    const keys = x.Condition?.['ForAllValues:StringEquals']?.['dynamodb:LeadingKeys'];
    // Without the condition every item would be reachable: that is what this test exists to refuse.
    if (!keys) return true;
    return [keys].flat().includes(pk);
  });
}

describe('each sync role reaches only its own items', () => {
  let template: Json;
  let tableId: string;
  const roleOf = new Map<string, Json[]>();

  beforeAll(() => {
    const syncs = [
      ...manySyncs(1).map((x) => ({ ...x, id: 'main' })),
      ...manySyncs(2).map((x, i) => ({ ...x, id: i === 0 ? 'main2' : 'other' })),
    ];
    template = synthAll({ syncs, functionPerSync: true }).templates.get('DidSync');
    tableId = (resources(template, 'AWS::DynamoDB::Table')[0] as [string, Json])[0];
    for (const [, fn] of resources(template, 'AWS::Lambda::Function')) {
      const syncId = JSON.parse(fn.Properties.Environment.Variables.SYNCS)[0].id;
      const role = fn.Properties.Role['Fn::GetAtt'][0];
      const statements = resources(template, 'AWS::IAM::Policy')
        .filter(([, p]) => p.Properties.Roles.some((r: Json) => r.Ref === role))
        .flatMap(([, p]) => p.Properties.PolicyDocument.Statement);
      roleOf.set(syncId, statements);
    }
  }, SYNTH);

  it('saw every kind of item, all under the partition key sync#main', () => {
    expect([...new Set(requests.map((r) => r.kind))].sort()).toEqual(
      ['check probe', 'checkpoint', 'dead letter', 'ledger', 'release', 'repair'].sort(),
    );
    expect([...new Set(requests.map((r) => r.pk))]).toEqual(['sync#main']);
  });

  it.each(['checkpoint', 'ledger', 'dead letter', 'repair', 'check probe', 'release'])(
    '%s: every request allowed to main, refused to main2 (a prefix match would allow it) and other',
    (k) => {
      const mine = requests.filter((r) => r.kind === k);
      expect(mine.length).toBeGreaterThan(0);
      for (const r of mine) {
        expect(allowed(roleOf.get('main') ?? [], tableId, r.action, r.pk), `${r.action} ${r.pk}`).toBe(true);
        expect(allowed(roleOf.get('main2') ?? [], tableId, r.action, r.pk), `main2 ${r.action}`).toBe(false);
        expect(allowed(roleOf.get('other') ?? [], tableId, r.action, r.pk), `other ${r.action}`).toBe(false);
      }
    },
  );

  it('grants table actions only under the LeadingKeys condition', () => {
    for (const statements of roleOf.values()) {
      const onTable = statements.filter((x: Json) => JSON.stringify(x.Resource).includes(tableId));
      expect(onTable.length).toBeGreaterThan(0);
      for (const x of onTable)
        expect(x.Condition['ForAllValues:StringEquals']['dynamodb:LeadingKeys']).toBeDefined();
    }
  });
});
