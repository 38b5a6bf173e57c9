/**
 * Reads `SHOW GRANTS` lines to tell whether the sync's database user can only read. The sync never
 * writes to VICIdial; a user that could (VICIdial's own `cron`, root) turns any bug or leaked password
 * into a hazard for the dialer's tables. Pure: the caller runs the queries.
 *
 * Lines never leave this module as text: MariaDB prints the password hash in them
 * (`IDENTIFIED BY PASSWORD '*…'`). Only privilege names and objects are reported.
 */

export type GrantObject =
  | { readonly kind: 'global' }
  | { readonly kind: 'schema'; readonly schema: string }
  | { readonly kind: 'table'; readonly schema: string; readonly table: string }
  | { readonly kind: 'routine'; readonly schema: string; readonly name: string; readonly type: string }
  | { readonly kind: 'proxy' };

/** Who receives the grant: a user (with a host) or a role (without). */
export interface Grantee {
  readonly name: string;
  readonly host?: string;
}

export type Grant =
  | {
      readonly kind: 'privileges';
      /** Upper case, column lists dropped: 'SELECT', 'INSERT', 'ALL PRIVILEGES', 'SHOW VIEW'. */
      readonly privileges: readonly string[];
      readonly on: GrantObject;
      readonly withGrantOption: boolean;
      readonly to: Grantee;
    }
  | { readonly kind: 'roles'; readonly roles: readonly string[]; readonly to: Grantee };

type Token =
  | { readonly t: 'word'; readonly v: string }
  | { readonly t: 'id'; readonly v: string }
  | { readonly t: 'str'; readonly v: string }
  | { readonly t: 'punct'; readonly v: string };

function tokenize(text: string): Token[] | undefined {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '`' || c === "'" || c === '"') {
      let value = '';
      i++;
      for (;;) {
        if (i >= text.length) return undefined;
        const d = text[i] as string;
        if (d === '\\' && c !== '`') {
          value += text[i + 1] ?? '';
          i += 2;
        } else if (d === c && text[i + 1] === c) {
          value += c;
          i += 2;
        } else if (d === c) {
          i++;
          break;
        } else {
          value += d;
          i++;
        }
      }
      tokens.push(c === '`' ? { t: 'id', v: value } : { t: 'str', v: value });
    } else if (/[A-Za-z0-9_$]/.test(c)) {
      const start = i;
      while (i < text.length && /[A-Za-z0-9_$]/.test(text[i] as string)) i++;
      tokens.push({ t: 'word', v: text.slice(start, i) });
    } else {
      tokens.push({ t: 'punct', v: c });
      i++;
    }
  }
  return tokens;
}

const isWord = (token: Token | undefined, word: string) =>
  token?.t === 'word' && token.v.toUpperCase() === word;

/** Index of the first top-level (outside parentheses) occurrence of `word`, or -1. */
function topLevel(tokens: readonly Token[], from: number, word: string): number {
  let depth = 0;
  for (let i = from; i < tokens.length; i++) {
    const token = tokens[i] as Token;
    if (token.t === 'punct' && token.v === '(') depth++;
    else if (token.t === 'punct' && token.v === ')') depth--;
    else if (depth === 0 && isWord(token, word)) return i;
  }
  return -1;
}

function splitTopLevel(tokens: readonly Token[]): Token[][] {
  const parts: Token[][] = [[]];
  let depth = 0;
  for (const token of tokens) {
    if (token.t === 'punct' && token.v === '(') depth++;
    if (token.t === 'punct' && token.v === ')') depth--;
    if (depth === 0 && token.t === 'punct' && token.v === ',') parts.push([]);
    else parts[parts.length - 1]?.push(token);
  }
  return parts.filter((p) => p.length > 0);
}

const ROUTINE_TYPES = new Set(['PROCEDURE', 'FUNCTION', 'PACKAGE']);

function parseObject(tokens: readonly Token[]): GrantObject | undefined {
  let rest = [...tokens];
  let type: string | undefined;
  if (rest[0]?.t === 'word' && ROUTINE_TYPES.has(rest[0].v.toUpperCase())) {
    type = rest[0].v.toUpperCase();
    rest = rest.slice(1);
    if (isWord(rest[0], 'BODY')) {
      type += ' BODY';
      rest = rest.slice(1);
    }
  }
  const part = (token: Token | undefined): string | undefined =>
    token?.t === 'punct' && token.v === '*'
      ? '*'
      : token?.t === 'id' || token?.t === 'word'
        ? token.v
        : undefined;
  const first = part(rest[0]);
  if (first === undefined) return undefined;
  if (rest.length === 1) {
    // `ON *` or `ON tbl`: relative to the session's database; SHOW GRANTS does not print these.
    return undefined;
  }
  const second = part(rest[2]);
  if (rest.length !== 3 || rest[1]?.t !== 'punct' || rest[1].v !== '.' || second === undefined)
    return undefined;
  if (first === '*' && second === '*') return { kind: 'global' };
  if (second === '*') return { kind: 'schema', schema: first };
  if (type) return { kind: 'routine', schema: first, name: second, type };
  return { kind: 'table', schema: first, table: second };
}

function privilegeName(tokens: readonly Token[]): string | undefined {
  const words: string[] = [];
  for (const token of tokens) {
    if (token.t === 'punct' && token.v === '(') break;
    if (token.t !== 'word') return undefined;
    words.push(token.v.toUpperCase());
  }
  return words.length > 0 ? words.join(' ') : undefined;
}

function parseGrantee(tokens: readonly Token[]): Grantee | undefined {
  const name = tokens[0];
  if (!name || (name.t !== 'id' && name.t !== 'word' && name.t !== 'str')) return undefined;
  const at = tokens[1];
  const host = tokens[2];
  if (at?.t === 'punct' && at.v === '@' && host && (host.t === 'id' || host.t === 'word' || host.t === 'str'))
    return { name: name.v, host: host.v };
  return { name: name.v };
}

/** One `SHOW GRANTS` line, or undefined when it is not a GRANT this module understands. */
export function parseGrant(line: string): Grant | undefined {
  const tokens = tokenize(line);
  if (!tokens || !isWord(tokens[0], 'GRANT')) return undefined;
  const on = topLevel(tokens, 1, 'ON');
  const to = topLevel(tokens, 1, 'TO');
  if (to < 0) return undefined;
  const grantee = parseGrantee(tokens.slice(to + 1));
  if (!grantee) return undefined;
  if (on < 0 || on > to) {
    // GRANT `role`[@`host`], ... TO user: a role whose privileges the user may take on.
    const roles = splitTopLevel(tokens.slice(1, to)).map((part) => {
      const name = part[0];
      return name && (name.t === 'id' || name.t === 'word' || name.t === 'str') ? name.v : undefined;
    });
    if (roles.some((r) => r === undefined)) return undefined;
    return { kind: 'roles', roles: roles as string[], to: grantee };
  }
  const privileges = splitTopLevel(tokens.slice(1, on)).map(privilegeName);
  if (privileges.length === 0 || privileges.some((p) => p === undefined)) return undefined;
  const names = privileges as string[];
  const object = names.includes('PROXY')
    ? ({ kind: 'proxy' } as const)
    : parseObject(tokens.slice(on + 1, to));
  if (!object) return undefined;
  const after = tokens.slice(to + 1);
  const withGrantOption = after.some(
    (token, i) => isWord(token, 'WITH') && isWord(after[i + 1], 'GRANT') && isWord(after[i + 2], 'OPTION'),
  );
  return { kind: 'privileges', privileges: names, on: object, withGrantOption, to: grantee };
}

/** A schema in a schema-level grant is a LIKE pattern: `asterisk%` covers `asterisk`, `\_` is a plain `_`. */
function schemaMatches(pattern: string, schema: string): boolean {
  let regex = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '\\' && i + 1 < pattern.length)
      regex += (pattern[++i] as string).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else if (c === '%') regex += '.*';
    else if (c === '_') regex += '.';
    else regex += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${regex}$`, 'i').test(schema);
}

function describeObject(on: GrantObject): string {
  switch (on.kind) {
    case 'global':
      return '*.*';
    case 'schema':
      return `\`${on.schema}\`.*`;
    case 'table':
      return `\`${on.schema}\`.\`${on.table}\``;
    case 'routine':
      return `${on.type} \`${on.schema}\`.\`${on.name}\``;
    case 'proxy':
      return 'another user (PROXY)';
  }
}

/** Does the grant reach the VICIdial schema: globally, the schema itself, or something in it. */
function reaches(on: GrantObject, schema: string): boolean {
  switch (on.kind) {
    case 'global':
    case 'proxy':
      return true;
    case 'schema':
      return schemaMatches(on.schema, schema);
    case 'table':
    case 'routine':
      return on.schema.toLowerCase() === schema.toLowerCase();
  }
}

const READ_ONLY = new Set(['SELECT', 'USAGE']);

export interface GrantJudgement {
  readonly status: 'pass' | 'warn' | 'fail';
  readonly message: string;
  /** Privileges beyond SELECT/USAGE that reach the VICIdial schema (or everything). */
  readonly beyondReadOnly: readonly string[];
  /** Privileges beyond SELECT/USAGE elsewhere, and other remarks. */
  readonly remarks: readonly string[];
  readonly selectOn: readonly string[];
}

function list(items: readonly string[], max = 5): string {
  return items.length <= max
    ? items.join(', ')
    : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}

/**
 * `fail` when anything beyond SELECT (and USAGE, which is no privilege) is granted on the VICIdial
 * schema, a table in it, or globally; `warn` for such privileges elsewhere, SELECT on every schema
 * (it reads mysql.user's password hashes too), a line that could not be read, or a role granted but
 * not active. `SHOW GRANTS` lists the grants of the session's active roles (a user's default role is
 * active from login); MariaDB lets no one else read an inactive role's grants, yet the user may
 * `SET ROLE` to it at will.
 */
export function judgeGrants(lines: readonly string[], schema: string): GrantJudgement {
  const beyond: string[] = [];
  const remarks: string[] = [];
  const selectOn: string[] = [];
  const granted = new Set<string>();
  const shown = new Set<string>();
  let unreadable = 0;
  for (const line of lines) {
    const grant = parseGrant(line);
    if (!grant) {
      unreadable++;
      continue;
    }
    if (grant.kind === 'roles') {
      for (const role of grant.roles) granted.add(role);
      continue;
    }
    const role = grant.to.host === undefined ? grant.to.name : undefined;
    if (role !== undefined) shown.add(role);
    const via = role !== undefined ? ` (role ${role})` : '';
    const where = describeObject(grant.on);
    const extra = grant.privileges.filter((p) => !READ_ONLY.has(p));
    if (grant.withGrantOption) extra.push('GRANT OPTION');
    const findings = extra.map((p) => `${p} on ${where}${via}`);
    if (reaches(grant.on, schema)) beyond.push(...findings);
    else remarks.push(...findings);
    if (grant.privileges.includes('SELECT')) {
      selectOn.push(`${where}${via}`);
      if (grant.on.kind === 'global')
        remarks.push(`SELECT on *.*${via} reads every schema, mysql.user included`);
    }
  }
  if (unreadable > 0) remarks.push(`${unreadable} grant line(s) could not be read`);
  const inactive = [...granted].filter((r) => !shown.has(r));
  if (inactive.length > 0)
    remarks.push(
      `role(s) ${inactive.join(', ')} granted but not active, so their privileges cannot be read here (an administrator can: SHOW GRANTS FOR <role>)`,
    );
  const fix = `grant only SELECT ON \`${schema}\`.vicidial_log`;
  if (beyond.length > 0) {
    return {
      status: 'fail',
      message: `not read-only: ${list(beyond)}; ${fix}`,
      beyondReadOnly: beyond,
      remarks,
      selectOn,
    };
  }
  const reads = selectOn.length > 0 ? `SELECT on ${list(selectOn)}` : 'no SELECT grant seen';
  if (remarks.length > 0) {
    return {
      status: 'warn',
      message: `read-only on \`${schema}\` (${reads}), but: ${list(remarks)}`,
      beyondReadOnly: beyond,
      remarks,
      selectOn,
    };
  }
  return { status: 'pass', message: `read-only: ${reads}`, beyondReadOnly: beyond, remarks, selectOn };
}
