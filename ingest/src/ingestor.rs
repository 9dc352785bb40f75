//! The ingest operation: one decoded [`Batch`] in, raw Parquet and
//! quarantine records out, with an [`IngestReport`] that always adds up:
//! `input = stored + quarantined + failed`.
//!
//! Concurrency: every object is written with a conditional create under a
//! key derived from the batch position, so a retried or concurrent copy of
//! the same batch finds its objects already there and writes nothing.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{NaiveDate, SecondsFormat, Utc};
use futures::StreamExt;
use sediment_lake::envelope::millis_to_datetime;
use sediment_lake::paths::{RawFile, quarantine_key};
use sediment_lake::storage::Created;
use sediment_lake::{Envelope, Lake};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::parquet_out::{Position, Row, encode, sort_rows};
use crate::source::{Batch, SourceKind};

/// Writes batches into a lake.
#[derive(Debug, Clone)]
pub struct Ingestor {
    lake: Lake,
    zstd_level: i32,
    /// Parallel object writes per batch.
    concurrency: usize,
}

/// What one batch did. Serialised as the CLI's and Lambda's log line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    pub input: u64,
    pub stored: u64,
    pub quarantined: u64,
    pub failed: u64,
    /// Records the source sent that are deliberately not events (DynamoDB REMOVE).
    pub ignored: u64,
    /// Raw files this batch owns (written now, or already present from an earlier try).
    pub files: Vec<String>,
    /// Of `files`, those that already existed (a retried batch).
    pub existing_files: u64,
    pub quarantine_files: Vec<String>,
    /// Parquet bytes written by this call.
    pub bytes: u64,
    /// Failure ids of records that could not be stored, in batch order.
    pub failed_ids: Vec<String>,
    /// Failed records that have no failure id (the caller must fail the whole invocation).
    pub failed_without_id: u64,
    /// Newest `occurred_at` among stored events, epoch ms.
    pub newest_event_ms: Option<i64>,
    /// Oldest `occurred_at` among stored events, epoch ms.
    pub oldest_event_ms: Option<i64>,
    /// Storage errors met, one line each.
    pub errors: Vec<String>,
}

impl IngestReport {
    /// The consistency token that makes what this report stored visible:
    /// a query asked to run after it sees every event of `files`.
    pub fn token(&self) -> String {
        sediment_lake::token::Token::of_keys(self.files.iter().map(String::as_str)).encode()
    }

    /// Adds another batch's report into this one (the CLI's running total).
    pub fn absorb(&mut self, other: IngestReport) {
        self.input += other.input;
        self.stored += other.stored;
        self.quarantined += other.quarantined;
        self.failed += other.failed;
        self.ignored += other.ignored;
        self.files.extend(other.files);
        self.existing_files += other.existing_files;
        self.quarantine_files.extend(other.quarantine_files);
        self.bytes += other.bytes;
        self.failed_ids.extend(other.failed_ids);
        self.failed_without_id += other.failed_without_id;
        self.newest_event_ms = self.newest_event_ms.max(other.newest_event_ms);
        self.oldest_event_ms = match (self.oldest_event_ms, other.oldest_event_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.errors.extend(other.errors);
    }
}

/// A quarantined record, one JSON line in `quarantine/dt=…/<batch>.json`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct QuarantineRecord {
    pub reason: String,
    /// The record's bytes as received, base64.
    pub raw_base64: String,
    pub source: String,
    pub position: String,
    pub batch_position: String,
    /// Index of the record in its batch.
    pub index: usize,
    /// When the record reached the source (or ingest, where the source gives no time).
    pub time: String,
}

/// The deterministic object name of a batch: source plus a hash of its position.
pub fn batch_name(source: SourceKind, position: &str) -> String {
    let digest = Sha256::digest(position.as_bytes());
    format!("{}-{}", source.name(), hex::encode(&digest[..16]))
}

impl Ingestor {
    pub fn new(lake: Lake) -> Self {
        Self { lake, zstd_level: 1, concurrency: 8 }
    }

    pub fn with_zstd_level(mut self, level: i32) -> Self {
        self.zstd_level = level;
        self
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Stores one batch. Never fails as a whole: what could not be stored is
    /// counted in `failed` with its ids.
    pub async fn ingest(&self, batch: &Batch) -> IngestReport {
        let now_ms = Utc::now().timestamp_millis();
        self.ingest_at(batch, now_ms).await
    }

    /// [`Ingestor::ingest`] with the clock given: `now_ms` stands in for
    /// arrival times the source does not provide.
    pub async fn ingest_at(&self, batch: &Batch, now_ms: i64) -> IngestReport {
        let name = batch_name(batch.source, &batch.position);
        let mut report = IngestReport { input: batch.records.len() as u64, ignored: batch.ignored, ..Default::default() };

        // Validate. Invalid records carry their reason to quarantine.
        let mut valid: Vec<(usize, Envelope)> = Vec::with_capacity(batch.records.len());
        let mut invalid: Vec<(usize, String)> = Vec::new();
        for (i, rec) in batch.records.iter().enumerate() {
            match &rec.data {
                Ok(bytes) => match Envelope::parse(bytes) {
                    Ok(e) => valid.push((i, e)),
                    Err(why) => invalid.push((i, why.to_string())),
                },
                Err(why) => invalid.push((i, why.clone())),
            }
        }

        // Group by dt/hour partition, keeping batch order for stable sorting.
        let mut partitions: BTreeMap<(NaiveDate, u32), Vec<usize>> = BTreeMap::new();
        for (k, (_, e)) in valid.iter().enumerate() {
            partitions.entry((e.dt(), e.hour())).or_default().push(k);
        }

        let source = batch.source.name();
        let mut failed_records: Vec<usize> = Vec::new();
        let mut jobs = Vec::new();
        for ((dt, hour), members) in &partitions {
            let file = RawFile::new(*dt, *hour, name.clone());
            let mut rows: Vec<Row<'_>> = members
                .iter()
                .map(|&k| {
                    let (i, e) = &valid[k];
                    let rec = &batch.records[*i];
                    Row { event: e, ingested_at_ms: rec.arrival_ms.unwrap_or(now_ms), position: Position::Text(&rec.position) }
                })
                .collect();
            sort_rows(&mut rows);
            match encode(&rows, source, self.zstd_level) {
                Ok(bytes) => jobs.push((file.key(), Bytes::from(bytes), members.clone())),
                Err(e) => {
                    report.errors.push(format!("encode {}: {e}", file.key()));
                    failed_records.extend(members.iter().map(|&k| valid[k].0));
                }
            }
        }

        let lake = &self.lake;
        let results: Vec<_> = futures::stream::iter(jobs)
            .map(|(key, bytes, members)| async move {
                let len = bytes.len() as u64;
                let res = lake.put_if_absent(&key, bytes).await;
                (key, len, members, res)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut stored_files = Vec::new();
        for (key, len, members, res) in results {
            match res {
                Ok(created) => {
                    if created == Created::New {
                        report.bytes += len;
                    } else {
                        report.existing_files += 1;
                    }
                    report.stored += members.len() as u64;
                    for &k in &members {
                        let ms = valid[k].1.occurred_at_ms;
                        report.newest_event_ms = report.newest_event_ms.max(Some(ms));
                        report.oldest_event_ms = Some(report.oldest_event_ms.map_or(ms, |o| o.min(ms)));
                    }
                    stored_files.push(key);
                }
                Err(e) => {
                    report.errors.push(e.to_string());
                    failed_records.extend(members.iter().map(|&k| valid[k].0));
                }
            }
        }
        stored_files.sort();
        report.files = stored_files;

        if !invalid.is_empty() {
            let arrival = batch.records[invalid[0].0].arrival_ms.unwrap_or(now_ms);
            let day = millis_to_datetime(arrival).date_naive();
            let key = quarantine_key(day, &name);
            let mut body = Vec::new();
            for (i, reason) in &invalid {
                let rec = &batch.records[*i];
                let raw = rec.original.as_deref().or(rec.data.as_deref().ok()).unwrap_or_default();
                let line = QuarantineRecord {
                    reason: reason.clone(),
                    raw_base64: base64::engine::general_purpose::STANDARD.encode(raw),
                    source: source.to_owned(),
                    position: rec.position.clone(),
                    batch_position: batch.position.clone(),
                    index: *i,
                    time: millis_to_datetime(rec.arrival_ms.unwrap_or(now_ms)).to_rfc3339_opts(SecondsFormat::Millis, true),
                };
                // A struct of strings and integers always serialises.
                body.extend(serde_json::to_vec(&line).unwrap_or_default());
                body.push(b'\n');
            }
            match self.lake.put_if_absent(&key, Bytes::from(body)).await {
                Ok(_) => {
                    report.quarantined = invalid.len() as u64;
                    report.quarantine_files.push(key);
                }
                Err(e) => {
                    report.errors.push(e.to_string());
                    failed_records.extend(invalid.iter().map(|(i, _)| *i));
                }
            }
        }

        failed_records.sort_unstable();
        report.failed = failed_records.len() as u64;
        for i in failed_records {
            match &batch.records[i].failure_id {
                Some(id) => report.failed_ids.push(id.clone()),
                None => report.failed_without_id += 1,
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceRecord;

    fn rec(i: usize, json: &str) -> SourceRecord {
        SourceRecord {
            data: Ok(json.as_bytes().to_vec()),
            original: None,
            position: format!("p{i}"),
            failure_id: Some(format!("id{i}")),
            arrival_ms: Some(1_793_613_600_000),
        }
    }

    fn event(id: &str, agg: &str, seq: i64, at: &str) -> String {
        format!(
            r#"{{"event_id":"{id}","event_type":"T","aggregate_type":"A","aggregate_id":"{agg}","sequence":{seq},"occurred_at":"{at}","payload":{{"n":{seq}}}}}"#
        )
    }

    fn batch(records: Vec<SourceRecord>) -> Batch {
        Batch { source: SourceKind::Cli, position: "test-batch".into(), records, ignored: 0 }
    }

    #[tokio::test]
    async fn partitions_quarantine_and_counts() {
        let lake = Lake::open("memory://ingestor-unit-1").unwrap();
        let ing = Ingestor::new(lake.clone());
        let b = batch(vec![
            rec(0, &event("e1", "b", 2, "2026-11-02T10:15:00Z")),
            rec(1, &event("e2", "a", 1, "2026-11-02T10:59:00Z")),
            rec(2, &event("e3", "a", 1, "2026-11-03T00:00:00Z")),
            rec(3, "{broken"),
        ]);
        let r = ing.ingest_at(&b, 0).await;
        assert_eq!((r.input, r.stored, r.quarantined, r.failed), (4, 3, 1, 0));
        let name = batch_name(SourceKind::Cli, "test-batch");
        assert_eq!(
            r.files,
            vec![format!("raw/events/dt=2026-11-02/hour=10/{name}.parquet"), format!("raw/events/dt=2026-11-03/hour=00/{name}.parquet"),]
        );
        let q = lake.get(&r.quarantine_files[0]).await.unwrap();
        let line: QuarantineRecord = serde_json::from_slice(q.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!(line.index, 3);
        assert!(line.reason.starts_with("malformed JSON"));
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(line.raw_base64).unwrap(), b"{broken");

        // A retry lands on the same keys and writes nothing new.
        let again = ing.ingest_at(&b, 99).await;
        assert_eq!(again.files, r.files);
        assert_eq!((again.existing_files, again.bytes, again.stored), (2, 0, 3));
    }
}
