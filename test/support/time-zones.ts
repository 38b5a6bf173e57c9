import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import mysql from 'mysql2/promise';

/**
 * Named zones need the server's time zone tables, which a fresh datadir leaves empty. Loads one zone
 * from the host's tzdata (quick, unlike the whole of /usr/share/zoneinfo); false when the host has no
 * tzdata or no mariadb-tzinfo-to-sql, and tests that need the zone skip.
 */
export async function loadTimeZone(serverUrl: string, zone: string): Promise<boolean> {
  const file = join('/usr/share/zoneinfo', zone);
  const tool = ['/usr/bin/mariadb-tzinfo-to-sql', '/usr/bin/mysql_tzinfo_to_sql'].find((p) => existsSync(p));
  const conn = await mysql.createConnection({ uri: serverUrl, multipleStatements: true });
  try {
    const [known] = await conn.query('SELECT COUNT(*) AS n FROM mysql.time_zone_name WHERE Name = ?', [zone]);
    if (Number((known as { n: number }[])[0]?.n) > 0) return true;
    if (!tool || !existsSync(file)) return false;
    const sql = execFileSync(tool, [file, zone], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    await conn.query('USE mysql');
    await conn.query(sql);
    return true;
  } finally {
    await conn.end();
  }
}
