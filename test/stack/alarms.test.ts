import { beforeAll, describe, expect, it } from 'vitest';
import { type Json, manySyncs, resources, SYNTH, type Synthesized, synthAll } from './synth';

/**
 * Every alarm action, walked to the topic it names, that topic's policy and its key: an alarm whose
 * notification CloudWatch may not publish reaches no one, however well its metric is chosen.
 */

/** The topic a Ref, or another stack's output (GetStackOutput, ImportValue), points to: [stack, logical id]. */
function topicOf(all: Synthesized, value: Json): [string, string] {
  if (value.Ref) {
    for (const [name, t] of all.templates)
      if (t.Resources[value.Ref]?.Type === 'AWS::SNS::Topic') return [name, value.Ref];
  }
  const output = value['Fn::GetStackOutput'];
  if (output) {
    const out = all.templates.get(output.StackName)?.Outputs?.[output.OutputName];
    if (out?.Value?.Ref) return [output.StackName, out.Value.Ref];
  }
  if (value['Fn::ImportValue']) {
    for (const [name, t] of all.templates) {
      const out = Object.values(t.Outputs ?? {}).find(
        (o: Json) => o.Export?.Name === value['Fn::ImportValue'],
      ) as Json;
      if (out?.Value?.Ref) return [name, out.Value.Ref];
    }
  }
  throw new Error(`alarm action ${JSON.stringify(value)} names no topic of the app`);
}

/** The topic policy statements that let `service` publish to the topic, for this account. */
function publishers(template: Json, topicId: string, service: string): Json[] {
  return resources(template, 'AWS::SNS::TopicPolicy')
    .filter(([, p]) => p.Properties.Topics.some((t: Json) => t.Ref === topicId))
    .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Json[])
    .filter(
      (x) =>
        x.Effect === 'Allow' &&
        [x.Action].flat().includes('sns:Publish') &&
        [x.Principal?.Service].flat().includes(service) &&
        (x.Resource?.Ref === topicId || x.Resource === '*'),
    );
}

function keyAllows(template: Json, topic: Json, service: string): boolean {
  const key = topic.Properties.KmsMasterKeyId;
  if (!key) return true;
  const [, k] =
    resources(template, 'AWS::KMS::Key').find(([id]) => key['Fn::GetAtt']?.[0] === id || key.Ref === id) ??
    [];
  return (k?.Properties.KeyPolicy.Statement ?? []).some(
    (x: Json) =>
      x.Effect === 'Allow' &&
      [x.Principal?.Service].flat().includes(service) &&
      ['kms:Decrypt', 'kms:GenerateDataKey*'].every((a) => [x.Action].flat().includes(a)),
  );
}

function walk(all: Synthesized): string[] {
  const problems: string[] = [];
  let alarms = 0;
  for (const [stackName, template] of all.templates) {
    for (const [id, alarm] of resources(template, 'AWS::CloudWatch::Alarm')) {
      alarms++;
      const actions = [...(alarm.Properties.AlarmActions ?? []), ...(alarm.Properties.OKActions ?? [])];
      if (actions.length === 0) problems.push(`${stackName}/${id}: no action`);
      for (const action of actions) {
        const [topicStack, topicId] = topicOf(all, action);
        const t = all.templates.get(topicStack);
        const allows = publishers(t, topicId, 'cloudwatch.amazonaws.com');
        const scoped = allows.filter(
          (x) =>
            x.Condition?.StringEquals?.['aws:SourceAccount'] &&
            JSON.stringify(x.Condition?.ArnLike?.['aws:SourceArn'] ?? '').includes(':alarm:'),
        );
        if (scoped.length === 0)
          problems.push(`${stackName}/${id}: CloudWatch may not publish to ${topicId}`);
        if (!keyAllows(t, t.Resources[topicId], 'cloudwatch.amazonaws.com'))
          problems.push(`${stackName}/${id}: the key of ${topicId} does not let CloudWatch use it`);
      }
    }
    for (const [id, rule] of resources(template, 'AWS::Events::Rule')) {
      for (const target of rule.Properties.Targets ?? []) {
        const [topicStack, topicId] = topicOf(all, target.Arn);
        if (publishers(all.templates.get(topicStack), topicId, 'events.amazonaws.com').length === 0)
          problems.push(`${stackName}/${id}: EventBridge may not publish to ${topicId}`);
      }
    }
  }
  if (alarms === 0) problems.push('no alarms at all');
  return problems;
}

describe('every alarm can reach a person', () => {
  let one: Synthesized;
  let split: Synthesized;

  beforeAll(() => {
    one = synthAll({ rotation: {} });
    // 45 syncs in three stacks: tenant stacks' alarms publish to the shared stack's topic.
    split = synthAll({ syncs: manySyncs(45), functionPerSync: true, rotation: {} });
  }, SYNTH);

  it('from the checked-in cdk.json with rotation: topic policy (and key) allow every alarm and the rotation rule', () => {
    expect(walk(one)).toEqual([]);
    const rules = [...one.templates.values()].flatMap((t) => resources(t, 'AWS::Events::Rule'));
    expect(rules.map(([, r]) => r.Properties.EventPattern.detail.eventName)).toEqual([['RotationFailed']]);
  });

  it('across stacks: a tenant stack alarm names the shared topic, which lets CloudWatch publish', () => {
    expect(split.templates.size).toBe(3);
    expect(walk(split)).toEqual([]);
  });

  it('fails the walk when the topic policy holds only the TLS deny (the walk checks)', () => {
    const broken: Synthesized = { ...one, templates: new Map(one.templates) };
    const t = structuredClone(one.templates.get('DidSync'));
    for (const [, p] of resources(t, 'AWS::SNS::TopicPolicy'))
      p.Properties.PolicyDocument.Statement = p.Properties.PolicyDocument.Statement.filter(
        (x: Json) => x.Effect === 'Deny',
      );
    broken.templates.set('DidSync', t);
    expect(walk(broken).length).toBeGreaterThan(0);
  });
});
