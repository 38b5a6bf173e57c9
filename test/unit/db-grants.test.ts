import { describe, expect, it } from 'vitest';
import { judgeGrants, parseGrant } from '../../functions/sync/source/db-grants';

const USAGE =
  "GRANT USAGE ON *.* TO `did_sync`@`10.0.%` IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122'";
const SELECT = 'GRANT SELECT ON `asterisk`.`vicidial_log` TO `did_sync`@`10.0.%`';

describe('parseGrant', () => {
  it('reads privileges, object and grantee of MariaDB and MySQL lines', () => {
    expect(parseGrant(SELECT)).toEqual({
      kind: 'privileges',
      privileges: ['SELECT'],
      on: { kind: 'table', schema: 'asterisk', table: 'vicidial_log' },
      withGrantOption: false,
      to: { name: 'did_sync', host: '10.0.%' },
    });
    expect(parseGrant(USAGE)).toMatchObject({ privileges: ['USAGE'], on: { kind: 'global' } });
    expect(parseGrant("GRANT ALL PRIVILEGES ON *.* TO 'root'@'localhost' WITH GRANT OPTION")).toMatchObject({
      privileges: ['ALL PRIVILEGES'],
      on: { kind: 'global' },
      withGrantOption: true,
    });
    expect(
      parseGrant(
        'GRANT SELECT, SELECT (`call_date`, `uniqueid`), INSERT ON `asterisk`.`vicidial_log` TO `u`@`%`',
      ),
    ).toMatchObject({ privileges: ['SELECT', 'SELECT', 'INSERT'] });
    expect(parseGrant('GRANT SHOW VIEW, CREATE TEMPORARY TABLES ON asterisk.* TO u@localhost')).toMatchObject(
      {
        privileges: ['SHOW VIEW', 'CREATE TEMPORARY TABLES'],
        on: { kind: 'schema', schema: 'asterisk' },
      },
    );
    expect(parseGrant('GRANT EXECUTE ON PROCEDURE `mysql`.`addgeometrycolumn` TO `u`@`%`')).toMatchObject({
      on: { kind: 'routine', schema: 'mysql', name: 'addgeometrycolumn', type: 'PROCEDURE' },
    });
    expect(parseGrant('GRANT PROXY ON ``@`%` TO `root`@`localhost` WITH GRANT OPTION')).toMatchObject({
      privileges: ['PROXY'],
      on: { kind: 'proxy' },
    });
    expect(parseGrant('GRANT `reader`, `writer` TO `u`@`%`')).toEqual({
      kind: 'roles',
      roles: ['reader', 'writer'],
      to: { name: 'u', host: '%' },
    });
    expect(parseGrant('GRANT UPDATE ON `asterisk`.* TO `writer`')).toMatchObject({ to: { name: 'writer' } });
    // Backticks inside names, and ON / TO inside quoted names, do not confuse it.
    expect(parseGrant('GRANT SELECT (`a ON b`) ON `we``ird`.`t TO x` TO `u`@`%`')).toMatchObject({
      on: { kind: 'table', schema: 'we`ird', table: 't TO x' },
    });
  });

  it('returns undefined for what it cannot read', () => {
    expect(parseGrant('REVOKE SELECT ON *.* FROM u')).toBeUndefined();
    expect(parseGrant('GRANT SELECT ON `unterminated TO u')).toBeUndefined();
    expect(parseGrant('')).toBeUndefined();
  });
});

describe('judgeGrants', () => {
  it('passes the documented grant: SELECT on vicidial_log and USAGE', () => {
    expect(judgeGrants([USAGE, SELECT], 'asterisk')).toMatchObject({
      status: 'pass',
      message: 'read-only: SELECT on `asterisk`.`vicidial_log`',
      beyondReadOnly: [],
    });
  });

  it('fails anything beyond SELECT on the VICIdial schema, a table in it, or globally', () => {
    const cron = judgeGrants(
      [USAGE, 'GRANT SELECT, INSERT, UPDATE, DELETE ON `asterisk`.* TO `cron`@`localhost`'],
      'asterisk',
    );
    expect(cron.status).toBe('fail');
    expect(cron.message).toBe(
      'not read-only: INSERT on `asterisk`.*, UPDATE on `asterisk`.*, DELETE on `asterisk`.*; grant only SELECT ON `asterisk`.vicidial_log',
    );
    expect(
      judgeGrants(['GRANT ALL PRIVILEGES ON *.* TO `root`@`%` WITH GRANT OPTION'], 'asterisk'),
    ).toMatchObject({
      status: 'fail',
      beyondReadOnly: ['ALL PRIVILEGES on *.*', 'GRANT OPTION on *.*'],
    });
    expect(judgeGrants([`${SELECT} WITH GRANT OPTION`], 'asterisk').beyondReadOnly).toEqual([
      'GRANT OPTION on `asterisk`.`vicidial_log`',
    ]);
    expect(judgeGrants(['GRANT LOCK TABLES ON `aster%`.* TO `u`@`%`'], 'asterisk').status).toBe('fail');
    expect(judgeGrants(['GRANT PROXY ON ``@`%` TO `u`@`%`'], 'asterisk').status).toBe('fail');
  });

  it('names the role a privilege comes through', () => {
    const j = judgeGrants(
      [USAGE, SELECT, 'GRANT `writer` TO `did_sync`@`10.0.%`', 'GRANT UPDATE ON `asterisk`.* TO `writer`'],
      'asterisk',
    );
    expect(j.beyondReadOnly).toEqual(['UPDATE on `asterisk`.* (role writer)']);
  });

  it('warns for privileges elsewhere, SELECT on everything, inactive roles and unreadable lines', () => {
    expect(
      judgeGrants([SELECT, 'GRANT INSERT ON `reports`.* TO `did_sync`@`10.0.%`'], 'asterisk'),
    ).toMatchObject({
      status: 'warn',
      message: 'read-only on `asterisk` (SELECT on `asterisk`.`vicidial_log`), but: INSERT on `reports`.*',
    });
    expect(judgeGrants(['GRANT SELECT ON *.* TO `u`@`%`'], 'asterisk')).toMatchObject({
      status: 'warn',
      remarks: ['SELECT on *.* reads every schema, mysql.user included'],
    });
    expect(judgeGrants([SELECT, 'GRANT `writer` TO `did_sync`@`10.0.%`'], 'asterisk').message).toContain(
      'role(s) writer granted but not active',
    );
    expect(judgeGrants([SELECT, 'GRANT something odd'], 'asterisk').remarks).toEqual([
      '1 grant line(s) could not be read',
    ]);
  });

  it('never repeats a grant line (MariaDB prints the password hash in them)', () => {
    const text = JSON.stringify(judgeGrants([USAGE, SELECT, 'GRANT INSERT ON *.* TO u@h'], 'asterisk'));
    expect(text).not.toContain('IDENTIFIED');
    expect(text).not.toContain('D821809F');
  });
});
