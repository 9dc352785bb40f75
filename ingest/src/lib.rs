//! Ingest: stream batches into exactly-once, Hive-partitioned Parquet.
//!
//! ```text
//!  Kinesis / SQS / DynamoDB Streams / MSK / EventBridge / NDJSON (CLI)
//!        │ source::decode — one Batch shape, detected from the payload
//!        ▼
//!  Ingestor::ingest — validate envelopes, group by dt/hour, sort, zstd Parquet
//!        │ conditional PUTs under keys derived from the batch position
//!        ▼
//!  raw/events/dt=…/hour=…/<source>-<hash>.parquet   quarantine/dt=…/<source>-<hash>.json
//! ```
//!
//! This crate does not link DataFusion: the Lambda stays small and starts fast.
//!
//! ```
//! # tokio_test_block(async {
//! use sediment_ingest::{Ingestor, ndjson_batch};
//! let lake = sediment_lake::Lake::open("memory://doc").unwrap();
//! let line = br#"{"event_id":"e1","event_type":"OrderPlaced","aggregate_type":"Order","aggregate_id":"o-1","occurred_at":"2026-11-02T13:05:09.123Z","payload":{}}"#;
//! let batch = ndjson_batch("stdin", 0, &[&line[..], b"oops"]);
//! let report = Ingestor::new(lake).ingest(&batch).await;
//! assert_eq!((report.stored, report.quarantined, report.failed), (1, 1, 0));
//! # });
//! # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

pub mod bulk;
pub mod generate;
pub mod ingestor;
pub mod lambda;
mod parquet_out;
pub mod source;

pub use bulk::{BulkIngest, BulkOptions};
pub use ingestor::{IngestReport, Ingestor, QuarantineRecord, batch_name};
pub use source::{Batch, SourceKind, SourceRecord};

/// A CLI batch from NDJSON lines: `first_line` is the 0-based line number of
/// `lines[0]` in `input`. The batch position is a hash of the lines, so the
/// same input gives the same objects.
pub fn ndjson_batch(input: &str, first_line: usize, lines: &[&[u8]]) -> Batch {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let records = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            h.update(line);
            h.update(b"\n");
            let position = format!("{input}:{}", first_line + i + 1);
            SourceRecord { data: Ok(line.to_vec()), original: None, failure_id: Some(position.clone()), position, arrival_ms: None }
        })
        .collect();
    Batch { source: SourceKind::Cli, position: format!("cli|{}", hex::encode(h.finalize())), records, ignored: 0 }
}
