import {
  type DeadLetter,
  type DeadLetterGroup,
  type HourReport,
  isoOf,
  type ReconcileReport,
  type ResetReport,
  type RunSummary,
  type StatusReport,
  type TraceReport,
} from '../sync';
import { groupDeadLetters } from '../sync/admin';

/** The text answers of `did-sync`: pure functions of the reports, so `--json` and text never disagree. */

export function formatRunSummary(summary: RunSummary): string {
  const lines = [
    `sync ${summary.syncId}: ${summary.outcome}${summary.reason ? ` (${summary.reason})` : ''}${summary.dryRun ? ' [dry run]' : ''}`,
    `  delivered ${summary.delivered}, retried ${summary.retried}, ambiguous ${summary.ambiguous}, rate-limited ${summary.rateLimited}, dead-lettered ${summary.deadLettered}`,
    `  pending ${summary.pending} (resolved ${summary.pendingResolved}), parked ${summary.parked} (new ${summary.parkedNew}, recovered ${summary.recovered}), skipped as delivered ${summary.skippedAhead}`,
    `  batches ${summary.batches}, calls read ${summary.callsRead}, checkpoints ${summary.checkpoints}, concurrency ${summary.concurrency}`,
    `  cursor ${summary.cursor ? `${isoOf(summary.cursor.endEpoch)} ${summary.cursor.uniqueid}` : '-'}, lag ${summary.lagSeconds ?? '-'} s, ${(summary.durationMs / 1000).toFixed(1)} s`,
  ];
  if (summary.detail) lines.push(`  ${summary.detail}`);
  if (summary.lease) lines.push(`  lease held by ${summary.lease.owner} until ${summary.lease.expiresAt}`);
  return `${lines.join('\n')}\n`;
}

export function formatStatus(status: StatusReport): string {
  const run = status.lastRun;
  const success = status.lastSuccess;
  return `${[
    `sync ${status.syncId}${status.exists ? '' : ' (no checkpoint yet)'}: ${status.healthy ? 'healthy' : 'NEEDS A LOOK'}`,
    `  cursor       ${status.cursorTime ?? '-'} ${status.cursor?.uniqueid ?? ''}`.trimEnd(),
    `  lag          ${status.lagSeconds ?? '-'} s (${status.clock} clock)`,
    ...status.warnings.map((w) => `  WARNING      ${w}`),
    `  lease        ${status.lease ? `${status.lease.owner} until ${status.lease.expiresAt}` : 'free'}`,
    `  last run     ${run ? `${run.outcome}${run.reason ? ` (${run.reason})` : ''} at ${run.at}, delivered ${run.delivered}${run.detail ? `: ${run.detail}` : ''}` : '-'}`,
    `  last success ${success ? `${success.outcome} at ${success.at}, delivered ${success.delivered}` : '-'}`,
    `  followed     ${status.pending}`,
    `  parked       ${status.parked}`,
    ...status.parkedCalls.map(
      (p) =>
        `    ${p.uniqueid} ended ${isoOf(p.endEpoch)}, failed in ${p.failures} run(s) since ${isoOf(p.firstFailedAt)}, last HTTP ${p.lastStatus ?? 'none'}`,
    ),
    `  queued       ${status.queuedRepairs} (repairs for the next run)`,
    `  dead letters ${status.deadLetters}`,
  ].join('\n')}\n`;
}

function groupLines(g: DeadLetterGroup): string[] {
  return [
    `${String(g.count).padStart(6)}  ${g.reason}  campaign ${g.campaignId ?? '-'}  (${g.oldest} .. ${g.newest})`,
    ...g.answers.map(
      (a) => `        the API answered${a.count < g.count ? ` (${a.count})` : ''}: ${a.answer}`,
    ),
    `        e.g. ${g.sample.join(' ')}`,
  ];
}

export function formatDeadLetters(syncId: string, letters: readonly DeadLetter[], filtered: boolean): string {
  const groups = groupDeadLetters(letters);
  const lines = [
    `${letters.length} dead letter(s) for sync ${syncId}${filtered ? ' matching the filter' : ''}, in ${groups.length} group(s) by reason and campaign`,
    ...groups.flatMap(groupLines),
  ];
  if (letters.length > 0)
    lines.push(
      'replay: did-sync dead-letters --replay [--campaign ID] [--reason TEXT] [--uniqueid ID]; one call: did-sync trace <uniqueid>',
    );
  return `${lines.join('\n')}\n`;
}

export function formatReconcile(report: ReconcileReport): string {
  const line = (label: string, h: HourReport | ReconcileReport) =>
    `${label.padEnd(24)} eligible ${h.eligible}, delivered ${h.delivered}, dead-lettered ${h.deadLettered}, pending ${h.pending}, parked ${h.parked}, queued ${h.queued}, missing ${h.missing}`;
  const lines = [
    `sync ${report.syncId}: reconcile ${report.since} .. ${report.until}${report.repair ? ' (repair)' : ''}`,
    ...report.notes.map((n) => `  NOTE: ${n}`),
  ];
  for (const h of report.hours) if (h.missing > 0) lines.push(`  ${line(h.hour, h)}`);
  lines.push(`  ${line('total', report)}`);
  if (report.missingUniqueids.length > 0)
    lines.push(
      `  missing: ${report.missingUniqueids.slice(0, 20).join(' ')}${report.missing > 20 ? ' ...' : ''}`,
    );
  if (report.notReached.length > 0)
    lines.push(`  not reached before the deadline: ${report.notReached.join(', ')}`);
  lines.push(`  ${report.rowsRead} rows read in ${(report.durationMs / 1000).toFixed(1)} s`);
  if (report.repair && report.queued > 0)
    lines.push('  queued calls go out with the next run (did-sync run delivers them now)');
  return `${lines.join('\n')}\n`;
}

export function formatTrace(t: TraceReport): string {
  const row = t.row;
  return `${[
    `call ${t.uniqueid} (sync ${t.syncId}): ${t.verdict.replace('_', ' ')}`,
    `  ${t.summary}`,
    row
      ? `  row          status ${row.status ?? '-'}, campaign ${row.campaign_id ?? '-'}, ended ${row.end_epoch > 0 ? isoOf(row.end_epoch) : '-'}, length ${row.length_in_sec ?? '-'} s, ${t.eligible ? 'eligible' : `not eligible (${t.whyNotEligible})`}, ${row.beyond_cursor === 1 ? 'after' : 'behind'} the cursor`
      : '  row          none in vicidial_log',
    `  ledger       ${t.ledgerHour ? `hour ${t.ledgerHour}` : 'not recorded'}${t.hoursSearched.length ? ` (searched ${t.hoursSearched[0]} .. ${t.hoursSearched.at(-1)})` : ''}`,
    `  followed     ${t.pending ? `since ${isoOf(t.pending.firstSeen)}` : 'no'}`,
    `  parked       ${t.parked ? `${t.parked.failures} failed run(s), last HTTP ${t.parked.lastStatus ?? 'none'}` : 'no'}`,
    `  queued       ${t.queued ? 'yes (repair)' : 'no'}`,
    `  dead letter  ${t.deadLetter ? `${t.deadLetter.reason}${t.deadLetter.responseExcerpt ? `; the API answered: ${t.deadLetter.responseExcerpt}` : ''}` : 'no'}`,
  ].join('\n')}\n`;
}

/** What a reset did and what the next runs will do because of it. */
export function formatReset(r: ResetReport): string {
  const head = `sync ${r.syncId}: checkpoint reset to ${r.cursorTime} (${r.direction}; checked against the ${r.checkedAgainst} clock)`;
  const lines = [head];
  if (r.direction === 'backward') {
    if (r.eligible === null) lines.push('  calls behind the old cursor were not counted (no database)');
    else {
      lines.push(
        `  ${r.eligible} eligible call(s) between the two cursors: ${r.alreadyDelivered} delivered, ${r.deadLettered} dead-lettered`,
      );
      lines.push(
        `  the next runs post ${r.rePost} call(s)${r.resend > 0 ? `, ${r.resend} of them delivered before (--resend)` : ' (calls the ledger holds are not posted again)'}`,
      );
    }
  } else if (r.direction === 'forward') {
    lines.push(
      r.eligible === null
        ? '  skipped calls were not counted (no database); reconcile reports the range as skipped'
        : `  ${r.eligible} eligible call(s) skipped: ${r.alreadyDelivered} delivered before, ${r.skippedUndelivered} never delivered (reconcile reports these as skipped)`,
    );
  }
  lines.push(
    '  calls that began up to START_LOOKBACK_SECONDS before the new cursor and end after it are followed',
  );
  return `${lines.join('\n')}\n`;
}
