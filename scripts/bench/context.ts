import { type AttributeValue, type DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import mysql from 'mysql2/promise';
import type { FakeDidApi } from '../../test/support/fake-did-api';
import type { LocalDynamoDb } from '../../test/support/local-dynamodb';
import { createVicidialDatabase, type LocalMariaDb } from '../../test/support/local-mariadb';
import { onCleanup } from './common';
import type { DbTarget } from './runner';

/** What every section shares: the throwaway servers, and the database user the sync runs as. */
export interface BenchContext {
  readonly maria: LocalMariaDb;
  readonly mariaVersion: string;
  readonly dynamo: LocalDynamoDb;
  readonly api: FakeDidApi;
  readonly apiKey: string;
  readonly table: string;
  /** Root on the server, no database selected. */
  readonly root: mysql.Connection;
  /** For looking at the checkpoint items (not the runs' own client). */
  readonly dynamoClient: DynamoDBClient;
}

/** The sync connects as a read-only user of its own, so the server's per-user statistics are the sync's. */
export const ENGINE_USER = 'did_sync_bench';
const ENGINE_PASSWORD = 'bench-only-password';

export async function createEngineUser(root: mysql.Connection): Promise<void> {
  await root.query(`DROP USER IF EXISTS '${ENGINE_USER}'@'%'`);
  await root.query(`CREATE USER '${ENGINE_USER}'@'%' IDENTIFIED BY '${ENGINE_PASSWORD}'`);
}

/** A fresh vicidial_log database the sync's user may read; dropped at the end. */
export async function benchDatabase(
  ctx: BenchContext,
  name: string,
): Promise<{ name: string; url: string; pool: mysql.Pool; target: DbTarget }> {
  const url = await createVicidialDatabase(ctx.maria.url, name);
  await ctx.root.query(`GRANT SELECT ON \`${name}\`.* TO '${ENGINE_USER}'@'%'`);
  const pool = mysql.createPool({ uri: url, connectionLimit: 2, charset: 'utf8mb4', dateStrings: true });
  onCleanup(`database ${name}`, async () => {
    await pool.query(`DROP DATABASE IF EXISTS \`${name}\``).catch(() => undefined);
    await pool.end();
  });
  const u = new URL(url);
  return {
    name,
    url,
    pool,
    target: {
      host: u.hostname,
      port: Number(u.port),
      user: ENGINE_USER,
      password: ENGINE_PASSWORD,
      database: name,
      charset: 'utf8mb4',
    },
  };
}

export async function dbNow(conn: mysql.Connection | mysql.Pool): Promise<number> {
  const [rows] = await conn.query('SELECT UNIX_TIMESTAMP() AS now');
  return Math.floor(Number((rows as { now: number | string }[])[0]?.now));
}

/** An item's size as DynamoDB counts it (names plus values, about 3 bytes per list or map): what a write costs. */
function attributeBytes(value: AttributeValue): number {
  if (value.S !== undefined) return Buffer.byteLength(value.S);
  if (value.N !== undefined) return Math.ceil(value.N.replace(/^-/, '').length / 2) + 1;
  if (value.B !== undefined) return value.B.length;
  if (value.BOOL !== undefined || value.NULL !== undefined) return 1;
  if (value.L !== undefined) return 3 + value.L.reduce((a, v) => a + 1 + attributeBytes(v), 0);
  if (value.M !== undefined) return 3 + itemBytes(value.M);
  if (value.SS !== undefined) return value.SS.reduce((a, v) => a + Buffer.byteLength(v), 0);
  if (value.NS !== undefined) return value.NS.reduce((a, v) => a + Math.ceil(v.length / 2) + 1, 0);
  return 0;
}

function itemBytes(item: Record<string, AttributeValue>): number {
  return Object.entries(item).reduce((a, [name, v]) => a + Buffer.byteLength(name) + attributeBytes(v), 0);
}

/**
 * The size of a sync's checkpoint item (cursor, lease, parked calls, the names of the followed calls'
 * items): what each checkpoint write rewrites. A write that changed the followed set also puts one
 * small delta item (state/followed-log.ts), sized by the calls followed and let go since the last one.
 */
export async function checkpointItemBytes(ctx: BenchContext, syncId: string): Promise<number | null> {
  const out = await ctx.dynamoClient.send(new ScanCommand({ TableName: ctx.table }));
  const mine = (out.Items ?? []).filter(
    (item) => item.pk?.S === `sync#${syncId}` && item.sk?.S === 'checkpoint',
  );
  return mine.length === 0 ? null : Math.max(...mine.map(itemBytes));
}
