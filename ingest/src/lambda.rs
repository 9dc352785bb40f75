//! The Lambda handler: decode, ingest, answer with partial batch failures.
//!
//! Generic over nothing but a [`Lake`]: `main` wires tracing and the runtime,
//! tests call [`handle`] directly.

use sediment_lake::Lake;
use sediment_lake::config::DynamoDbMapping;
use serde_json::{Value, json};

use crate::ingestor::{IngestReport, Ingestor};
use crate::source::{self, SourceKind};

/// Why an invocation failed as a whole. Lambda retries the batch on any of
/// these; the text says whether that can help.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not retryable: {0}")]
    Decode(#[from] source::Error),
    #[error("retryable: {failed} of {input} records could not be stored ({first_error})")]
    Storage { failed: u64, input: u64, first_error: String },
}

/// Handles one invocation; the `Ok` value is the Lambda response body.
pub async fn handle(ingestor: &Ingestor, mapping: &DynamoDbMapping, event: &Value, function: &str) -> Result<Value, Error> {
    let batch = source::decode(event, mapping)?;
    let report = ingestor.ingest(&batch).await;
    let token = report.token();
    emit_metrics(function, batch.source, &report);
    tracing::info!(
        source = batch.source.name(),
        input = report.input,
        stored = report.stored,
        quarantined = report.quarantined,
        failed = report.failed,
        ignored = report.ignored,
        files = report.files.len(),
        token = %token,
        "batch ingested"
    );
    for e in &report.errors {
        tracing::error!(error = %e, "storage error");
    }
    // Event source mappings read `batchItemFailures` only; a caller that
    // invokes the function itself reads `token` to query after its write.
    if report.failed == 0 {
        return Ok(json!({"batchItemFailures": [], "token": token}));
    }
    // Where the source cannot take item failures, or a failed record has no
    // id, the whole batch must be retried: never report a null identifier.
    if !batch.source.reports_item_failures() || report.failed_without_id > 0 {
        return Err(Error::Storage {
            failed: report.failed,
            input: report.input,
            first_error: report.errors.first().cloned().unwrap_or_default(),
        });
    }
    let ids: Vec<&String> = if batch.source.is_stream() {
        // Streams checkpoint: Lambda retries from the first failure on.
        report.failed_ids.iter().take(1).collect()
    } else {
        report.failed_ids.iter().collect()
    };
    let failures: Vec<Value> = ids.into_iter().map(|id| json!({"itemIdentifier": id})).collect();
    Ok(json!({"batchItemFailures": failures, "token": token}))
}

/// Per-invocation metrics as CloudWatch Embedded Metric Format on stdout.
pub fn emit_metrics(function: &str, source: SourceKind, r: &IngestReport) {
    println!("{}", emf(function, source, r, chrono::Utc::now().timestamp_millis()));
}

fn emf(function: &str, source: SourceKind, r: &IngestReport, now_ms: i64) -> Value {
    let max_age = r.oldest_event_ms.map(|o| (now_ms - o).max(0)).unwrap_or(0);
    let min_age = r.newest_event_ms.map(|o| (now_ms - o).max(0)).unwrap_or(0);
    json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": "Sediment",
                "Dimensions": [["FunctionName", "Source"]],
                "Metrics": [
                    {"Name": "RecordsIn", "Unit": "Count"},
                    {"Name": "RecordsStored", "Unit": "Count"},
                    {"Name": "RecordsQuarantined", "Unit": "Count"},
                    {"Name": "RecordsFailed", "Unit": "Count"},
                    {"Name": "RecordsIgnored", "Unit": "Count"},
                    {"Name": "BytesWritten", "Unit": "Bytes"},
                    {"Name": "MaxEventAge", "Unit": "Milliseconds"},
                    {"Name": "MinEventAge", "Unit": "Milliseconds"}
                ]
            }]
        },
        "FunctionName": function,
        "Source": source.name(),
        "RecordsIn": r.input,
        "RecordsStored": r.stored,
        "RecordsQuarantined": r.quarantined,
        "RecordsFailed": r.failed,
        "RecordsIgnored": r.ignored,
        "BytesWritten": r.bytes,
        "MaxEventAge": max_age,
        "MinEventAge": min_age,
    })
}

/// Opens the lake named by `SEDIMENT_LAKE` and the DynamoDB mapping from the
/// config named by `SEDIMENT_CONFIG` (a local path; optional).
pub fn from_env() -> Result<(Ingestor, DynamoDbMapping), String> {
    let config = match std::env::var("SEDIMENT_CONFIG") {
        Ok(path) if !path.is_empty() => sediment_lake::Config::load(std::path::Path::new(&path)).map_err(|e| e.to_string())?,
        _ => sediment_lake::Config::default(),
    };
    let url = config.lake_url(std::env::var("SEDIMENT_LAKE").ok().as_deref());
    let lake = Lake::open(&url).map_err(|e| e.to_string())?;
    let ingestor = Ingestor::new(lake).with_zstd_level(config.ingest.zstd_level);
    Ok((ingestor, config.ingest.dynamodb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_shape() {
        let r = IngestReport {
            input: 3,
            stored: 2,
            quarantined: 1,
            oldest_event_ms: Some(1_000),
            newest_event_ms: Some(4_000),
            ..Default::default()
        };
        let v = emf("f", SourceKind::Kinesis, &r, 5_000);
        assert_eq!(v["RecordsIn"], 3);
        assert_eq!(v["MaxEventAge"], 4_000);
        assert_eq!(v["MinEventAge"], 1_000);
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Sediment");
    }

    #[tokio::test]
    async fn sqs_storage_failure_reports_each_message() {
        // A lake whose root is a file cannot be written: every PUT fails.
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        std::fs::write(dir.path().join("raw"), b"not a directory").unwrap();
        let ingestor = Ingestor::new(lake);
        let env = r#"{"event_id":"e1","event_type":"T","aggregate_type":"A","aggregate_id":"a","occurred_at":0,"payload":{}}"#;
        let msg = |id: &str| json!({"messageId": id, "body": env, "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs"});
        let event = json!({"Records": [msg("m1"), msg("m2")]});
        let out = handle(&ingestor, &Default::default(), &event, "f").await.unwrap();
        assert_eq!(out["batchItemFailures"], json!([{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]));
        assert_eq!(out["token"], sediment_lake::token::Token::default().encode(), "nothing stored, nothing to wait for");
    }
}
