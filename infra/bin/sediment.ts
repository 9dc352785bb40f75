#!/usr/bin/env node
import { App, Aspects } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { SedimentStack } from '../lib/sediment-stack';

const app = new App();
new SedimentStack(app, 'Sediment', {
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION ?? 'us-east-1' },
  ingestCode: process.env.SEDIMENT_INGEST_ZIP,
  compactCode: process.env.SEDIMENT_COMPACT_ZIP,
  existingKinesisStreamArn: app.node.tryGetContext('kinesisStreamArn'),
});
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
