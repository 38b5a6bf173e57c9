import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SETTING_DEFAULTS } from '../../functions/sync/settings';

/** The README's settings table is what operators read: its defaults must be the code's. */
describe("the README's settings table", () => {
  const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
  const table = readme.slice(readme.indexOf('### Settings'), readme.indexOf('### A read-only database user'));
  const rows = new Map<string, string>();
  for (const line of table.split('\n')) {
    const m = /^\| `([A-Z_]+)` \| (`[^`]*`|[^|]+?) \|/.exec(line);
    if (m) rows.set(m[1] as string, (m[2] as string).replaceAll('`', '').trim());
  }

  it.each(Object.entries(SETTING_DEFAULTS).filter(([name]) => name !== 'SYNC_ID'))(
    'lists %s with its default %s',
    (name, value) => {
      expect(rows.get(name)).toBe(value);
    },
  );
});
