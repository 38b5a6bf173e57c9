import { describe, expect, it } from 'vitest';
import { rateSeconds } from '../../lib/settings';
import { example, type Json, manySyncs, resources, SYNTH, synthAll } from './synth';

const shared = (overrides: Record<string, unknown>, context?: Record<string, unknown>) =>
  synthAll(overrides, context).templates.get('DidSync') as Json;

describe('database secret rotation', () => {
  it(
    'does not rotate at deploy, and with manageDbIngress waits for the rule that lets the rotation in',
    () => {
      const t = shared({ rotation: {} });
      const [, schedule] = resources(t, 'AWS::SecretsManager::RotationSchedule')[0] as [string, Json];
      expect(schedule.Properties.RotateImmediatelyOnUpdate).toBe(false);
      const [rotationSg] = resources(t, 'AWS::EC2::SecurityGroup').find(([id]) =>
        id.startsWith('DbSecretRotation'),
      ) as [string, Json];
      const [ingressId] = resources(t, 'AWS::EC2::SecurityGroupIngress').find(
        ([, r]) => r.Properties.SourceSecurityGroupId?.['Fn::GetAtt']?.[0] === rotationSg,
      ) as [string, Json];
      expect([schedule.DependsOn].flat()).toContain(ingressId);
    },
    SYNTH,
  );

  it(
    'with manageDbIngress false: no rule to wait for, the first rotation comes after `days`',
    () => {
      const t = shared({ rotation: { days: 14 }, manageDbIngress: false });
      const [, schedule] = resources(t, 'AWS::SecretsManager::RotationSchedule')[0] as [string, Json];
      expect(schedule.Properties).toMatchObject({
        RotateImmediatelyOnUpdate: false,
        RotationRules: { ScheduleExpression: 'rate(14 days)' },
      });
      expect(resources(t, 'AWS::EC2::SecurityGroupIngress')).toEqual([]);
    },
    SYNTH,
  );

  it(
    'sends a RotationFailed event of the database secret to the alarm topic',
    () => {
      const t = shared({ rotation: {} });
      const [topicId] = resources(t, 'AWS::SNS::Topic')[0] as [string, Json];
      const [, rule] = resources(t, 'AWS::Events::Rule')[0] as [string, Json];
      expect(rule.Properties.EventPattern).toEqual({
        source: ['aws.secretsmanager'],
        'detail-type': ['AWS Service Event via CloudTrail'],
        detail: { eventName: ['RotationFailed'], additionalEventData: { SecretId: [example.dbSecretArn] } },
      });
      expect(rule.Properties.Targets.map((x: Json) => x.Arn)).toEqual([{ Ref: topicId }]);
    },
    SYNTH,
  );
});

describe('NoRun fires only when a run was due and did not end', () => {
  it.each([
    ['rate(1 minute)', {}],
    ['rate(5 minutes)', {}],
    ['rate(15 minutes)', {}],
    ['rate(1 hour)', {}],
    ['cron(0 * * * ? *)', { noRunMinutes: 65 }],
  ])(
    '%s: the alarm window is longer than the interval plus the timeout',
    (schedule, alarms) => {
      // The stack-wide noRunMinutes of cdk.json (10) is left out: the default must fit every rate.
      const t = shared({ alarms: {}, syncs: manySyncs(1, { schedule, alarms }) });
      const noRun = resources(t, 'AWS::CloudWatch::Alarm').find(([, a]) =>
        a.Properties.AlarmName.endsWith('-NoRun'),
      );
      const a = (noRun as [string, Json])[1].Properties;
      const window = a.EvaluationPeriods * a.Metrics.find((m: Json) => m.MetricStat).MetricStat.Period;
      const due = (rateSeconds(schedule) ?? 3600) + 120;
      expect(window).toBeGreaterThan(due);
      expect(a.TreatMissingData).toBe('breaching');
    },
    SYNTH,
  );
});

describe('feature flags', () => {
  it(
    "keep the table's, log groups' and topic's logical ids and properties of a deployment made without them",
    () => {
      for (const overrides of [{}, { functionPerSync: true, rotation: {}, createVpcEndpoints: true }]) {
        const before = shared(overrides, {});
        const after = shared(overrides);
        const kept = (t: Json) =>
          Object.fromEntries(
            Object.entries(t.Resources as Record<string, Json>).filter(([, r]) =>
              ['AWS::DynamoDB::Table', 'AWS::Logs::LogGroup', 'AWS::SNS::Topic'].includes(r.Type),
            ),
          );
        expect(Object.keys(kept(before)).length).toBeGreaterThanOrEqual(3);
        expect(kept(after)).toEqual(kept(before));
        // No resource of the stack is replaced by a new logical id either.
        expect(Object.keys(after.Resources).sort()).toEqual(Object.keys(before.Resources).sort());
      }
    },
    SYNTH,
  );
});
