import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, type Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { createStacks } from '../../lib/did-sync-stack';
import { parseStackSettings, type StackSettings } from '../../lib/settings';

export const ROOT = join(import.meta.dirname, '..', '..');
const cdkJson = JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')).context as Record<string, unknown>;
/** The settings of the checked-in cdk.json (its feature flags are CDK's context, not settings). */
export const example = Object.fromEntries(Object.entries(cdkJson).filter(([k]) => !k.startsWith('@')));
/** The feature flags cdk.json sets. */
export const flags = Object.fromEntries(Object.entries(cdkJson).filter(([k]) => k.startsWith('@')));
export const ACCOUNT = '123456789012';
export const REGION = 'us-east-1';
export const SYNTH = 300_000;

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation JSON
export type Json = any;

export interface Synthesized {
  settings: StackSettings;
  stacks: Stack[];
  /** Template JSON per stack name. */
  templates: Map<string, Json>;
}

/** Every stack of the app, as `npx cdk synth` builds them from cdk.json (with its feature flags). */
export function synthAll(
  overrides: Record<string, unknown> = {},
  context: Record<string, unknown> = flags,
): Synthesized {
  const app = new App({ context });
  const settings = parseStackSettings({ ...example, ...overrides });
  const { all } = createStacks(app, 'DidSync', settings, { env: { account: ACCOUNT, region: REGION } });
  const templates = new Map(all.map((stack) => [stack.stackName, Template.fromStack(stack).toJSON()]));
  return { settings, stacks: all, templates };
}

export function resources(json: Json, type: string): [string, Json][] {
  return Object.entries(json.Resources as Record<string, Json>).filter(([, r]) => r.Type === type);
}

/** `count` syncs, each with its own API secret. */
export function manySyncs(count: number, extra: Record<string, unknown> = {}): Record<string, unknown>[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `tenant${String(i + 1).padStart(3, '0')}`,
    apiSecretArn: `arn:aws:secretsmanager:us-east-1:123456789012:secret:did-sync/api/tenant${i + 1}-AbCdEf`,
    ...extra,
  }));
}
