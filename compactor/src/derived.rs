//! Derived tables: projection snapshots and view days.
//!
//! Each day of a derived table records its inputs (definition hash, the
//! events run of the day, the previous snapshot's run) in a manifest; a day
//! is rebuilt when its inputs changed, and every later snapshot with it,
//! since snapshot(D) = snapshot(D−1) ⊕ events(D).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::{DataType, SchemaRef};
use chrono::{Days, NaiveDate};
use datafusion::logical_expr::{cast, col, lit};
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use futures::StreamExt;
use sediment_engine::delta::{SnapshotFile, snapshot_files};
use sediment_engine::files::{DataFile, FileListTable};
use sediment_engine::fold::{Folder, States, fold_batch};
use sediment_engine::schema::{curated_events_file_schema, events_schema};
use sediment_engine::state::CuratedDay;
use sediment_lake::Lake;
use sediment_lake::config::{Projection, View};
use sediment_lake::manifest::{DerivedManifest, DerivedManifestV1, RestatementFile};
use sediment_lake::paths::{curated_file, manifest_key, restatement_key, run_id_of_curated_file, table_root};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::commit::{open_or_create, replace_partition};
use crate::restate::{self, LateEvents};
use crate::write::{write_files, writer_properties};
use crate::{Error, Result, Settings};

/// What building one day of a derived table did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DerivedDayReport {
    pub table: String,
    pub dt: NaiveDate,
    pub run_id: String,
    pub rows: u64,
    pub cast_errors: BTreeMap<String, u64>,
    pub files_written: usize,
    pub bytes_written: u64,
    pub duration_ms: u64,
    /// Published rows this rebuild changed (see `sediment_restatements`).
    pub restated_rows: u64,
}

fn hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\n");
    }
    hex::encode(&h.finalize()[..8])
}

/// Hash of a projection's definition (a changed definition rebuilds it).
pub fn projection_hash(p: &Projection) -> String {
    hash(&[&serde_json::to_string(p).unwrap_or_default(), "fold-v1"])
}

/// Hash of a view's definition.
pub fn view_hash(v: &View) -> String {
    hash(&[&v.sql, "view-v1"])
}

/// The current days of a derived table: files and recorded manifest.
pub(crate) struct DerivedState {
    pub(crate) table: DeltaTable,
    pub(crate) days: BTreeMap<NaiveDate, (Vec<SnapshotFile>, Arc<DerivedManifestV1>)>,
}

pub(crate) async fn load_derived(lake: &Lake, name: &str, schema: &SchemaRef, col_name: &str) -> Result<DerivedState> {
    let table = open_or_create(lake, name, schema, col_name).await?;
    let mut by_day: BTreeMap<NaiveDate, Vec<SnapshotFile>> = BTreeMap::new();
    for f in snapshot_files(&table)? {
        if let Some(dt) = f.partition_values.get(col_name).and_then(|v| v.as_deref()).and_then(|v| v.parse().ok()) {
            by_day.entry(dt).or_default().push(f);
        }
    }
    let mut days = BTreeMap::new();
    for (dt, files) in by_day {
        let run = files.iter().find_map(|f| run_id_of_curated_file(&f.path)).unwrap_or_default().to_owned();
        let key = manifest_key(name, dt, &run);
        let Some(bytes) = lake.get_opt(&key).await? else { continue };
        let m: DerivedManifest = serde_json::from_slice(&bytes).map_err(|e| Error::Internal(format!("{key}: {e}")))?;
        days.insert(dt, (files, Arc::new(m.v1().clone())));
    }
    Ok(DerivedState { table, days })
}

/// Writes one derived day and commits it.
#[allow(clippy::too_many_arguments)]
async fn write_day(
    lake: &Lake,
    settings: &Settings,
    state: &mut DerivedState,
    name: &str,
    col_name: &str,
    dt: NaiveDate,
    inputs: Vec<String>,
    schema: SchemaRef,
    stream: datafusion::physical_plan::SendableRecordBatchStream,
    cast_errors: BTreeMap<String, u64>,
    started: Instant,
    restate: Restate<'_>,
) -> Result<DerivedDayReport> {
    let previous = state.days.get(&dt).map(|(_, m)| m.run_id.clone()).unwrap_or_default();
    let mut parts: Vec<&str> = inputs.iter().map(String::as_str).collect();
    parts.push(&previous);
    let run = hash(&parts);
    let root = table_root(name);
    let mut summary = write_files(
        lake,
        &root,
        Arc::clone(&schema),
        stream,
        writer_properties(settings.compaction.zstd_level, settings.compaction.row_group_rows),
        settings.file_sizes(),
        |part| curated_file(col_name, dt, &run, part),
    )
    .await?;
    if summary.files.is_empty() {
        // An empty day still gets a file, so the day exists and carries its run id.
        let mut writer = parquet::arrow::AsyncArrowWriter::try_new(
            object_store::buffered::BufWriter::new(lake.store(), format!("{root}/{}", curated_file(col_name, dt, &run, 0)).into()),
            Arc::clone(&schema),
            Some(writer_properties(settings.compaction.zstd_level, settings.compaction.row_group_rows)),
        )
        .map_err(|e| Error::Internal(e.to_string()))?;
        writer.write(&arrow::array::RecordBatch::new_empty(Arc::clone(&schema))).await.map_err(|e| Error::Internal(e.to_string()))?;
        writer.finish().await.map_err(|e| Error::Internal(e.to_string()))?;
        let size = writer.bytes_written() as u64;
        summary.files.push(crate::write::WrittenFile { path: curated_file(col_name, dt, &run, 0), size, rows: 0 });
        summary.bytes += size;
    }
    let published = state.days.get(&dt).map_or(0, |(_, m)| m.restatements.len());
    let restatements = restated(lake, settings, state, name, dt, &inputs, &run, &schema, &summary.files, restate).await?;
    let restated_rows = if restatements.len() > published { restatements.last().map_or(0, |r| r.rows) } else { 0 };
    let manifest = DerivedManifestV1 {
        table: name.to_owned(),
        dt,
        run_id: run.clone(),
        inputs,
        rows: summary.rows,
        cast_errors: cast_errors.clone(),
        files: summary.files.iter().map(|f| f.path.clone()).collect(),
        created_at: chrono::Utc::now(),
        restatements: restatements.clone(),
    };
    let body = serde_json::to_vec_pretty(&DerivedManifest::V1(manifest)).map_err(|e| Error::Internal(e.to_string()))?;
    lake.put_if_absent(&manifest_key(name, dt, &run), body.into()).await?;
    let current = state.days.get(&dt).map(|(f, _)| f.clone()).unwrap_or_default();
    replace_partition(&state.table, name, col_name, dt, &current, &summary.files).await?;
    // Our own commit moved the table: follow it before the next day's commit.
    state.table.load().await.map_err(|e| Error::Internal(format!("reloading {name}: {e}")))?;
    let files: Vec<SnapshotFile> = snapshot_files(&state.table)?
        .into_iter()
        .filter(|f| f.partition_values.get(col_name).and_then(|v| v.as_deref()) == Some(dt.to_string().as_str()))
        .collect();
    let recorded = DerivedManifestV1 {
        table: name.to_owned(),
        dt,
        run_id: run.clone(),
        inputs: vec![],
        rows: summary.rows,
        cast_errors: cast_errors.clone(),
        files: vec![],
        created_at: chrono::Utc::now(),
        restatements,
    };
    state.days.insert(dt, (files, Arc::new(recorded)));
    Ok(DerivedDayReport {
        table: name.to_owned(),
        dt,
        run_id: run,
        rows: summary.rows,
        cast_errors,
        files_written: summary.files.len(),
        bytes_written: summary.bytes,
        duration_ms: started.elapsed().as_millis() as u64,
        restated_rows,
    })
}

/// Where the causes of a rebuilt day's changes are looked for: the events
/// days it reads, and the aggregate type it keeps.
pub(crate) struct Restate<'a> {
    pub(crate) days: Vec<&'a CuratedDay>,
    pub(crate) aggregate_type: Option<&'a str>,
    pub(crate) late: &'a mut LateEvents,
}

/// The day's restatement files after this run: those of the runs before,
/// and, when this run replaces a published one of the same definition and
/// changes rows, a new file of what it changed (written before the
/// manifest that names it, which is written before the commit).
#[allow(clippy::too_many_arguments)]
async fn restated(
    lake: &Lake,
    settings: &Settings,
    state: &DerivedState,
    name: &str,
    dt: NaiveDate,
    inputs: &[String],
    run: &str,
    schema: &SchemaRef,
    written: &[crate::write::WrittenFile],
    restate: Restate<'_>,
) -> Result<Vec<RestatementFile>> {
    let Some((old_files, old)) = state.days.get(&dt) else { return Ok(Vec::new()) };
    let mut files = old.restatements.clone();
    // A changed definition is a new table, not a restatement of the old one.
    if old.inputs.first() != inputs.first() || old.run_id == run {
        return Ok(files);
    }
    let root = table_root(name);
    let ctx = settings.session(lake)?;
    let before = restate::rows(&ctx, schema, old_files.iter().map(|f| (format!("{root}/{}", f.path), f.size)).collect()).await?;
    let after = restate::rows(&ctx, schema, written.iter().map(|f| (format!("{root}/{}", f.path), f.size)).collect()).await?;
    let changes = restate::diff(before, after, schema.index_of("aggregate_id").is_ok());
    if changes.is_empty() {
        return Ok(files);
    }
    let (late, recompacted) = restate.late.by_aggregate(lake, &restate.days, old.created_at, restate.aggregate_type).await?;
    let batch = restate::batch(name, dt, &changes, &late, &recompacted, run, &old.run_id, chrono::Utc::now())?;
    let body = restate::encode(&batch)?;
    let key = restatement_key(name, dt, run);
    let size = body.len() as u64;
    lake.put(&key, body).await?;
    files.push(RestatementFile { key, size, rows: changes.len() as u64 });
    Ok(files)
}

fn curated_table(day: &CuratedDay) -> FileListTable {
    let files =
        day.files.iter().map(|f| DataFile { key: CuratedDay::key_of(f), size: f.size, num_rows: None, partition_values: vec![] }).collect();
    FileListTable::new(curated_events_file_schema(), vec![], files)
}

fn files_table(name: &str, schema: SchemaRef, files: &[SnapshotFile]) -> FileListTable {
    let files = files
        .iter()
        .map(|f| DataFile { key: format!("{}/{}", table_root(name), f.path), size: f.size, num_rows: None, partition_values: vec![] })
        .collect();
    FileListTable::new(schema, vec![], files)
}

/// Brings a projection's snapshots up to date for every curated day, from
/// the first day whose inputs changed. Days are contiguous from the first
/// curated day to the last; a day without events carries the state forward.
pub async fn build_projection(
    lake: &Lake,
    settings: &Settings,
    projection: &Projection,
    curated: &BTreeMap<NaiveDate, CuratedDay>,
    force: bool,
) -> Result<Vec<DerivedDayReport>> {
    let folder = Folder::new(projection).map_err(|e| Error::Internal(e.to_string()))?;
    let file_schema = folder.schema(false);
    let mut state = load_derived(lake, &projection.name, &file_schema, "snapshot_date").await?;
    let (Some(first), Some(last)) = (curated.keys().next().copied(), curated.keys().next_back().copied()) else {
        return Ok(Vec::new());
    };
    let def = format!("def:{}", projection_hash(projection));
    let mut reports = Vec::new();
    let mut late = LateEvents::default();
    let mut prev_run: Option<String> = None;
    let mut carried: Option<States> = None;
    let mut dirty = force;
    let mut dt = first;
    while dt <= last {
        let events_run = curated.get(&dt).map(|c| c.manifest.run_id.clone()).unwrap_or_else(|| "none".into());
        let inputs = vec![def.clone(), format!("events:{events_run}"), format!("prev:{}", prev_run.as_deref().unwrap_or("-"))];
        let recorded = state.days.get(&dt).map(|(_, m)| Arc::clone(m));
        if !dirty && recorded.as_ref().is_some_and(|m| m.inputs == inputs) {
            prev_run = recorded.map(|m| m.run_id.clone());
            carried = None;
            dt = dt + Days::new(1);
            continue;
        }
        dirty = true;
        let started = Instant::now();
        let ctx = settings.session(lake)?;
        // Previous state: carried from the loop, or read back from snapshot(D−1).
        let mut states = match carried.take() {
            Some(s) => s,
            None => {
                let mut s = States::new();
                if let Some(prev) = dt.checked_sub_days(Days::new(1)).and_then(|p| state.days.get(&p))
                    && prev_run.is_some()
                {
                    let df = ctx.read_table(Arc::new(files_table(&projection.name, Arc::clone(&file_schema), &prev.0)))?;
                    let mut stream = df.execute_stream().await?;
                    while let Some(batch) = stream.next().await {
                        folder.from_batch(&batch?, &mut s).map_err(|e| Error::Internal(e.to_string()))?;
                    }
                }
                s
            }
        };
        let mut cast_errors = 0u64;
        if let Some(day) = curated.get(&dt) {
            let df = ctx
                .read_table(Arc::new(curated_table(day)))?
                .filter(col("aggregate_type").eq(lit(folder.aggregate_type().to_owned())))?
                .sort(vec![
                    col("aggregate_id").sort(true, false),
                    col("sequence").sort(true, true),
                    col("occurred_at").sort(true, false),
                    col("event_id").sort(true, false),
                ])?;
            let mut stream = df.execute_stream().await?;
            while let Some(batch) = stream.next().await {
                fold_batch(&folder, &mut states, &batch?, &mut cast_errors).map_err(|e| Error::Internal(e.to_string()))?;
            }
        }
        let batch = folder.to_batch(&states).map_err(|e| Error::Internal(e.to_string()))?;
        let stream = datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            Arc::clone(&file_schema),
            futures::stream::iter(vec![Ok(batch)]),
        );
        let mut errors = BTreeMap::new();
        if cast_errors > 0 {
            errors.insert("*".to_owned(), cast_errors);
        }
        let report = write_day(
            lake,
            settings,
            &mut state,
            &projection.name,
            "snapshot_date",
            dt,
            inputs,
            Arc::clone(&file_schema),
            Box::pin(stream),
            errors,
            started,
            Restate {
                days: curated.range(..=dt).map(|(_, d)| d).collect(),
                aggregate_type: Some(folder.aggregate_type()),
                late: &mut late,
            },
        )
        .await?;
        prev_run = Some(report.run_id.clone());
        reports.push(report);
        carried = Some(states);
        dt = dt + Days::new(1);
    }
    Ok(reports)
}

/// Output schema of a view (its SQL planned over an empty `events`).
async fn view_schema(settings: &Settings, lake: &Lake, view: &View) -> Result<SchemaRef> {
    let ctx = settings.session(lake)?;
    register_events_day(&ctx, None)?;
    let df = sediment_trino::sql(&ctx, &view.sql).await?;
    Ok(strip_dt(&Arc::new(df.schema().as_arrow().clone())))
}

/// The view's columns without `dt`, in types every Delta reader takes.
fn strip_dt(schema: &SchemaRef) -> SchemaRef {
    use arrow::datatypes::{Field, TimeUnit};
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .filter(|f| f.name() != "dt")
        .map(|f| {
            let ty = match f.data_type() {
                DataType::Timestamp(..) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                DataType::UInt64 | DataType::UInt32 => DataType::Int64,
                DataType::UInt16 | DataType::UInt8 => DataType::Int32,
                DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
                DataType::Float16 | DataType::Float32 => DataType::Float64,
                other => other.clone(),
            };
            Field::new(f.name(), ty, true)
        })
        .collect();
    Arc::new(arrow::datatypes::Schema::new(fields))
}

/// Registers `events` as one curated day (or empty), in query types.
fn register_events_day(ctx: &SessionContext, day: Option<&CuratedDay>) -> Result<()> {
    let files = day
        .map(|d| {
            d.files
                .iter()
                .map(|f| DataFile { key: CuratedDay::key_of(f), size: f.size, num_rows: None, partition_values: vec![] })
                .collect()
        })
        .unwrap_or_default();
    let raw = ctx.read_table(Arc::new(FileListTable::new(curated_events_file_schema(), vec![], files)))?;
    let dt = day.map(|d| d.manifest.dt).unwrap_or_default();
    let mut exprs: Vec<_> = events_schema()
        .fields()
        .iter()
        .filter(|f| f.name() != "dt")
        .map(|f| cast(col(f.name()), f.data_type().clone()).alias(f.name()))
        .collect();
    exprs.push(lit(datafusion::common::ScalarValue::Date32(Some(sediment_engine::events::date32(dt)))).alias("dt"));
    ctx.register_table("events", raw.select(exprs)?.into_view())?;
    Ok(())
}

/// Brings a view up to date for every curated day whose inputs changed.
pub async fn build_view(
    lake: &Lake,
    settings: &Settings,
    view: &View,
    curated: &BTreeMap<NaiveDate, CuratedDay>,
    force: bool,
) -> Result<Vec<DerivedDayReport>> {
    let schema = view_schema(settings, lake, view).await?;
    let mut state = load_derived(lake, &view.name, &schema, "dt").await?;
    let def = format!("def:{}", view_hash(view));
    let mut reports = Vec::new();
    let mut late = LateEvents::default();
    for (dt, day) in curated {
        let inputs = vec![def.clone(), format!("events:{}", day.manifest.run_id)];
        if !force && state.days.get(dt).is_some_and(|(_, m)| m.inputs == inputs) {
            continue;
        }
        let started = Instant::now();
        let ctx = settings.session(lake)?;
        register_events_day(&ctx, Some(day))?;
        let df = sediment_trino::sql(&ctx, &view.sql).await?;
        let cols: Vec<_> = schema.fields().iter().map(|f| cast(col(f.name()), f.data_type().clone()).alias(f.name())).collect();
        let stream = df.select(cols)?.execute_stream().await?;
        let restate = Restate { days: vec![day], aggregate_type: None, late: &mut late };
        let report = write_day(
            lake,
            settings,
            &mut state,
            &view.name,
            "dt",
            *dt,
            inputs,
            Arc::clone(&schema),
            stream,
            BTreeMap::new(),
            started,
            restate,
        )
        .await?;
        reports.push(report);
    }
    Ok(reports)
}
