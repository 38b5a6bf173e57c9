import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Stage } from 'aws-cdk-lib';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Json, manySyncs, resources, SYNTH, type Synthesized, synthAll } from './synth';

/** CloudFormation's per-template limits. */
const MAX_RESOURCES = 500;
const MAX_TEMPLATE_BYTES = 1_000_000;

/** Which stack runs each sync (from the SYNCS of the functions in it). */
function placement(all: Synthesized): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, t] of all.templates) {
    for (const [, fn] of resources(t, 'AWS::Lambda::Function')) {
      for (const sync of JSON.parse(fn.Properties.Environment.Variables.SYNCS)) out.set(sync.id, name);
    }
  }
  return out;
}

describe('a hundred tenants with functionPerSync', () => {
  let hundred: Synthesized;
  let assembly: string;

  beforeAll(() => {
    hundred = synthAll({ syncs: manySyncs(100), functionPerSync: true });
    assembly = (Stage.of(hundred.stacks[0] as never) as Stage).synth().directory;
  }, SYNTH);

  it('spreads them over stacks, each template under 500 resources and 1 MB', () => {
    expect(hundred.templates.size).toBe(5);
    for (const stack of hundred.stacks) {
      const count = Object.keys(hundred.templates.get(stack.stackName).Resources).length;
      const bytes = statSync(join(assembly, stack.templateFile)).size;
      expect(count, stack.stackName).toBeLessThan(MAX_RESOURCES);
      expect(bytes, stack.stackName).toBeLessThan(MAX_TEMPLATE_BYTES);
    }
    expect(placement(hundred).size).toBe(100);
  });

  it('keeps the table, topic and network in the stack named DidSync, and only there', () => {
    for (const [name, t] of hundred.templates) {
      const shared = name === 'DidSync' ? 1 : 0;
      expect(resources(t, 'AWS::DynamoDB::Table'), name).toHaveLength(shared);
      expect(resources(t, 'AWS::SNS::Topic'), name).toHaveLength(shared);
      expect(resources(t, 'AWS::EC2::SecurityGroup'), name).toHaveLength(shared);
      expect(resources(t, 'AWS::Scheduler::ScheduleGroup'), name).toHaveLength(shared);
    }
  });

  it('bundles the function code once: every function uses the same asset', () => {
    const keys = new Set(
      [...hundred.templates.values()].flatMap((t) =>
        resources(t, 'AWS::Lambda::Function').map(([, f]) => f.Properties.Code.S3Key),
      ),
    );
    expect(keys.size).toBe(1);
  });

  it(
    'never moves a sync when one is appended',
    () => {
      const more = synthAll({ syncs: manySyncs(101), functionPerSync: true });
      const before = placement(hundred);
      const after = placement(more);
      for (const [id, stack] of before) expect(after.get(id), id).toBe(stack);
      expect(more.templates.size).toBe(6);
    },
    SYNTH,
  );

  it('protects every stack from termination and tags every taggable resource with project', () => {
    for (const stack of hundred.stacks) expect(stack.terminationProtection, stack.stackName).toBe(true);
    for (const [name, t] of hundred.templates) {
      for (const [id, r] of Object.entries(t.Resources as Record<string, Json>)) {
        if (!r.Properties?.Tags) continue;
        const tags = Array.isArray(r.Properties.Tags)
          ? Object.fromEntries(r.Properties.Tags.map((x: Json) => [x.Key, x.Value]))
          : r.Properties.Tags;
        expect(tags.project, `${name}/${id}`).toBe('vicidial-did-sync');
        expect(tags.sync, `${name}/${id}`).toBeDefined();
      }
    }
  });
});
