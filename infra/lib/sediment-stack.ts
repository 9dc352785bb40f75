import * as path from 'path';
import {
  Aws, CfnOutput, CfnParameter, Duration, RemovalPolicy, Stack, StackProps,
  aws_athena as athena,
  aws_cloudwatch as cw,
  aws_cloudwatch_actions as cwActions,
  aws_dynamodb as dynamodb,
  aws_ec2 as ec2,
  aws_ecs as ecs,
  aws_elasticloadbalancingv2 as elbv2,
  aws_events as events,
  aws_events_targets as targets,
  aws_glue as glue,
  aws_kinesis as kinesis,
  aws_kms as kms,
  aws_lambda as lambda,
  aws_lambda_event_sources as sources,
  aws_logs as logs,
  aws_s3 as s3,
  aws_sns as sns,
  aws_sqs as sqs,
  aws_stepfunctions as sfn,
  aws_stepfunctions_tasks as tasks,
} from 'aws-cdk-lib';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';

export interface SedimentProps extends StackProps {
  /** Directory or zip of the ingest Lambda (`cargo lambda build --release --arm64 --output-format zip`). */
  readonly ingestCode?: string;
  /** Directory or zip of the compaction Lambda. */
  readonly compactCode?: string;
  /** Use an existing Kinesis stream instead of creating one. */
  readonly existingKinesisStreamArn?: string;
}

/** Lake prefixes, as in DESIGN.md. */
const RAW = 'lake/raw/*';
const QUARANTINE = 'lake/quarantine/*';

const placeholder = path.join(__dirname, '..', 'assets', 'placeholder');

export class SedimentStack extends Stack {
  constructor(scope: Construct, id: string, props: SedimentProps = {}) {
    super(scope, id, props);

    // ---- parameters ----
    const batchSize = new CfnParameter(this, 'IngestBatchSize', { type: 'Number', default: 1000, minValue: 1, maxValue: 10000,
      description: 'Records per ingest invocation (Kinesis, DynamoDB Streams; SQS is capped at 10 without a batching window).' });
    const batchWindow = new CfnParameter(this, 'IngestBatchingWindowSeconds', { type: 'Number', default: 1, minValue: 0, maxValue: 300,
      description: 'Seconds the event source waits to fill a batch (freshness vs. files per hour).' });
    const parallelism = new CfnParameter(this, 'KinesisParallelizationFactor', { type: 'Number', default: 2, minValue: 1, maxValue: 10 });
    const cutoff = new CfnParameter(this, 'BytesScannedCutoffPerQuery', { type: 'Number', default: 10737418240, minValue: 10000000,
      description: 'Athena workgroup and query service cutoff, bytes (minimum 10 MB).' });
    const quarantineDays = new CfnParameter(this, 'QuarantineRetentionDays', { type: 'Number', default: 90, minValue: 1 });
    const queryImage = new CfnParameter(this, 'QueryImage', { type: 'String', default: 'public.ecr.aws/docker/library/busybox:latest',
      description: 'Container image of `sediment serve` (build infra/docker/Dockerfile, push to ECR).' });
    const lagThreshold = new CfnParameter(this, 'FreshnessLagAlarmMs', { type: 'Number', default: 300000, minValue: 1000,
      description: 'Alarm when the p99 age of ingested events exceeds this many milliseconds.' });

    // ---- storage ----
    const key = new kms.Key(this, 'LakeKey', { enableKeyRotation: true, description: 'Sediment lake, queues and streams' });
    const logBucket = new s3.Bucket(this, 'AccessLogs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL, encryption: s3.BucketEncryption.S3_MANAGED, enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: Duration.days(365), abortIncompleteMultipartUploadAfter: Duration.days(1) }],
    });
    // Versioning off: raw files and Delta data files are written once (conditional PUTs);
    // vacuum deletes what nothing needs, and versioning would keep paying for it.
    const bucket = new s3.Bucket(this, 'Lake', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.KMS, encryptionKey: key, bucketKeyEnabled: true,
      enforceSSL: true, versioned: false,
      serverAccessLogsBucket: logBucket, serverAccessLogsPrefix: 'lake/',
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        { id: 'abort-multipart', abortIncompleteMultipartUploadAfter: Duration.days(1) },
        { id: 'quarantine-expiry', prefix: 'lake/quarantine/', expiration: Duration.days(quarantineDays.valueAsNumber) },
        { id: 'results-expiry', prefix: 'lake/_results/', expiration: Duration.days(7) },
        { id: 'athena-results-expiry', prefix: 'athena-results/', expiration: Duration.days(7) },
      ],
    });
    const lakeUrl = `s3://${bucket.bucketName}/lake`;

    // ---- alarms go here ----
    const topic = new sns.Topic(this, 'Alarms', { masterKey: key, enforceSSL: true });
    const alarm = (a: cw.Alarm) => a.addAlarmAction(new cwActions.SnsAction(topic));

    // ---- ingest ----
    const ingestFailures = new sqs.Queue(this, 'IngestFailures', {
      encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: key, enforceSSL: true, retentionPeriod: Duration.days(14),
    });
    const ingest = new lambda.Function(this, 'Ingest', {
      functionName: undefined,
      runtime: lambda.Runtime.PROVIDED_AL2023, architecture: lambda.Architecture.ARM_64, handler: 'bootstrap',
      code: lambda.Code.fromAsset(props.ingestCode ?? placeholder),
      memorySize: 1024, timeout: Duration.seconds(60),
      environment: { SEDIMENT_LAKE: lakeUrl, RUST_LOG: 'info' },
      logGroup: new logs.LogGroup(this, 'IngestLogs', { retention: logs.RetentionDays.ONE_MONTH }),
      description: 'sediment-ingest-lambda: stream batches to exactly-once raw Parquet',
    });
    bucket.grantPut(ingest, RAW);
    bucket.grantPut(ingest, QUARANTINE);
    bucket.grantRead(ingest, RAW); // a retried batch checks its keys (conditional PUT answers need read)

    const stream = props.existingKinesisStreamArn
      ? kinesis.Stream.fromStreamArn(this, 'Events', props.existingKinesisStreamArn)
      : new kinesis.Stream(this, 'Events', { encryption: kinesis.StreamEncryption.MANAGED, streamMode: kinesis.StreamMode.ON_DEMAND });
    const streamSettings = {
      startingPosition: lambda.StartingPosition.TRIM_HORIZON,
      batchSize: batchSize.valueAsNumber,
      maxBatchingWindow: Duration.seconds(batchWindow.valueAsNumber),
      reportBatchItemFailures: true,
      bisectBatchOnError: true,
      retryAttempts: 5,
      maxRecordAge: Duration.days(1),
      onFailure: new sources.SqsDlq(ingestFailures),
    };
    ingest.addEventSource(new sources.KinesisEventSource(stream, { ...streamSettings, parallelizationFactor: parallelism.valueAsNumber }));

    const sqsDlq = new sqs.Queue(this, 'EventsQueueDlq', { encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: key, enforceSSL: true, retentionPeriod: Duration.days(14) });
    const queue = new sqs.Queue(this, 'EventsQueue', {
      encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: key, enforceSSL: true,
      visibilityTimeout: Duration.seconds(360), deadLetterQueue: { queue: sqsDlq, maxReceiveCount: 5 },
    });
    ingest.addEventSource(new sources.SqsEventSource(queue, { batchSize: 10, maxBatchingWindow: Duration.seconds(batchWindow.valueAsNumber), reportBatchItemFailures: true }));

    const store = new dynamodb.Table(this, 'EventStore', {
      partitionKey: { name: 'aggregate_id', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sequence', type: dynamodb.AttributeType.NUMBER },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      stream: dynamodb.StreamViewType.NEW_IMAGE,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED, encryptionKey: key,
    });
    ingest.addEventSource(new sources.DynamoEventSource(store, streamSettings));

    const busDlq = new sqs.Queue(this, 'EventBridgeDlq', { encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: key, enforceSSL: true });
    new events.Rule(this, 'DomainEvents', {
      description: 'Domain events published to the default bus by the command side',
      eventPattern: { source: [{ prefix: 'app.' }] as any },
      targets: [new targets.LambdaFunction(ingest, { deadLetterQueue: busDlq, retryAttempts: 4, maxEventAge: Duration.hours(6) })],
    });

    // ---- compaction ----
    const compactDlq = new sqs.Queue(this, 'CompactFailures', { encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: key, enforceSSL: true, retentionPeriod: Duration.days(14) });
    const compact = new lambda.Function(this, 'Compact', {
      runtime: lambda.Runtime.PROVIDED_AL2023, architecture: lambda.Architecture.ARM_64, handler: 'bootstrap',
      code: lambda.Code.fromAsset(props.compactCode ?? placeholder),
      memorySize: 3008, timeout: Duration.minutes(15), ephemeralStorageSize: undefined,
      environment: { SEDIMENT_LAKE: lakeUrl, RUST_LOG: 'info' },
      deadLetterQueue: compactDlq, retryAttempts: 1,
      logGroup: new logs.LogGroup(this, 'CompactLogs', { retention: logs.RetentionDays.ONE_MONTH }),
      description: 'sediment-compact-lambda: curated Delta tables, daily snapshots, read models',
    });
    bucket.grantRead(compact);
    bucket.grantPut(compact, 'lake/tables/*');
    bucket.grantPut(compact, 'lake/_manifests/*');
    bucket.grantPut(compact, 'lake/_reports/*');
    bucket.grantReadWrite(compact, 'lake/_sediment/*');
    bucket.grantDelete(compact, 'lake/_sediment/*');
    new events.Rule(this, 'DailyCompaction', { schedule: events.Schedule.cron({ minute: '45', hour: '0' }), targets: [new targets.LambdaFunction(compact)] });
    new events.Rule(this, 'DirtyDaysCompaction', { schedule: events.Schedule.rate(Duration.minutes(15)), targets: [new targets.LambdaFunction(compact)] });

    // Backfill: plan the days of a range, then one compaction per day.
    const plan = new tasks.LambdaInvoke(this, 'PlanDays', {
      lambdaFunction: compact,
      payload: sfn.TaskInput.fromObject({ 'dates_from.$': '$.from', 'dates_to.$': '$.to' }),
      resultSelector: { 'dates.$': '$.Payload.dates' },
    });
    const perDay = new sfn.Map(this, 'EachDay', { itemsPath: '$.dates', maxConcurrency: 4 });
    perDay.itemProcessor(new tasks.LambdaInvoke(this, 'CompactDay', {
      lambdaFunction: compact,
      payload: sfn.TaskInput.fromObject({ 'date.$': '$' }),
      retryOnServiceExceptions: true,
    }).addRetry({ errors: ['States.ALL'], maxAttempts: 3, backoffRate: 2, interval: Duration.seconds(10) }));
    const backfill = new sfn.StateMachine(this, 'Backfill', {
      definitionBody: sfn.DefinitionBody.fromChainable(plan.next(perDay)),
      tracingEnabled: true,
      logs: { destination: new logs.LogGroup(this, 'BackfillLogs', { retention: logs.RetentionDays.ONE_MONTH }), level: sfn.LogLevel.ALL },
    });

    // ---- query service: ECS Fargate behind an internal ALB ----
    const vpc = new ec2.Vpc(this, 'Vpc', { maxAzs: 2, natGateways: 1 });
    vpc.addFlowLog('FlowLogs', { destination: ec2.FlowLogDestination.toCloudWatchLogs(new logs.LogGroup(this, 'FlowLogGroup', { retention: logs.RetentionDays.ONE_MONTH })) });
    vpc.addGatewayEndpoint('S3Endpoint', { service: ec2.GatewayVpcEndpointAwsService.S3 });
    const cluster = new ecs.Cluster(this, 'Cluster', { vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });
    const taskDef = new ecs.FargateTaskDefinition(this, 'QueryTask', {
      cpu: 2048, memoryLimitMiB: 8192, runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.ARM64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
    });
    taskDef.addContainer('sediment', {
      image: ecs.ContainerImage.fromRegistry(queryImage.valueAsString),
      // --create: the service may start before the first event has made the lake.
      command: ['serve', '--listen', '0.0.0.0:8080', '--pg-listen', '0.0.0.0:5432', '--flight-listen', '0.0.0.0:50051', '--allow-unauthenticated', '--create'],
      environment: { SEDIMENT_LAKE: lakeUrl, RUST_LOG: 'info' },
      portMappings: [{ containerPort: 8080 }, { containerPort: 5432 }, { containerPort: 50051 }],
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'query', logGroup: new logs.LogGroup(this, 'QueryLogs', { retention: logs.RetentionDays.ONE_MONTH }) }),
      healthCheck: { command: ['CMD-SHELL', 'wget -qO- http://127.0.0.1:8080/health || exit 1'], interval: Duration.seconds(30) },
    });
    bucket.grantRead(taskDef.taskRole);
    bucket.grantPut(taskDef.taskRole, 'lake/_results/*');
    bucket.grantPut(taskDef.taskRole, 'lake/_sediment/lake.json');
    const albSg = new ec2.SecurityGroup(this, 'QueryAlbSg', { vpc, description: 'Query ALB: HTTP from inside the VPC', allowAllOutbound: true });
    albSg.addIngressRule(ec2.Peer.ipv4(vpc.vpcCidrBlock), ec2.Port.tcp(80), 'Athena API and REST from the VPC');
    const service = new ecs.FargateService(this, 'Query', {
      cluster, taskDefinition: taskDef, desiredCount: 1, assignPublicIp: false, minHealthyPercent: 100, circuitBreaker: { rollback: true },
    });
    const alb = new elbv2.ApplicationLoadBalancer(this, 'QueryAlb', { vpc, internetFacing: false, securityGroup: albSg });
    alb.logAccessLogs(logBucket, 'alb');
    alb.addListener('Http', { port: 80, open: false }).addTargets('Sediment', {
      port: 8080, protocol: elbv2.ApplicationProtocol.HTTP, targets: [service],
      healthCheck: { path: '/health' },
    });
    // The Postgres wire protocol and Arrow Flight SQL (gRPC) are TCP doors:
    // an internal network load balancer, open to the VPC as the ALB is.
    const nlbSg = new ec2.SecurityGroup(this, 'QueryNlbSg', { vpc, description: 'Query NLB: Postgres and Flight SQL from inside the VPC', allowAllOutbound: true });
    nlbSg.addIngressRule(ec2.Peer.ipv4(vpc.vpcCidrBlock), ec2.Port.tcp(5432), 'Postgres wire protocol from the VPC');
    nlbSg.addIngressRule(ec2.Peer.ipv4(vpc.vpcCidrBlock), ec2.Port.tcp(50051), 'Arrow Flight SQL from the VPC');
    const nlb = new elbv2.NetworkLoadBalancer(this, 'QueryNlb', { vpc, internetFacing: false, securityGroups: [nlbSg] });
    for (const [name, port] of [['Postgres', 5432], ['FlightSql', 50051]] as const) {
      nlb.addListener(name, { port }).addTargets(`${name}Targets`, {
        port,
        targets: [service.loadBalancerTarget({ containerName: 'sediment', containerPort: port })],
        healthCheck: { protocol: elbv2.Protocol.HTTP, port: '8080', path: '/health' },
      });
    }
    service.connections.allowFrom(nlbSg, ec2.Port.tcp(5432), 'Postgres from the NLB');
    service.connections.allowFrom(nlbSg, ec2.Port.tcp(50051), 'Flight SQL from the NLB');

    // ---- Glue and Athena over the same lake ----
    const db = new glue.CfnDatabase(this, 'Database', { catalogId: Aws.ACCOUNT_ID, databaseInput: { name: 'sediment', description: 'The Sediment read model' } });
    const envelope = [
      { name: 'event_id', type: 'string' }, { name: 'event_type', type: 'string' }, { name: 'event_version', type: 'int' },
      { name: 'aggregate_type', type: 'string' }, { name: 'aggregate_id', type: 'string' }, { name: 'sequence', type: 'bigint' },
      { name: 'occurred_at', type: 'timestamp' }, { name: 'payload', type: 'string' }, { name: 'metadata', type: 'string' },
      { name: 'ingested_at', type: 'timestamp' }, { name: 'source', type: 'string' }, { name: 'source_position', type: 'string' },
    ];
    const eventsTable = new glue.CfnTable(this, 'EventsTable', {
      catalogId: Aws.ACCOUNT_ID, databaseName: 'sediment',
      tableInput: {
        name: 'events', tableType: 'EXTERNAL_TABLE',
        parameters: { table_type: 'DELTA', EXTERNAL: 'TRUE' },
        storageDescriptor: { location: `s3://${bucket.bucketName}/lake/tables/events/`, columns: envelope.concat([{ name: 'dt', type: 'date' }]) },
      },
    });
    eventsTable.node.addDependency(db);
    const rawTable = new glue.CfnTable(this, 'RawEventsTable', {
      catalogId: Aws.ACCOUNT_ID, databaseName: 'sediment',
      tableInput: {
        name: 'raw_events', tableType: 'EXTERNAL_TABLE',
        partitionKeys: [{ name: 'dt', type: 'string' }, { name: 'hour', type: 'string' }],
        parameters: {
          EXTERNAL: 'TRUE', classification: 'parquet',
          'projection.enabled': 'true',
          'projection.dt.type': 'date', 'projection.dt.format': 'yyyy-MM-dd', 'projection.dt.range': '2020-01-01,NOW', 'projection.dt.interval': '1', 'projection.dt.interval.unit': 'DAYS',
          'projection.hour.type': 'integer', 'projection.hour.range': '0,23', 'projection.hour.digits': '2',
          'storage.location.template': `s3://${bucket.bucketName}/lake/raw/events/dt=\${dt}/hour=\${hour}/`,
        },
        storageDescriptor: {
          location: `s3://${bucket.bucketName}/lake/raw/events/`, columns: envelope,
          inputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
          outputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
          serdeInfo: { serializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe' },
        },
      },
    });
    rawTable.node.addDependency(db);
    new athena.CfnWorkGroup(this, 'WorkGroup', {
      name: 'sediment', state: 'ENABLED', recursiveDeleteOption: true,
      workGroupConfiguration: {
        bytesScannedCutoffPerQuery: cutoff.valueAsNumber,
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        engineVersion: { selectedEngineVersion: 'Athena engine version 3' },
        resultConfiguration: { outputLocation: `s3://${bucket.bucketName}/athena-results/`, encryptionConfiguration: { encryptionOption: 'SSE_KMS', kmsKey: key.keyArn } },
      },
    });

    // ---- observability ----
    for (const [name, q] of [['IngestFailures', ingestFailures], ['EventsQueueDlq', sqsDlq], ['EventBridgeDlq', busDlq], ['CompactFailures', compactDlq]] as const) {
      alarm(new cw.Alarm(this, `${name}NotEmpty`, {
        metric: q.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5) }), threshold: 0,
        comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD, evaluationPeriods: 1, alarmDescription: `${name} holds records that could not be processed`,
      }));
    }
    alarm(new cw.Alarm(this, 'IngestIteratorAge', {
      metric: ingest.metric('IteratorAge', { statistic: 'Maximum', period: Duration.minutes(1) }), threshold: 60000, evaluationPeriods: 5,
      alarmDescription: 'The ingest Lambda falls behind its streams',
    }));
    const lag = new cw.Metric({ namespace: 'Sediment', metricName: 'MinEventAge', dimensionsMap: { FunctionName: ingest.functionName, Source: 'kinesis' }, statistic: 'p99', period: Duration.minutes(1) });
    alarm(new cw.Alarm(this, 'FreshnessLag', { metric: lag, threshold: lagThreshold.valueAsNumber, evaluationPeriods: 5, alarmDescription: 'Events reach the lake late' }));
    alarm(new cw.Alarm(this, 'IngestErrors', { metric: ingest.metricErrors({ period: Duration.minutes(5) }), threshold: 0, comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD, evaluationPeriods: 1 }));
    alarm(new cw.Alarm(this, 'CompactionErrors', { metric: compact.metricErrors({ period: Duration.minutes(15) }), threshold: 0, comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD, evaluationPeriods: 1 }));
    alarm(new cw.Alarm(this, 'CompactionMissed', {
      metric: compact.metricInvocations({ period: Duration.hours(1) }), threshold: 1, comparisonOperator: cw.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 2, treatMissingData: cw.TreatMissingData.BREACHING, alarmDescription: 'No compaction ran for two hours',
    }));
    alarm(new cw.Alarm(this, 'BackfillFailed', { metric: backfill.metricFailed({ period: Duration.minutes(5) }), threshold: 0, comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD, evaluationPeriods: 1 }));
    const emf = (name: string, stat = 'Sum') => new cw.Metric({ namespace: 'Sediment', metricName: name, statistic: stat, period: Duration.minutes(1) });
    new cw.Dashboard(this, 'Dashboard', {
      dashboardName: 'sediment',
      widgets: [
        [new cw.GraphWidget({ title: 'Records', left: ['RecordsIn', 'RecordsStored', 'RecordsQuarantined', 'RecordsFailed'].map((m) => emf(m)), width: 12 }),
          new cw.GraphWidget({ title: 'Freshness lag (ms)', left: [emf('MinEventAge', 'p99'), emf('MaxEventAge', 'Maximum')], width: 12 })],
        [new cw.GraphWidget({ title: 'Bytes written', left: [emf('BytesWritten')], width: 8 }),
          new cw.GraphWidget({ title: 'Ingest', left: [ingest.metricInvocations(), ingest.metricErrors(), ingest.metricDuration()], width: 8 }),
          new cw.GraphWidget({ title: 'Compaction', left: [compact.metricInvocations(), compact.metricErrors(), compact.metricDuration()], width: 8 })],
      ],
    });

    new CfnOutput(this, 'LakeUrl', { value: lakeUrl });
    new CfnOutput(this, 'QueryEndpoint', { value: `http://${alb.loadBalancerDnsName}`, description: 'Athena API (endpoint_url) and REST, inside the VPC' });
    new CfnOutput(this, 'PostgresEndpoint', { value: `${nlb.loadBalancerDnsName}:5432`, description: 'Postgres wire protocol (psql, JDBC, BI tools), inside the VPC' });
    new CfnOutput(this, 'FlightSqlEndpoint', { value: `grpc://${nlb.loadBalancerDnsName}:50051`, description: 'Arrow Flight SQL (ADBC), inside the VPC' });
    new CfnOutput(this, 'BackfillStateMachine', { value: backfill.stateMachineArn });
    new CfnOutput(this, 'EventsStream', { value: stream.streamName });
    new CfnOutput(this, 'EventsQueueUrl', { value: queue.queueUrl });

    // ---- justified exceptions to AwsSolutions rules ----
    NagSuppressions.addStackSuppressions(this, [
      { id: 'AwsSolutions-IAM4', reason: 'AWSLambdaBasicExecutionRole / VPC flow-log managed policies only grant log writes; everything touching data is scoped inline.' },
      { id: 'AwsSolutions-IAM5', reason: 'Wildcards are object keys under the lake prefixes (lake/raw/*, lake/tables/*, …) and KMS data-key actions (GenerateDataKey*, ReEncrypt*) the S3/SQS grants need; no wildcard resource outside the lake bucket.' },
      { id: 'AwsSolutions-L1', reason: 'The Lambdas run on provided.al2023 (a custom runtime): there is no newer runtime to pick. The CDK-managed log-retention helper runtime is maintained by CDK.' },
      { id: 'AwsSolutions-SQS3', reason: 'These queues are themselves dead-letter/on-failure destinations; a DLQ of a DLQ adds nothing. Alarms fire when they hold a message.' },
      { id: 'AwsSolutions-ECS2', reason: 'Environment variables carry only the lake URL and log level, no secrets.' },
      { id: 'AwsSolutions-EC23', reason: 'The ALB security group only admits the VPC CIDR (internal load balancer); the check cannot resolve the CIDR token.' },
      { id: 'AwsSolutions-ELB2', reason: 'Access logging is enabled on the ALB (to the access-log bucket); the rule does not see the logAccessLogs call through a token.' },
      { id: 'AwsSolutions-S1', reason: 'The access-log bucket is the log destination itself.', appliesTo: undefined },
      { id: 'AwsSolutions-SF1', reason: 'The backfill state machine logs ALL events to CloudWatch.' },
    ]);
  }
}
