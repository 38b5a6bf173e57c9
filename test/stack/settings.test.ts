import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  checkContextKeys,
  checkRegion,
  MIN_DEAD_LETTER_DAYS,
  parseStackSettings,
  rateSeconds,
  readContext,
  StackSettingsError,
} from '../../lib/settings';
import { example, flags, manySyncs, ROOT } from './synth';

const sync = (extra: Record<string, unknown>) => ({ ...manySyncs(1)[0], ...extra });

function refusal(overrides: Record<string, unknown>): string {
  try {
    parseStackSettings({ ...example, ...overrides });
  } catch (error) {
    expect(error).toBeInstanceOf(StackSettingsError);
    return (error as Error).message;
  }
  throw new Error('accepted');
}

describe('cdk.json context keys', () => {
  it('refuses a key this app does not know, naming the nearest known one', () => {
    expect(() => checkContextKeys(['memoryMB'])).toThrow(
      'cdk.json context "memoryMB": is not a setting of this app; did you mean "memoryMb"?',
    );
    expect(() => checkContextKeys(['reconcileHour'])).toThrow('did you mean "reconcileHours"?');
    expect(() => checkContextKeys(['frobnicate'])).toThrow(
      'cdk.json context "frobnicate": is not a setting of this app (see the README\'s settings table)',
    );
  });

  it("lets CDK's own keys and stackName through, and every key of the checked-in cdk.json", () => {
    expect(() =>
      checkContextKeys([
        ...Object.keys(flags),
        ...Object.keys(example),
        'stackName',
        'aws:cdk:enable-path-metadata',
        'availability-zones:account=123456789012:region=us-east-1',
        'acknowledged-issue-numbers',
      ]),
    ).not.toThrow();
    expect(Object.keys(flags).length).toBeGreaterThan(50);
  });

  it('names the nearest key inside a sync too, and takes startFrom there', () => {
    expect(refusal({ syncs: [sync({ startFrm: '2026-01-31T08:00:00Z' })] })).toBe(
      'cdk.json context "syncs[0].startFrm": is not a setting of this app; did you mean "startFrom"?',
    );
    const s = parseStackSettings({ ...example, syncs: [sync({ startFrom: '2026-01-31T08:00:00+01:00' })] });
    expect(s.syncs[0]?.startFrom).toBe('2026-01-31T08:00:00+01:00');
    expect(refusal({ syncs: [sync({ startFrom: '1769846400000' })] })).toMatch(/looks like milliseconds/);
    expect(refusal({ syncs: [sync({ startFrom: '2026-01-31 08:00' })] })).toMatch(/with a zone/);
  });

  it('fails `cdk synth` in one line for an unknown key, without a stack trace', () => {
    let stderr = '';
    try {
      execFileSync('npx', ['tsx', 'bin/app.ts'], {
        cwd: ROOT,
        env: {
          ...process.env,
          CDK_CONTEXT_JSON: JSON.stringify({ ...example, memoryMB: 1024 }),
          CDK_OUTDIR: '/tmp',
        },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (error) {
      stderr = (error as { stderr: string }).stderr;
    }
    expect(stderr.trim().split('\n')).toEqual([
      'cdk.json context "memoryMB": is not a setting of this app; did you mean "memoryMb"?',
    ]);
  }, 60_000);

  it('still reads only the settings the schema knows', () => {
    expect(readContext((key) => ({ memoryMb: 1, '@aws-cdk/core:x': true })[key as 'memoryMb'])).toEqual({
      memoryMb: 1,
    });
  });
});

describe('settings that contradict each other are refused at synth, naming the key', () => {
  it('a ledger shorter than the reconcile window plus its margin', () => {
    expect(refusal({ ledgerDays: 1, reconcileHours: 48 })).toMatch(
      /^cdk.json context "ledgerDays": must keep the ledger longer than reconcileHours \(48 h\) plus the reconcile's 2 h margin/,
    );
    expect(refusal({ ledgerDays: 1, syncs: [sync({ reconcileHours: 23 })] })).toMatch(/of sync "tenant001"/);
    expect(() => parseStackSettings({ ...example, ledgerDays: 2, reconcileHours: 45 })).not.toThrow();
  });

  it(`dead letters kept fewer than ${MIN_DEAD_LETTER_DAYS} days`, () => {
    expect(refusal({ deadLetterDays: 1 })).toMatch(/^cdk.json context "deadLetterDays": must be at least 7/);
  });

  it('a secret or key ARN in another region than the stack', () => {
    const s = parseStackSettings({
      ...example,
      syncs: [sync({ apiSecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf' })],
    });
    expect(() => checkRegion(s, 'us-east-1')).toThrow(
      `cdk.json context "syncs[0].apiSecretArn": is in eu-west-1, not in the stack's region us-east-1`,
    );
    expect(() => checkRegion(parseStackSettings(example), 'us-east-1')).not.toThrow();
  });

  it('reservations that would leave the account fewer than 100 unreserved executions', () => {
    expect(refusal({ syncs: manySyncs(100), accountConcurrency: 300 })).toMatch(
      /^cdk.json context "reservedConcurrency": reserves 300 executions over 100 syncs/,
    );
    expect(refusal({ reservedConcurrency: 1 })).toMatch(/^cdk.json context "reservedConcurrency"/);
  });
});

describe('NoRun arithmetic', () => {
  it.each([
    ['rate(9 minutes)', 10, 120],
    ['rate(1 minute)', 2, 120],
    ['rate(1 minute)', 10, 900],
  ])(
    'refuses %s with noRunMinutes %i and timeoutSeconds %i: no run may end before it fires',
    (schedule, noRun, timeout) => {
      const interval = rateSeconds(schedule) as number;
      expect(noRun * 60).toBeLessThanOrEqual(interval + timeout);
      expect(
        refusal({ timeoutSeconds: timeout, alarms: { noRunMinutes: noRun }, syncs: [sync({ schedule })] }),
      ).toMatch(
        /^cdk.json context "alarms.noRunMinutes": must be longer than sync "tenant001"'s schedule interval plus timeoutSeconds/,
      );
    },
  );

  it('requires an explicit noRunMinutes for a cron schedule', () => {
    expect(refusal({ alarms: {}, syncs: [sync({ schedule: 'cron(0 * * * ? *)' })] })).toMatch(
      /^cdk.json context "syncs\[0\].alarms.noRunMinutes": is required for sync "tenant001"'s cron schedule/,
    );
    expect(() =>
      parseStackSettings({
        ...example,
        alarms: {},
        syncs: [sync({ schedule: 'cron(0 * * * ? *)', alarms: { noRunMinutes: 65 } })],
      }),
    ).not.toThrow();
  });
});
