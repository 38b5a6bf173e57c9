import type { CallRow } from './payload';

/**
 * VICIdial's hourly cleanup (AST_cleanup_agent_log.pl) deletes duplicate vicidial_log rows: rows of
 * one lead with the same end_epoch whose uniqueids share the integer prefix of the first one by
 * start_epoch. That first row survives. The sync posts only the survivor of such twins, and reconcile
 * counts a twin of an accounted call as accounted. Pure: no I/O.
 */

/** The integer part of an Asterisk uniqueid (`<epoch>.<counter>`). */
export function uniqueidPrefix(uniqueid: string): string {
  const dot = uniqueid.indexOf('.');
  return dot < 0 ? uniqueid : uniqueid.slice(0, dot);
}

/** The key twins share, or undefined for a row the cleanup never touches. */
export function twinKey(row: Pick<CallRow, 'uniqueid' | 'lead_id' | 'end_epoch'>): string | undefined {
  const prefix = uniqueidPrefix(row.uniqueid);
  // The cleanup ignores prefixes of 7 characters or fewer.
  if (row.lead_id === null || row.lead_id === undefined || prefix.length <= 7) return undefined;
  return `${row.lead_id}|${row.end_epoch}|${prefix}`;
}

function survivorFirst(a: CallRow, b: CallRow): number {
  const sa = Number(a.start_epoch ?? 0);
  const sb = Number(b.start_epoch ?? 0);
  if (sa !== sb) return sa - sb;
  return a.uniqueid < b.uniqueid ? -1 : a.uniqueid > b.uniqueid ? 1 : 0;
}

/** Of these rows, the twins the cleanup will delete, each with the survivor it keeps. */
export function duplicateTwins(rows: readonly CallRow[]): Map<string, string> {
  const groups = new Map<string, CallRow[]>();
  for (const row of rows) {
    const key = twinKey(row);
    if (!key) continue;
    const group = groups.get(key);
    if (group) group.push(row);
    else groups.set(key, [row]);
  }
  const out = new Map<string, string>();
  for (const group of groups.values()) {
    if (group.length < 2) continue;
    group.sort(survivorFirst);
    const survivor = (group[0] as CallRow).uniqueid;
    for (const row of group.slice(1)) out.set(row.uniqueid, survivor);
  }
  return out;
}
