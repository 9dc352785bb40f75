//! Operations around compaction: vacuum, verify, status.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, StringArray};
use chrono::{NaiveDate, Utc};
use datafusion::logical_expr::col;
use futures::StreamExt;
use sediment_engine::delta;
use sediment_engine::files::{DataFile, FileListTable};
use sediment_engine::schema::curated_events_file_schema;
use sediment_engine::state::{CuratedDay, EventsState, ManifestCache, load_events};
use sediment_lake::manifest::IdChecksum;
use sediment_lake::paths::{EVENTS_TABLE, MANIFESTS_PREFIX, TABLES_PREFIX, TYPED_PREFIX, run_id_of_typed_key};
use sediment_lake::schema::raw_schema;
use sediment_lake::{Config, Lake};
use serde::Serialize;

use crate::{Error, Result, Settings};

/// What `vacuum` deleted.
#[derive(Debug, Default, Serialize)]
pub struct VacuumReport {
    pub raw_files_deleted: usize,
    pub raw_bytes_deleted: u64,
    pub table_files_deleted: usize,
    pub manifests_deleted: usize,
    /// Typed copies of runs no longer current.
    pub typed_files_deleted: usize,
}

/// Deletes, when older than `retain`: raw files a current curated day
/// covers, table files no current snapshot references, and manifests of
/// runs no longer current, and their typed copies. Never a file a current table or an uncovered
/// day needs.
pub async fn vacuum(lake: &Lake, config: &Config, retain: std::time::Duration) -> Result<VacuumReport> {
    let cutoff = Utc::now() - chrono::Duration::from_std(retain).unwrap_or_default();
    let cache = ManifestCache::default();
    let state = load_events(lake, &cache, &|_| true).await?;
    let mut report = VacuumReport::default();
    for (dt, objects) in &state.raw {
        let Some(day) = state.curated.get(dt) else { continue };
        let covered: HashSet<&str> = day.manifest.raw_files.iter().map(String::as_str).collect();
        for o in objects {
            if covered.contains(o.key.as_str()) && o.last_modified < cutoff {
                lake.delete(&o.key).await?;
                report.raw_files_deleted += 1;
                report.raw_bytes_deleted += o.size;
            }
        }
    }
    // Delta files: every table under tables/.
    let mut current_runs: HashSet<String> = HashSet::new();
    let mut names: Vec<String> = vec![EVENTS_TABLE.to_owned()];
    names.extend(config.projections.iter().map(|p| p.name.clone()));
    names.extend(config.views.iter().map(|v| v.name.clone()));
    for dir in lake.list_dirs(TABLES_PREFIX).await? {
        if let Some(n) = dir.rsplit('/').next()
            && !names.iter().any(|x| x == n)
        {
            names.push(n.to_owned());
        }
    }
    for name in &names {
        let Some(table) = delta::open(lake, name).await? else { continue };
        for f in delta::snapshot_files(&table)? {
            if let Some(run) = sediment_lake::paths::run_id_of_curated_file(&f.path) {
                current_runs.insert(format!("{name}/{run}"));
            }
        }
        let retention = chrono::Duration::from_std(retain).unwrap_or_default();
        let (_, metrics) = table
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_mode(deltalake::operations::vacuum::VacuumMode::Full)
            .await
            .map_err(|e| Error::Internal(format!("vacuum of {name}: {e}")))?;
        report.table_files_deleted += metrics.files_deleted.len();
    }
    // Manifests of runs no longer current.
    for m in lake.list(MANIFESTS_PREFIX).await? {
        let key = m.location.to_string();
        let mut parts = key.split('/');
        let (Some(_), Some(table), Some(_), Some(file)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let run = file.trim_end_matches(".json");
        if !current_runs.contains(&format!("{table}/{run}")) && m.last_modified < cutoff {
            lake.delete(&key).await?;
            report.manifests_deleted += 1;
        }
    }
    // Typed copies of runs no longer current.
    for o in lake.list(TYPED_PREFIX).await? {
        let key = o.location.to_string();
        let (Some(table), Some(run)) = (key.split('/').nth(1), run_id_of_typed_key(&key)) else { continue };
        if !current_runs.contains(&format!("{table}/{run}")) && o.last_modified < cutoff {
            lake.delete(&key).await?;
            report.typed_files_deleted += 1;
        }
    }
    Ok(report)
}

/// Verification of one curated day.
#[derive(Debug, Clone, Serialize)]
pub struct DayCheck {
    pub dt: NaiveDate,
    pub curated_rows: u64,
    pub distinct_ids: u64,
    pub manifest_rows: u64,
    pub checksum_matches: bool,
    /// Raw files the manifest covers that are still present.
    pub raw_files_present: usize,
    /// Event ids in covered raw files that the curated day lacks.
    pub missing_from_curated: u64,
    /// Raw files of the day not yet compacted.
    pub pending_raw_files: usize,
    pub problems: Vec<String>,
}

/// Recomputes counts and checksums from raw and compares them with the
/// curated tables.
pub async fn verify(lake: &Lake, config: &Config, only: Option<NaiveDate>) -> Result<Vec<DayCheck>> {
    let cache = ManifestCache::default();
    let state = load_events(lake, &cache, &|d| only.is_none_or(|o| o == d)).await?;
    let settings = Settings { compaction: config.compaction.clone() };
    let uncovered = state.uncovered();
    let mut checks = Vec::new();
    for (dt, day) in &state.curated {
        checks.push(check_day(lake, &settings, &state, *dt, day, uncovered.get(dt).map_or(0, Vec::len)).await?);
    }
    for (dt, files) in &uncovered {
        if !state.curated.contains_key(dt) {
            checks.push(DayCheck {
                dt: *dt,
                curated_rows: 0,
                distinct_ids: 0,
                manifest_rows: 0,
                checksum_matches: true,
                raw_files_present: 0,
                missing_from_curated: 0,
                pending_raw_files: files.len(),
                problems: vec![],
            });
        }
    }
    checks.sort_by_key(|c| c.dt);
    Ok(checks)
}

async fn ids(stream: datafusion::physical_plan::SendableRecordBatchStream) -> Result<(u64, HashSet<String>)> {
    let mut rows = 0;
    let mut set = HashSet::new();
    let mut stream = stream;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let a = batch.column(0).as_any().downcast_ref::<StringArray>().ok_or_else(|| Error::Internal("event_id is not text".into()))?;
        for i in 0..a.len() {
            rows += 1;
            set.insert(a.value(i).to_owned());
        }
    }
    Ok((rows, set))
}

async fn check_day(
    lake: &Lake,
    settings: &Settings,
    state: &EventsState,
    dt: NaiveDate,
    day: &CuratedDay,
    pending: usize,
) -> Result<DayCheck> {
    let ctx = settings.session(lake)?;
    let curated_files: Vec<DataFile> =
        day.files.iter().map(|f| DataFile { key: CuratedDay::key_of(f), size: f.size, num_rows: None, partition_values: vec![] }).collect();
    let curated = ctx.read_table(Arc::new(FileListTable::new(curated_events_file_schema(), vec![], curated_files)))?;
    let (curated_rows, curated_ids) = ids(curated.select(vec![col("event_id")])?.execute_stream().await?).await?;
    let covered: HashSet<&str> = day.manifest.raw_files.iter().map(String::as_str).collect();
    let present: Vec<DataFile> = state
        .raw
        .get(&dt)
        .into_iter()
        .flatten()
        .filter(|o| covered.contains(o.key.as_str()))
        .map(|o| DataFile { key: o.key.clone(), size: o.size, num_rows: None, partition_values: vec![] })
        .collect();
    let raw_files_present = present.len();
    let raw = ctx.read_table(Arc::new(FileListTable::new(raw_schema(), vec![], present)))?;
    let (_, raw_ids) = ids(raw.select(vec![col("event_id")])?.execute_stream().await?).await?;
    let missing = raw_ids.iter().filter(|id| !curated_ids.contains(*id)).count() as u64;
    let mut sum = IdChecksum::default();
    for id in &curated_ids {
        sum.add(id);
    }
    let m = &day.manifest;
    let mut problems = Vec::new();
    if curated_rows != curated_ids.len() as u64 {
        problems.push(format!("{} duplicate event ids in the curated day", curated_rows - curated_ids.len() as u64));
    }
    if curated_rows != m.rows_out {
        problems.push(format!("curated rows {curated_rows} ≠ manifest rows_out {}", m.rows_out));
    }
    let checksum_matches = sum.hex() == m.checksum;
    if !checksum_matches {
        problems.push(format!("event id checksum {} ≠ manifest {}", sum.hex(), m.checksum));
    }
    if missing > 0 {
        problems.push(format!("{missing} event ids of covered raw files are missing from the curated day"));
    }
    if raw_files_present == m.raw_files.len() && raw_ids.len() as u64 != curated_rows {
        problems.push(format!("raw has {} distinct events, curated {curated_rows}", raw_ids.len()));
    }
    Ok(DayCheck {
        dt,
        curated_rows,
        distinct_ids: curated_ids.len() as u64,
        manifest_rows: m.rows_out,
        checksum_matches,
        raw_files_present,
        missing_from_curated: missing,
        pending_raw_files: pending,
        problems,
    })
}

pub use sediment_engine::status::{DayStatus, LakeStatus, status};
