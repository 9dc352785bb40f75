//! Compacting one day of `events`: the previous curated day plus the day's
//! uncovered raw files, deduplicated by `event_id` (earliest arrival wins),
//! sorted by aggregate, written as large zstd files, committed as one
//! transaction that replaces the day.

use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use datafusion::functions::crypto::expr_fn::md5;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{ExprFunctionExt, cast, col, lit};
use datafusion::prelude::SessionContext;
use sediment_engine::delta::snapshot_files;
use sediment_engine::files::{DataFile, FileListTable};
use sediment_engine::schema::curated_events_file_schema;
use sediment_engine::state::{CuratedDay, ManifestCache, curated_days, list_raw};
use sediment_lake::Lake;
use sediment_lake::manifest::{GroupCount, Manifest, ManifestV1};
use sediment_lake::paths::{EVENTS_TABLE, curated_file, manifest_key, table_root};
use sediment_lake::schema::{
    AGGREGATE_ID, AGGREGATE_TYPE, EVENT_ID, EVENT_TYPE, INGESTED_AT, OCCURRED_AT, PAYLOAD, SEQUENCE, SOURCE, SOURCE_POSITION, raw_schema,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::commit::{self, open_or_create, replace_partition};
use crate::write::{WriteSummary, write_files, writer_properties};
use crate::{Error, Result, Settings};

/// What compacting one day did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DayReport {
    pub dt: NaiveDate,
    /// The day was rewritten and committed (false: nothing new).
    pub committed: bool,
    pub run_id: Option<String>,
    pub delta_version: Option<i64>,
    pub raw_files_read: usize,
    pub raw_bytes_read: u64,
    pub rows_in: u64,
    pub duplicates: u64,
    pub rows_out: u64,
    pub files_written: usize,
    pub bytes_written: u64,
    pub duration_ms: u64,
    /// Commit attempts lost to a concurrent compactor.
    pub conflicts: u32,
}

fn run_id(dt: NaiveDate, raw: &[String], previous: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(dt.to_string());
    h.update(previous.unwrap_or("-"));
    for k in raw {
        h.update(b"\n");
        h.update(k.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

/// Compacts `dt`. With `force`, rewrites the day even if nothing is new.
pub async fn compact_day(lake: &Lake, settings: &Settings, manifests: &ManifestCache, dt: NaiveDate, force: bool) -> Result<DayReport> {
    let mut conflicts = 0;
    loop {
        match attempt(lake, settings, manifests, dt, force).await {
            Err(Error::Commit(commit::Error::Conflict { .. })) if conflicts < 8 => {
                conflicts += 1;
                tracing::warn!(%dt, conflicts, "concurrent compaction committed first; re-planning the day");
                tokio::time::sleep(std::time::Duration::from_millis(50 * conflicts as u64)).await;
            }
            Ok(mut r) => {
                r.conflicts = conflicts;
                return Ok(r);
            }
            Err(e) => return Err(e),
        }
    }
}

async fn attempt(lake: &Lake, settings: &Settings, manifests: &ManifestCache, dt: NaiveDate, force: bool) -> Result<DayReport> {
    let started = Instant::now();
    // Raw first, snapshot after: the same order readers use.
    let raw = list_raw(lake, &[dt]).await?.remove(&dt).unwrap_or_default();
    let table = open_or_create(lake, EVENTS_TABLE, &curated_events_file_schema(), "dt").await?;
    let files = snapshot_files(&table)?;
    let mut curated = curated_days(lake, manifests, EVENTS_TABLE, files, &|d| d == dt).await?;
    let previous: Option<CuratedDay> = curated.remove(&dt);
    let covered: std::collections::HashSet<&str> = previous.iter().flat_map(|p| p.manifest.raw_files.iter().map(String::as_str)).collect();
    let new_raw: Vec<_> = raw.iter().filter(|o| !covered.contains(o.key.as_str())).collect();
    let mut report = DayReport { dt, ..Default::default() };
    if new_raw.is_empty() && !(force && previous.is_some()) {
        return Ok(report);
    }
    let mut all_raw: Vec<String> = covered.iter().map(|s| (*s).to_owned()).collect();
    all_raw.extend(new_raw.iter().map(|o| o.key.clone()));
    all_raw.sort();
    all_raw.dedup();
    let prev_run = previous.as_ref().map(|p| p.manifest.run_id.clone());
    let run = run_id(dt, &all_raw, prev_run.as_deref());
    report.raw_files_read = new_raw.len();
    report.raw_bytes_read = new_raw.iter().map(|o| o.size).sum();

    // Input: previous curated rows ∪ new raw rows, in the curated file schema.
    let ctx = settings.session(lake)?;
    let curated_schema = curated_events_file_schema();
    let prev_files: Vec<DataFile> = previous
        .iter()
        .flat_map(|p| p.files.iter())
        .map(|f| DataFile { key: CuratedDay::key_of(f), size: f.size, num_rows: None, partition_values: vec![] })
        .collect();
    let raw_files: Vec<DataFile> =
        new_raw.iter().map(|o| DataFile { key: o.key.clone(), size: o.size, num_rows: None, partition_values: vec![] }).collect();
    let to_curated: Vec<_> = curated_schema.fields().iter().map(|f| cast(col(f.name()), f.data_type().clone()).alias(f.name())).collect();
    let mut input = ctx.read_table(Arc::new(FileListTable::new(raw_schema(), vec![], raw_files)))?.select(to_curated.clone())?;
    if !prev_files.is_empty() {
        let prev = ctx.read_table(Arc::new(FileListTable::new(Arc::clone(&curated_schema), vec![], prev_files)))?;
        input = prev.select(to_curated)?.union(input)?;
    }
    let rows_in = input.clone().count().await? as u64;
    let winner = row_number()
        .partition_by(vec![col(EVENT_ID)])
        .order_by(vec![
            col(INGESTED_AT).sort(true, false),
            col(SOURCE_POSITION).sort(true, false),
            col(SOURCE).sort(true, false),
            col(EVENT_TYPE).sort(true, false),
            col(AGGREGATE_ID).sort(true, false),
            // A digest, not the payload itself: the sort keys are row-encoded
            // in memory and spilled runs, and payloads are the widest column.
            md5(col(PAYLOAD)).sort(true, false),
        ])
        .build()?
        .alias("__rn");
    let output = input
        .window(vec![winner])?
        .filter(col("__rn").eq(lit(1u64)))?
        .sort(vec![
            col(AGGREGATE_TYPE).sort(true, false),
            col(AGGREGATE_ID).sort(true, false),
            col(SEQUENCE).sort(true, true),
            col(OCCURRED_AT).sort(true, false),
            col(EVENT_ID).sort(true, false),
        ])?
        .select(curated_schema.fields().iter().map(|f| col(f.name())).collect::<Vec<_>>())?;
    let stream = output.execute_stream().await?;
    let root = table_root(EVENTS_TABLE);
    let summary: WriteSummary = write_files(
        lake,
        &root,
        Arc::clone(&curated_schema),
        stream,
        writer_properties(settings.compaction.zstd_level, settings.compaction.row_group_rows),
        settings.compaction.target_file_mb << 20,
        |part| curated_file("dt", dt, &run, part),
    )
    .await?;

    let manifest = ManifestV1 {
        table: EVENTS_TABLE.to_owned(),
        dt,
        run_id: run.clone(),
        previous_run_id: prev_run,
        raw_files: all_raw,
        rows_in,
        duplicates: rows_in - summary.rows,
        rows_out: summary.rows,
        checksum: summary.checksum.hex(),
        files: summary.files.iter().map(|f| f.path.clone()).collect(),
        created_at: chrono::Utc::now(),
        // Recorded only when they account for every row written: readers
        // answer counts from them instead of the files.
        counts: (summary.counts.values().sum::<u64>() == summary.rows).then(|| {
            summary
                .counts
                .iter()
                .map(|((event_type, aggregate_type), rows)| GroupCount {
                    event_type: event_type.clone(),
                    aggregate_type: aggregate_type.clone(),
                    rows: *rows,
                })
                .collect()
        }),
    };
    let body = serde_json::to_vec_pretty(&Manifest::V1(manifest)).map_err(|e| Error::Internal(e.to_string()))?;
    lake.put_if_absent(&manifest_key(EVENTS_TABLE, dt, &run), body.into()).await?;

    let current = previous.map(|p| p.files).unwrap_or_default();
    let version = replace_partition(&table, EVENTS_TABLE, "dt", dt, &current, &summary.files).await?;
    report.committed = true;
    report.run_id = Some(run);
    report.delta_version = Some(version);
    report.rows_in = rows_in;
    report.rows_out = summary.rows;
    report.duplicates = rows_in - summary.rows;
    report.files_written = summary.files.len();
    report.bytes_written = summary.bytes;
    report.duration_ms = started.elapsed().as_millis() as u64;
    let _: &SessionContext = &ctx;
    Ok(report)
}
