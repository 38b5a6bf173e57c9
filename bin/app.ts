#!/usr/bin/env -S npx tsx
import { App, Aspects } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { DidSyncStack } from '../lib/did-sync-stack';
import { parseStackSettings, readContext, StackSettingsError } from '../lib/settings';

/** The CDK app: `npx cdk synth` / `npx cdk deploy`, configured by cdk.json's context. */
const app = new App();
try {
  const settings = parseStackSettings(readContext((key) => app.node.tryGetContext(key)));
  new DidSyncStack(app, app.node.tryGetContext('stackName') ?? 'DidSync', {
    settings,
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
    description: 'vicidial-did-sync: copies finished VICIdial calls to the DID Optimizer API',
  });
  Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  Aspects.of(app).add(new ServerlessChecks({ verbose: true }));
} catch (error) {
  if (error instanceof StackSettingsError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  throw error;
}
