#!/usr/bin/env -S npx tsx
import { App, Aspects, Token } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { createStacks } from '../lib/did-sync-stack';
import {
  checkContextKeys,
  checkRegion,
  parseStackSettings,
  readContext,
  StackSettingsError,
} from '../lib/settings';

/** The CDK app: `npx cdk synth` / `npx cdk deploy`, configured by cdk.json's context. */
const app = new App();
try {
  checkContextKeys(Object.keys(app.node.getAllContext()));
  const settings = parseStackSettings(readContext((key) => app.node.tryGetContext(key)));
  const region = process.env.CDK_DEFAULT_REGION;
  if (region && !Token.isUnresolved(region)) checkRegion(settings, region);
  createStacks(app, app.node.tryGetContext('stackName') ?? 'DidSync', settings, {
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region },
    description: 'vicidial-did-sync: copies finished VICIdial calls to the DID Optimizer API',
  });
  Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  Aspects.of(app).add(new ServerlessChecks({ verbose: true }));
  app.synth();
} catch (error) {
  // One line naming the problem: never a stack trace through the minified library.
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(
    `${error instanceof StackSettingsError ? '' : 'synth failed: '}${message.split('\n')[0]}\n`,
  );
  process.exit(error instanceof StackSettingsError ? 2 : 1);
}
