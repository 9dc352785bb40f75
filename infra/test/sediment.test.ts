import { App, Aspects, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { SedimentStack } from '../lib/sediment-stack';

function build(): { stack: Stack; template: Template } {
  // The same feature flags as cdk.json.
  const app = new App({ context: require('../cdk.json').context });
  const stack = new SedimentStack(app, 'Sediment', { env: { region: 'us-east-1' } });
  Aspects.of(stack).add(new AwsSolutionsChecks({ verbose: true }));
  app.synth();
  return { stack, template: Template.fromStack(stack) };
}

const { stack, template } = build();

test('cdk-nag AwsSolutions passes: no errors, no unsuppressed warnings', () => {
  const errors = Annotations.fromStack(stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*'));
  expect(errors.map((e) => e.entry.data)).toEqual([]);
  const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*'));
  expect(warnings.map((e) => e.entry.data)).toEqual([]);
});

test('lake bucket: private, encrypted, TLS only, multipart cleanup, expiring quarantine and results', () => {
  template.hasResourceProperties('AWS::S3::Bucket', {
    PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
    BucketEncryption: { ServerSideEncryptionConfiguration: [Match.objectLike({ ServerSideEncryptionByDefault: Match.objectLike({ SSEAlgorithm: 'aws:kms' }) })] },
    LifecycleConfiguration: {
      Rules: Match.arrayWith([
        Match.objectLike({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }),
        Match.objectLike({ Prefix: 'lake/quarantine/' }),
        Match.objectLike({ Prefix: 'lake/_results/', ExpirationInDays: 7 }),
      ]),
    },
  });
  template.hasResourceProperties('AWS::S3::BucketPolicy', {
    PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
  });
});

test('ingest Lambda: arm64 provided.al2023 with the lake in its environment', () => {
  template.hasResourceProperties('AWS::Lambda::Function', {
    Runtime: 'provided.al2023', Architectures: ['arm64'], Handler: 'bootstrap',
    Description: Match.stringLikeRegexp('sediment-ingest-lambda'),
    Environment: { Variables: Match.objectLike({ SEDIMENT_LAKE: Match.anyValue() }) },
  });
});

test('stream event source mappings report item failures, bisect, bound retries and age, and keep failures', () => {
  const mappings = template.findResources('AWS::Lambda::EventSourceMapping');
  const streams = Object.values(mappings).filter((m: any) => m.Properties.StartingPosition);
  expect(streams.length).toBe(2); // Kinesis and DynamoDB Streams
  for (const m of streams as any[]) {
    expect(m.Properties.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
    expect(m.Properties.BisectBatchOnFunctionError).toBe(true);
    expect(m.Properties.MaximumRetryAttempts).toBe(5);
    expect(m.Properties.MaximumRecordAgeInSeconds).toBe(86400);
    expect(m.Properties.DestinationConfig.OnFailure.Destination).toBeDefined();
    expect(m.Properties.BatchSize).toEqual({ Ref: 'IngestBatchSize' });
  }
  expect((streams as any[]).some((m) => m.Properties.ParallelizationFactor?.Ref === 'KinesisParallelizationFactor')).toBe(true);
  const sqs = Object.values(mappings).filter((m: any) => !m.Properties.StartingPosition) as any[];
  expect(sqs.length).toBe(1);
  expect(sqs[0].Properties.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
});

test('compaction runs daily and every 15 minutes, with a DLQ, and a backfill state machine fans out per day', () => {
  template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'cron(45 0 * * ? *)' });
  template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(15 minutes)' });
  template.hasResourceProperties('AWS::Lambda::Function', {
    Description: Match.stringLikeRegexp('sediment-compact-lambda'), Timeout: 900, DeadLetterConfig: { TargetArn: Match.anyValue() },
  });
  const sm = Object.values(template.findResources('AWS::StepFunctions::StateMachine'))[0] as any;
  const definition = JSON.stringify(sm.Properties.DefinitionString);
  expect(definition).toContain('\\"Type\\":\\"Map\\"');
  expect(definition).toContain('PlanDays');
});

test('IAM is scoped to lake prefixes per function', () => {
  const policies = template.findResources('AWS::IAM::Policy');
  const text = JSON.stringify(policies);
  expect(text).toContain('/lake/raw/*');
  expect(text).toContain('/lake/quarantine/*');
  expect(text).toContain('/lake/tables/*');
  expect(text).toContain('/lake/_results/*');
  // No statement grants s3:* on everything.
  for (const p of Object.values(policies) as any[]) {
    for (const s of p.Properties.PolicyDocument.Statement) {
      expect(s.Action === 's3:*' && s.Resource === '*').toBe(false);
    }
  }
});

test('alarms on DLQ depth, iterator age, freshness, errors and a missed schedule', () => {
  const alarms = Object.keys(template.findResources('AWS::CloudWatch::Alarm'));
  for (const name of ['IngestFailuresNotEmpty', 'EventsQueueDlqNotEmpty', 'CompactFailuresNotEmpty', 'IngestIteratorAge', 'FreshnessLag', 'IngestErrors', 'CompactionErrors', 'CompactionMissed']) {
    expect(alarms.some((a) => a.startsWith(name))).toBe(true);
  }
  template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
});

test('Glue tables for Athena: Delta events and the raw zone with partition projection; a workgroup with a cutoff', () => {
  template.hasResourceProperties('AWS::Glue::Table', { TableInput: Match.objectLike({ Name: 'events', Parameters: Match.objectLike({ table_type: 'DELTA' }) }) });
  template.hasResourceProperties('AWS::Glue::Table', {
    TableInput: Match.objectLike({ Name: 'raw_events', Parameters: Match.objectLike({ 'projection.enabled': 'true', 'projection.dt.type': 'date', 'projection.hour.range': '0,23' }) }),
  });
  template.hasResourceProperties('AWS::Athena::WorkGroup', {
    WorkGroupConfiguration: Match.objectLike({ BytesScannedCutoffPerQuery: { Ref: 'BytesScannedCutoffPerQuery' }, EnforceWorkGroupConfiguration: true }),
  });
});

test('query service: Fargate behind an internal load balancer', () => {
  template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', { Scheme: 'internal' });
  template.hasResourceProperties('AWS::ECS::TaskDefinition', { RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' } });
});

test('Postgres and Flight SQL doors: an internal NLB open to the VPC on 5432 and 50051, the service serving both', () => {
  template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', { Type: 'network', Scheme: 'internal' });
  for (const port of [5432, 50051]) {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: port, Protocol: 'TCP' });
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      SecurityGroupIngress: Match.arrayWith([Match.objectLike({ FromPort: port, ToPort: port, IpProtocol: 'tcp' })]),
    });
  }
  template.hasResourceProperties('AWS::ECS::TaskDefinition', {
    ContainerDefinitions: Match.arrayWith([Match.objectLike({
      Command: Match.arrayWith(['--pg-listen', '0.0.0.0:5432', '--flight-listen', '0.0.0.0:50051']),
    })]),
  });
});

test('template snapshot', () => {
  const json = template.toJSON();
  // Asset hashes depend on the packaged binaries; keep the snapshot about structure.
  const text = JSON.stringify(json).replace(/[0-9a-f]{64}\.zip/g, 'ASSET.zip');
  expect(JSON.parse(text)).toMatchSnapshot();
});
