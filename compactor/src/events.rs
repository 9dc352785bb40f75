//! Compacting one day of `events`: the previous curated day plus the day's
//! uncovered raw files, deduplicated by `event_id` (earliest arrival wins),
//! sorted by aggregate, written as large zstd files, committed as one
//! transaction that replaces the day.

use std::sync::Arc;
use std::time::Instant;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, UInt64Array};
use arrow::compute::{SortOptions, filter_record_batch};
use arrow::datatypes::{DataType, TimestampMicrosecondType};
use arrow::row::{OwnedRow, RowConverter, SortField};
use chrono::NaiveDate;
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{ColumnarValue, ExprFunctionExt, JoinType, ScalarUDF, Volatility, cast, col, create_udf, lit};
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;
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
use crate::{Error, Result, RunShape, Settings};

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
    /// The typed copies of the day's event types (`typed/events/`).
    pub typed_files_written: usize,
    pub typed_bytes_written: u64,
    pub duration_ms: u64,
    /// Commit attempts lost to a concurrent compactor.
    pub conflicts: u32,
}

/// `sediment_payload_digest(payload)`: the xxHash64 (seed 0) of the text, a
/// fixed function whatever the machine, so a day's winner among exact ties
/// is the same on every run.
fn payload_digest() -> ScalarUDF {
    create_udf(
        "sediment_payload_digest",
        vec![DataType::Utf8],
        DataType::UInt64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let text = arrays[0]
                .as_string_opt::<i32>()
                .ok_or_else(|| datafusion::error::DataFusionError::Internal(format!("payload digest of {}", arrays[0].data_type())))?;
            let digests: UInt64Array = text.iter().map(|v| v.map(|s| twox_hash::XxHash64::oneshot(0, s.as_bytes()))).collect();
            Ok(ColumnarValue::Array(Arc::new(digests)))
        }),
    )
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
    let stored: u64 = report.raw_bytes_read + previous.iter().flat_map(|p| p.files.iter()).map(|f| f.size).sum::<u64>();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let prev_files: Vec<DataFile> = previous
        .iter()
        .flat_map(|p| p.files.iter())
        .map(|f| DataFile { key: CuratedDay::key_of(f), size: f.size, num_rows: None, partition_values: vec![] })
        .collect();
    let raw_files: Vec<DataFile> =
        new_raw.iter().map(|o| DataFile { key: o.key.clone(), size: o.size, num_rows: None, partition_values: vec![] }).collect();
    let target = Target { lake, settings, dt, run: &run };
    let files_in = prev_files.len() + raw_files.len();
    // Every file is at least one sorted run: too many files cannot merge.
    let merged = if files_in <= crate::MERGE_MAX_RUNS { merge_day(cores, &prev_files, &raw_files, &target).await? } else { None };
    let (rows_in, summary) = match merged {
        Some(done) => done,
        None => {
            // Every core only when the day fits decoded: the sort's hash repartition cannot spill.
            let partitions = if settings.fits_in_memory(stored) { cores } else { 1 };
            sort_day(&settings.session_with_partitions(lake, partitions)?, &prev_files, &raw_files, &target).await?
        }
    };

    let typed =
        if settings.compaction.typed_copies { Some(crate::typed::write_typed(lake, settings, dt, &run, &summary).await?) } else { None };
    report.typed_files_written = typed.iter().flatten().map(|t| t.files.len()).sum();
    report.typed_bytes_written = typed.iter().flatten().flat_map(|t| &t.files).map(|f| f.size).sum();
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
        shapes: (!summary.shapes.is_empty()).then(|| {
            summary
                .shapes
                .iter()
                .map(|((event_type, event_version), shape)| sediment_lake::payload_schema::PayloadShape {
                    event_type: event_type.clone(),
                    event_version: *event_version,
                    shape: shape.clone(),
                })
                .collect()
        }),
        typed,
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
    Ok(report)
}

/// Where a compaction writes the day's files.
struct Target<'a> {
    lake: &'a Lake,
    settings: &'a Settings,
    dt: NaiveDate,
    run: &'a str,
}

impl Target<'_> {
    async fn write(&self, stream: impl futures::Stream<Item = datafusion::error::Result<RecordBatch>> + Unpin) -> Result<WriteSummary> {
        let root = table_root(EVENTS_TABLE);
        let props = writer_properties(self.settings.compaction.zstd_level, self.settings.compaction.row_group_rows);
        Ok(write_files(self.lake, &root, curated_events_file_schema(), stream, props, self.settings.file_sizes(), |part| {
            curated_file("dt", self.dt, self.run, part)
        })
        .await?)
    }
}

/// The order of curated files, and of every raw file (`sort_rows` in the
/// ingest crate): aggregate, sequence (no sequence first), time, id.
fn day_order() -> Vec<(String, SortOptions)> {
    let asc = SortOptions { descending: false, nulls_first: false };
    vec![
        (AGGREGATE_TYPE.to_owned(), asc),
        (AGGREGATE_ID.to_owned(), asc),
        (SEQUENCE.to_owned(), SortOptions { descending: false, nulls_first: true }),
        (OCCURRED_AT.to_owned(), asc),
        (EVENT_ID.to_owned(), asc),
    ]
}

/// The order every input file is declared in, and the raw files sorted
/// only a row group at a time (key → row groups).
type DeclaredOrder = (Vec<(String, SortOptions)>, HashMap<String, usize>);

/// The previous curated rows ∪ the new raw rows, in the curated file schema;
/// with `ordering`, every file declared sorted by it. Declared, raw files
/// are read in the curated schema (the scan widens their millisecond
/// timestamps): a cast above the scan would hide the order of the columns
/// after `occurred_at` from the planner.
fn day_input(ctx: &SessionContext, prev_files: &[DataFile], raw_files: &[DataFile], ordering: Option<DeclaredOrder>) -> Result<DataFrame> {
    let curated_schema = curated_events_file_schema();
    let mut input = match &ordering {
        Some((o, row_groups)) => {
            let raw = FileListTable::new(Arc::clone(&curated_schema), vec![], raw_files.to_vec())
                .with_file_ordering(o.clone())
                .with_sorted_row_groups(row_groups.clone());
            ctx.read_table(Arc::new(raw))?
        }
        None => {
            let to_curated: Vec<_> =
                curated_schema.fields().iter().map(|f| cast(col(f.name()), f.data_type().clone()).alias(f.name())).collect();
            ctx.read_table(Arc::new(FileListTable::new(raw_schema(), vec![], raw_files.to_vec())))?.select(to_curated)?
        }
    };
    if !prev_files.is_empty() {
        let mut prev = FileListTable::new(Arc::clone(&curated_schema), vec![], prev_files.to_vec());
        if let Some((o, _)) = ordering {
            prev = prev.with_file_ordering(o);
        }
        input = ctx.read_table(Arc::new(prev))?.union(input)?;
    }
    Ok(input)
}

/// The sorted runs of a merge, from the files' footers: a raw file is
/// sorted a row group at a time (a stream batch writes one; bulk ingest
/// appends a sorted row group per flush of a partition's buffer, whose rows
/// may sort before the previous one's), so each of its row groups is a run
/// of its own; a curated file is written from one sorted stream and is one
/// run. Returns the raw files' row-group counts and every run's shape.
async fn sorted_runs(lake: &Lake, prev_files: &[DataFile], raw_files: &[DataFile]) -> Result<(HashMap<String, usize>, Vec<RunShape>)> {
    let files = prev_files.iter().map(|f| (f, false)).chain(raw_files.iter().map(|f| (f, true)));
    let footers: Vec<Result<_>> = futures::stream::iter(files.map(|(f, raw)| async move {
        let metadata = footer(lake, &f.key, f.size).await.map_err(|e| Error::Internal(format!("reading the footer of {}: {e}", f.key)))?;
        Ok((f.key.clone(), raw, metadata))
    }))
    .buffered(16)
    .collect()
    .await;
    let mut row_groups = HashMap::new();
    let mut runs = Vec::new();
    for footer in footers {
        let (key, raw, metadata) = footer?;
        let shape = |g: &parquet::file::metadata::RowGroupMetaData| RunShape {
            stored_bytes: g.compressed_size().max(0) as u64,
            row_bytes: (g.total_byte_size().max(0) as u64).div_ceil(g.num_rows().max(1) as u64),
        };
        let groups = metadata.row_groups();
        if raw {
            row_groups.insert(key, groups.len());
            runs.extend(groups.iter().map(shape));
        } else {
            // One run reading one row group at a time: the largest of each.
            let (stored_bytes, row_bytes) = groups.iter().map(shape).fold((0, 0), |(s, r), g| (s.max(g.stored_bytes), r.max(g.row_bytes)));
            runs.push(RunShape { stored_bytes, row_bytes });
        }
    }
    Ok((row_groups, runs))
}

/// A Parquet file's metadata, from one read of its tail (two when the
/// footer is larger than the first guess).
async fn footer(lake: &Lake, key: &str, size: u64) -> std::result::Result<parquet::file::metadata::ParquetMetaData, String> {
    use object_store::ObjectStoreExt;
    use parquet::errors::ParquetError;
    use parquet::file::metadata::ParquetMetaDataReader;
    let store = lake.store();
    let path = object_store::path::Path::from(key);
    let mut want = size.min(64 << 10);
    loop {
        let tail = store.get_range(&path, size - want..size).await.map_err(|e| e.to_string())?;
        let mut reader = ParquetMetaDataReader::new();
        match reader.try_parse_sized(&tail, size) {
            Ok(()) => return reader.finish().map_err(|e| e.to_string()),
            Err(ParquetError::NeedMoreData(needed)) if (needed as u64) > want && (needed as u64) <= size => want = needed as u64,
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn sorted_by_day_order(frame: DataFrame) -> Result<DataFrame> {
    let order = day_order().into_iter().map(|(c, o)| col(c).sort(!o.descending, o.nulls_first)).collect();
    Ok(frame.sort(order)?.select(curated_events_file_schema().fields().iter().map(|f| col(f.name())).collect::<Vec<_>>())?)
}

/// Deduplication by a window over `event_id`, then a sort of the survivors:
/// spills under the memory limit, whatever the files' order.
async fn sort_day(
    ctx: &SessionContext,
    prev_files: &[DataFile],
    raw_files: &[DataFile],
    target: &Target<'_>,
) -> Result<(u64, WriteSummary)> {
    let input = day_input(ctx, prev_files, raw_files, None)?;
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
            // xxHash64, not a cryptographic digest: it only orders exact ties
            // of everything above, and it is computed for every row.
            payload_digest().call(vec![col(PAYLOAD)]).sort(true, false),
        ])
        .build()?
        .alias("__rn");
    let output = sorted_by_day_order(input.window(vec![winner])?.filter(col("__rn").eq(lit(1u64)))?)?;
    let summary = target.write(output.execute_stream().await?).await?;
    Ok((rows_in, summary))
}

/// The copy of an event that wins among its duplicates: the earliest
/// arrival, then source position, source, type and aggregate, as in
/// [`sort_day`]'s window.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Arrival {
    ingested_at: i64,
    source_position: String,
    source: String,
    event_type: String,
    aggregate_id: String,
}

/// Deduplication without a sort: every input file is already in the day's
/// order, so the files are merged, and the rows of `event_id`s that occur
/// more than once (found first from the key columns alone) are filtered to
/// their winners as they stream past. `None` when the day needs
/// [`sort_day`]: copies tied on every key but the payload, or a file out of
/// order.
async fn merge_day(
    partitions: usize,
    prev_files: &[DataFile],
    raw_files: &[DataFile],
    target: &Target<'_>,
) -> Result<Option<(u64, WriteSummary)>> {
    let (row_groups, runs) = sorted_runs(target.lake, prev_files, raw_files).await?;
    let Some(batch_rows) = target.settings.merge_batch_rows(&runs) else {
        tracing::info!(dt = %target.dt, runs = runs.len(), "the sorted runs do not fit in memory together; deduplicating by sort");
        return Ok(None);
    };
    let ctx = &target.settings.session_with_batches(target.lake, partitions, batch_rows)?;
    let input = day_input(ctx, prev_files, raw_files, Some((day_order(), row_groups)))?;
    let Some(winners) = winners(input.clone()).await? else {
        tracing::info!(dt = %target.dt, "copies of an event tied but for the payload; deduplicating by sort");
        return Ok(None);
    };
    let output = sorted_by_day_order(input)?;
    let mut filter = MergeFilter::new(winners);
    let (rows_in, unsorted) = (Arc::clone(&filter.rows_in), Arc::clone(&filter.unsorted));
    let stream = output.execute_stream().await?.map(move |batch| batch.and_then(|b| filter.apply(b)));
    match target.write(stream).await {
        Ok(summary) => Ok(Some((rows_in.load(Ordering::Relaxed), summary))),
        // The files written so far carry this run's names; the sort rewrites them.
        Err(_) if unsorted.load(Ordering::Relaxed) => {
            tracing::warn!(dt = %target.dt, "an input file is not in the day's order; deduplicating by sort");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The key columns of the copies of every `event_id` that occurs more than
/// once, reduced to each one's winning [`Arrival`]; `None` if two copies tie
/// on all of them (the payload then decides, as in [`sort_day`]).
async fn winners(input: DataFrame) -> Result<Option<HashMap<String, Arrival>>> {
    let repeated = input
        .clone()
        .aggregate(vec![col(EVENT_ID)], vec![count(lit(1)).alias("__copies")])?
        .filter(col("__copies").gt(lit(1i64)))?
        .select(vec![col(EVENT_ID).alias("__repeated")])?;
    let copies = input
        .select(vec![col(EVENT_ID), col(INGESTED_AT), col(SOURCE_POSITION), col(SOURCE), col(EVENT_TYPE), col(AGGREGATE_ID)])?
        .join(repeated, JoinType::LeftSemi, &[EVENT_ID], &["__repeated"], None)?
        .collect()
        .await?;
    let mut best: HashMap<String, (Arrival, bool)> = HashMap::new();
    for batch in &copies {
        let keys = ArrivalColumns::of(batch)?;
        for i in 0..batch.num_rows() {
            let arrival = keys.arrival(i);
            match best.entry(keys.ids.value(i).to_owned()) {
                Entry::Vacant(v) => {
                    v.insert((arrival, false));
                }
                Entry::Occupied(mut o) => match arrival.cmp(&o.get().0) {
                    std::cmp::Ordering::Less => *o.get_mut() = (arrival, false),
                    std::cmp::Ordering::Equal => o.get_mut().1 = true,
                    std::cmp::Ordering::Greater => {}
                },
            }
        }
    }
    if best.values().any(|(_, tied)| *tied) {
        return Ok(None);
    }
    Ok(Some(best.into_iter().map(|(id, (arrival, _))| (id, arrival)).collect()))
}

/// A batch's `event_id` and [`Arrival`] columns, found by name.
struct ArrivalColumns<'a> {
    ids: &'a StringArray,
    ingested_at: &'a arrow::array::TimestampMicrosecondArray,
    source_position: &'a StringArray,
    source: &'a StringArray,
    event_type: &'a StringArray,
    aggregate_id: &'a StringArray,
}

impl<'a> ArrivalColumns<'a> {
    fn of(batch: &'a RecordBatch) -> datafusion::error::Result<Self> {
        let column = |name: &str| batch.column_by_name(name).ok_or_else(|| DataFusionError::Internal(format!("no {name} column")));
        let text =
            |name: &str| column(name)?.as_string_opt::<i32>().ok_or_else(|| DataFusionError::Internal(format!("{name} is not Utf8")));
        Ok(Self {
            ids: text(EVENT_ID)?,
            ingested_at: column(INGESTED_AT)?
                .as_primitive_opt::<TimestampMicrosecondType>()
                .ok_or_else(|| DataFusionError::Internal("ingested_at is not microseconds".into()))?,
            source_position: text(SOURCE_POSITION)?,
            source: text(SOURCE)?,
            event_type: text(EVENT_TYPE)?,
            aggregate_id: text(AGGREGATE_ID)?,
        })
    }

    fn arrival(&self, i: usize) -> Arrival {
        Arrival {
            ingested_at: self.ingested_at.value(i),
            source_position: self.source_position.value(i).to_owned(),
            source: self.source.value(i).to_owned(),
            event_type: self.event_type.value(i).to_owned(),
            aggregate_id: self.aggregate_id.value(i).to_owned(),
        }
    }

    /// Whether row `i` is the copy that arrived as `w`.
    fn is(&self, i: usize, w: &Arrival) -> bool {
        w.ingested_at == self.ingested_at.value(i)
            && w.source_position == self.source_position.value(i)
            && w.source == self.source.value(i)
            && w.event_type == self.event_type.value(i)
            && w.aggregate_id == self.aggregate_id.value(i)
    }
}

/// Drops the losing copies of repeated events from the merged stream, and
/// checks that the stream is in the day's order (the files' order is the
/// writers' promise, kept by every writer; a broken promise falls back to
/// [`sort_day`] rather than writing a day out of order).
struct MergeFilter {
    winners: HashMap<String, Arrival>,
    order: RowConverter,
    order_columns: Vec<usize>,
    last: Option<OwnedRow>,
    rows_in: Arc<AtomicU64>,
    unsorted: Arc<AtomicBool>,
}

impl MergeFilter {
    fn new(winners: HashMap<String, Arrival>) -> Self {
        let schema = curated_events_file_schema();
        let order = day_order();
        let fields = order
            .iter()
            .map(|(name, options)| {
                let field = schema.field_with_name(name).expect("day order columns are curated columns");
                SortField::new_with_options(field.data_type().clone(), *options)
            })
            .collect();
        Self {
            winners,
            // Strings, integers and timestamps: every type a row converter supports.
            order: RowConverter::new(fields).expect("row-encodable sort columns"),
            order_columns: order.iter().map(|(name, _)| schema.index_of(name).expect("curated column")).collect(),
            last: None,
            rows_in: Arc::default(),
            unsorted: Arc::default(),
        }
    }

    fn apply(&mut self, batch: RecordBatch) -> datafusion::error::Result<RecordBatch> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(batch);
        }
        self.rows_in.fetch_add(n as u64, Ordering::Relaxed);
        let columns: Vec<ArrayRef> = self.order_columns.iter().map(|&i| Arc::clone(batch.column(i))).collect();
        let rows = self.order.convert_columns(&columns)?;
        let in_order = self.last.as_ref().is_none_or(|last| last.row() <= rows.row(0)) && (1..n).all(|i| rows.row(i - 1) <= rows.row(i));
        if !in_order {
            self.unsorted.store(true, Ordering::Relaxed);
            return Err(DataFusionError::Execution("merged input is not in the day's order".into()));
        }
        self.last = Some(rows.row(n - 1).owned());
        if self.winners.is_empty() {
            return Ok(batch);
        }
        let keys = ArrivalColumns::of(&batch)?;
        let keep: BooleanArray = (0..n).map(|i| Some(self.winners.get(keys.ids.value(i)).is_none_or(|w| keys.is(i, w)))).collect();
        Ok(filter_record_batch(&batch, &keep)?)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int32Array, Int64Array, TimestampMillisecondArray};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use sediment_lake::config::CompactionSection;
    use sediment_lake::paths::RawFile;

    use super::*;

    const DAY: &str = "2026-10-05";

    /// A raw row: id, aggregate, sequence, occurred (ms into the day), payload, ingested (ms), position.
    type RawRow = (&'static str, &'static str, Option<i64>, i64, &'static str, i64, &'static str);

    fn day() -> NaiveDate {
        DAY.parse().unwrap()
    }

    /// Writes rows as one raw file, in the order given (writers sort; a test may not).
    async fn raw_file(lake: &Lake, name: &str, rows: &[RawRow]) -> DataFile {
        raw_file_in_row_groups(lake, name, &[rows]).await
    }

    /// Writes one raw file with a row group per slice of rows.
    async fn raw_file_in_row_groups(lake: &Lake, name: &str, groups: &[&[RawRow]]) -> DataFile {
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, raw_schema(), None).unwrap();
        for rows in groups {
            w.write(&raw_batch(rows)).unwrap();
            w.flush().unwrap();
        }
        w.close().unwrap();
        let key = RawFile::new(day(), 0, name).key();
        let size = buf.len() as u64;
        lake.put(&key, buf.into()).await.unwrap();
        DataFile { key, size, num_rows: None, partition_values: vec![] }
    }

    fn raw_batch(rows: &[RawRow]) -> RecordBatch {
        let base = day().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis();
        let texts = |f: &dyn Fn(&RawRow) -> &str| Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>())) as ArrayRef;
        let columns: Vec<ArrayRef> = vec![
            texts(&|r| r.0),
            texts(&|_| "Touched"),
            Arc::new(Int32Array::from(vec![1; rows.len()])),
            texts(&|_| "Thing"),
            texts(&|r| r.1),
            Arc::new(Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
            Arc::new(TimestampMillisecondArray::from(rows.iter().map(|r| base + r.3).collect::<Vec<_>>()).with_timezone("UTC")),
            texts(&|r| r.4),
            Arc::new(StringArray::from(vec![None::<&str>; rows.len()])),
            Arc::new(TimestampMillisecondArray::from(rows.iter().map(|r| base + r.5).collect::<Vec<_>>()).with_timezone("UTC")),
            texts(&|_| "cli"),
            texts(&|r| r.6),
        ];
        RecordBatch::try_new(raw_schema(), columns).unwrap()
    }

    fn settings() -> Settings {
        Settings { compaction: CompactionSection::default() }
    }

    async fn written(lake: &Lake, summary: &WriteSummary) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        for f in &summary.files {
            let bytes = lake.get(&format!("{}/{}", table_root(EVENTS_TABLE), f.path)).await.unwrap();
            out.extend(ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap().map(Result::unwrap));
        }
        out
    }

    async fn both(lake: &Lake, files: &[DataFile]) -> (Option<(u64, Vec<RecordBatch>)>, (u64, Vec<RecordBatch>)) {
        let settings = settings();
        let ctx = settings.session_with_partitions(lake, 2).unwrap();
        let merged = merge_day(2, &[], files, &Target { lake, settings: &settings, dt: day(), run: "merge" }).await.unwrap();
        let merged = match merged {
            Some((rows_in, summary)) => Some((rows_in, written(lake, &summary).await)),
            None => None,
        };
        let (rows_in, summary) = sort_day(&ctx, &[], files, &Target { lake, settings: &settings, dt: day(), run: "sort" }).await.unwrap();
        (merged, (rows_in, written(lake, &summary).await))
    }

    fn rows(batches: &[RecordBatch]) -> Vec<String> {
        let all = arrow::compute::concat_batches(&curated_events_file_schema(), batches).unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&[all]).unwrap().to_string();
        text.lines().map(str::to_owned).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn merging_sorted_files_equals_deduplicating_by_sort() {
        let lake = Lake::open("memory://merge-day-1").unwrap();
        // Sorted as writers sort: aggregate, sequence (none first), time, id.
        let a = raw_file(
            &lake,
            "a",
            &[
                ("e0", "A", None, 5, r#"{"n":0}"#, 100, "a:1"),
                ("e1", "A", Some(1), 10, r#"{"n":1}"#, 100, "a:2"),
                ("e2", "A", Some(2), 20, r#"{"n":2}"#, 100, "a:3"),
                ("e3", "B", Some(1), 10, r#"{"n":3}"#, 100, "a:4"),
                ("e4", "C", Some(1), 40, r#"{"n":4}"#, 100, "a:5"),
            ],
        )
        .await;
        // A redelivery (later), a conflicting copy of e1 on another aggregate
        // (later: loses), and a copy of e4 that arrived first (wins, though
        // it sorts elsewhere).
        let b = raw_file(
            &lake,
            "b",
            &[
                ("e2", "A", Some(2), 20, r#"{"n":2}"#, 200, "b:1"),
                ("e4", "A", Some(9), 30, r#"{"n":44}"#, 50, "b:2"),
                ("e1", "Z", Some(7), 10, r#"{"n":11}"#, 200, "b:3"),
                ("e5", "Z", Some(8), 10, r#"{"n":5}"#, 200, "b:4"),
            ],
        )
        .await;
        let (merged, (rows_in, sorted)) = both(&lake, &[a, b]).await;
        let (merged_in, merged) = merged.expect("sorted files merge");
        assert_eq!((merged_in, rows_in), (9, 9));
        assert_eq!(rows(&merged), rows(&sorted));
        let ids: Vec<String> = rows(&merged).iter().filter_map(|l| l.split('|').nth(1).map(|s| s.trim().to_owned())).collect();
        assert_eq!(ids, ["event_id", "e0", "e1", "e2", "e4", "e3", "e5"], "{:#?}", rows(&merged));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_of_sorted_row_groups_out_of_order_is_merged_by_row_group() {
        let lake = Lake::open("memory://merge-day-5").unwrap();
        // As bulk ingest writes a partition: each flush a sorted row group,
        // the second sorting before the first's end.
        let bulk = raw_file_in_row_groups(
            &lake,
            "bulk",
            &[
                &[("e1", "A", Some(1), 10, r#"{"n":1}"#, 100, "l:1"), ("e3", "C", Some(1), 10, r#"{"n":3}"#, 100, "l:2")],
                &[
                    ("e2", "B", Some(1), 10, r#"{"n":2}"#, 300, "l:3"),
                    ("e1", "B", Some(2), 10, r#"{"n":11}"#, 300, "l:4"),
                    ("e4", "D", Some(1), 10, r#"{"n":4}"#, 300, "l:5"),
                ],
            ],
        )
        .await;
        let other = raw_file(&lake, "other", &[("e2", "B", Some(1), 10, r#"{"n":2}"#, 50, "s:1")]).await;
        let (merged, (rows_in, sorted)) = both(&lake, &[bulk, other]).await;
        let (merged_in, merged) = merged.expect("row groups each sorted merge");
        assert_eq!((merged_in, rows_in), (6, 6));
        assert_eq!(rows(&merged), rows(&sorted));
        let ids: Vec<String> = rows(&merged).iter().filter_map(|l| l.split('|').nth(1).map(|s| s.trim().to_owned())).collect();
        assert_eq!(ids, ["event_id", "e1", "e2", "e3", "e4"], "{:#?}", rows(&merged));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ties_but_for_the_payload_and_files_out_of_order_fall_back_to_the_sort() {
        let lake = Lake::open("memory://merge-day-2").unwrap();
        let tie = raw_file(
            &lake,
            "tie",
            &[("e1", "A", Some(1), 10, r#"{"n":1}"#, 100, "p:1"), ("e1", "A", Some(1), 10, r#"{"n":2}"#, 100, "p:1")],
        )
        .await;
        let (merged, (_, sorted)) = both(&lake, std::slice::from_ref(&tie)).await;
        assert!(merged.is_none());
        assert_eq!(sorted.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);

        let lake = Lake::open("memory://merge-day-3").unwrap();
        let unsorted =
            raw_file(&lake, "unsorted", &[("e2", "B", Some(1), 10, "{}", 100, "p:1"), ("e1", "A", Some(1), 10, "{}", 100, "p:2")]).await;
        let (merged, (rows_in, sorted)) = both(&lake, &[unsorted]).await;
        assert!(merged.is_none());
        assert_eq!((rows_in, sorted.iter().map(RecordBatch::num_rows).sum::<usize>()), (2, 2));
    }

    /// Every row group of a curated file carries bloom filters of its
    /// `aggregate_id` and `event_id` values, which answer "absent" for ids
    /// it does not hold (all but about one in a hundred).
    #[tokio::test]
    async fn curated_row_groups_carry_bloom_filters_of_the_lookup_columns() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::file::serialized_reader::ReadOptionsBuilder;
        let lake = Lake::open("memory://merge-day-bloom").unwrap();
        let a = raw_file(&lake, "a", &[("e1", "A", Some(1), 10, "{}", 100, "a:1"), ("e2", "B", Some(1), 20, "{}", 100, "a:2")]).await;
        let settings = settings();
        let target = Target { lake: &lake, settings: &settings, dt: day(), run: "bloom" };
        let (_, summary) = merge_day(2, &[], &[a], &target).await.unwrap().expect("one sorted file merges");
        let bytes = lake.get(&format!("{}/{}", table_root(EVENTS_TABLE), summary.files[0].path)).await.unwrap();
        let reader = SerializedFileReader::new_with_options(
            bytes,
            ReadOptionsBuilder::new()
                .with_reader_properties(parquet::file::properties::ReaderProperties::builder().set_read_bloom_filter(true).build())
                .build(),
        )
        .unwrap();
        let row_group = reader.get_row_group(0).unwrap();
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        let column = |name: &str| (0..schema.num_columns()).find(|&i| schema.column(i).name() == name).unwrap();
        for (name, present) in [(AGGREGATE_ID, ["A", "B"]), (EVENT_ID, ["e1", "e2"])] {
            let bloom = row_group.get_column_bloom_filter(column(name)).unwrap_or_else(|| panic!("no bloom filter on {name}"));
            assert!(present.iter().all(|v| bloom.check(v)), "{name}");
            let false_positives = (0..1000).filter(|i| bloom.check(&format!("absent-{i}").as_str())).count();
            assert!(false_positives < 50, "{name}: {false_positives} of 1000 absent values pass");
        }
    }

    #[tokio::test]
    async fn sorted_files_are_merged_not_sorted() {
        let lake = Lake::open("memory://merge-day-4").unwrap();
        let a = raw_file(&lake, "a", &[("e1", "A", Some(1), 10, "{}", 100, "a:1")]).await;
        let b = raw_file(&lake, "b", &[("e2", "A", Some(2), 10, "{}", 100, "b:1")]).await;
        let ctx = settings().session_with_partitions(&lake, 2).unwrap();
        let frame =
            sorted_by_day_order(day_input(&ctx, std::slice::from_ref(&a), &[b], Some((day_order(), HashMap::new()))).unwrap()).unwrap();
        let plan = datafusion::physical_plan::displayable(frame.create_physical_plan().await.unwrap().as_ref()).indent(true).to_string();
        assert!(plan.contains("SortPreservingMergeExec") && !plan.contains("SortExec"), "{plan}");
    }
}
