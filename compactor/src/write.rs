//! Streaming Parquet output into the lake, rolled over at a target size.
//!
//! Each file is a multipart upload that becomes visible whole when closed;
//! memory holds at most two row groups, encoded, per open file.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::ArrowSchemaConverter;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowLeafColumn, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::arrow::async_writer::AsyncFileWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use sediment_lake::Lake;
use sediment_lake::manifest::IdChecksum;
use sediment_lake::schema::{AGGREGATE_ID, EVENT_ID};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A file written by [`write_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Relative to the table root.
    pub path: String,
    pub size: u64,
    pub rows: u64,
}

/// Totals of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteSummary {
    pub files: Vec<WrittenFile>,
    pub rows: u64,
    pub bytes: u64,
    /// Checksum of the `event_id` column, when the schema has one.
    pub checksum: IdChecksum,
    /// Rows by (`event_type`, `aggregate_type`), when the schema has both.
    pub counts: std::collections::BTreeMap<(String, String), u64>,
    /// Payload shapes by (`event_type`, `event_version`), when the schema
    /// has those and `payload`.
    pub shapes: std::collections::BTreeMap<(String, i32), sediment_lake::payload_schema::Shape>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing {key}: {source}")]
    Parquet { key: String, source: parquet::errors::ParquetError },
    #[error("reading the input to write {key}: {source}")]
    Input { key: String, source: datafusion::error::DataFusionError },
}

/// Columns an analyst looks a row up by: each row group carries a bloom
/// filter of them, so a lookup skips every day that does not hold the key
/// (a day's `aggregate_id` range spans nearly every id, so its statistics
/// cannot). A filter is sized for a row group of distinct values and folded
/// down to what the row group holds when it closes.
const BLOOM_FILTER_COLUMNS: [&str; 2] = [AGGREGATE_ID, EVENT_ID];

/// False positive rate of those bloom filters.
const BLOOM_FILTER_FPP: f64 = 0.01;

pub fn writer_properties(zstd_level: i32, row_group_rows: usize) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(zstd_level).unwrap_or_default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_created_by("sediment".to_owned());
    for name in BLOOM_FILTER_COLUMNS {
        let column = ColumnPath::from(name);
        props = props
            .set_column_bloom_filter_enabled(column.clone(), true)
            .set_column_bloom_filter_fpp(column.clone(), BLOOM_FILTER_FPP)
            .set_column_bloom_filter_max_ndv(column, row_group_rows as u64);
    }
    props.build()
}

/// How large written files grow, in bytes as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSizes {
    /// A new file starts once one reaches this size.
    pub file_bytes: u64,
    /// A row group ends at `max_row_group_row_count` rows or once its
    /// columns take this much encoded, whichever comes first: the writer
    /// holds two row groups in memory (one fed, one finishing).
    pub row_group_bytes: usize,
}

/// Writes a stream of batches as files `name(part)` under `table_root`,
/// starting a new file once one reaches `sizes.file_bytes`.
///
/// Columns are encoded and compressed in parallel, a task per column fed
/// as batches arrive (as DataFusion's parallel Parquet sink does), while
/// the input is read on: the previous row group's columns finish while the
/// next one's are fed, and row groups are appended to the file in order.
pub async fn write_files(
    lake: &Lake,
    table_root: &str,
    schema: SchemaRef,
    input: impl Stream<Item = datafusion::error::Result<RecordBatch>> + Unpin,
    props: WriterProperties,
    sizes: FileSizes,
    name: impl Fn(usize) -> String,
) -> Result<WriteSummary, Error> {
    write(lake, table_root, schema, input, props, sizes, name, true).await
}

/// [`write_files`] of a copy of rows already tallied: the summary holds the
/// files, rows and bytes only.
pub async fn write_copy(
    lake: &Lake,
    table_root: &str,
    schema: SchemaRef,
    input: impl Stream<Item = datafusion::error::Result<RecordBatch>> + Unpin,
    props: WriterProperties,
    sizes: FileSizes,
    name: impl Fn(usize) -> String,
) -> Result<WriteSummary, Error> {
    write(lake, table_root, schema, input, props, sizes, name, false).await
}

#[allow(clippy::too_many_arguments)]
async fn write(
    lake: &Lake,
    table_root: &str,
    schema: SchemaRef,
    mut input: impl Stream<Item = datafusion::error::Result<RecordBatch>> + Unpin,
    props: WriterProperties,
    sizes: FileSizes,
    name: impl Fn(usize) -> String,
    tallied: bool,
) -> Result<WriteSummary, Error> {
    let mut summary = WriteSummary::default();
    let mut current: Option<OpenFile> = None;
    let props = Arc::new(props);
    let group_rows = props.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
    while let Some(batch) = input.next().await {
        let part = summary.files.len();
        let batch = batch.map_err(|source| Error::Input { key: format!("{table_root}/{}", name(part)), source })?;
        if batch.num_rows() == 0 {
            continue;
        }
        if tallied {
            tally(&batch, &mut summary);
        }
        if current.is_none() {
            current = Some(OpenFile::create(lake, table_root, name(part), &schema, &props)?);
        }
        let Some(file) = current.as_mut() else { continue };
        let mut offset = 0;
        while offset < batch.num_rows() {
            let take = (group_rows - file.group_rows).min(batch.num_rows() - offset);
            file.write(&batch.slice(offset, take)).await?;
            offset += take;
            if file.group_rows == group_rows || file.group_bytes() >= sizes.row_group_bytes {
                file.end_row_group().await?;
            }
        }
        if file.estimated_size() >= sizes.file_bytes
            && let Some(done) = current.take()
        {
            summary.add(done.finish().await?);
        }
    }
    if let Some(done) = current.take() {
        summary.add(done.finish().await?);
    }
    Ok(summary)
}

/// The `event_id` checksum, the (`event_type`, `aggregate_type`) counts and
/// the payload shapes per (`event_type`, `event_version`) of a batch, when
/// the schema has those columns. `event_type` and `aggregate_type` are
/// required columns: a null (never written) is simply not counted, and the
/// manifest then records no counts.
fn tally(batch: &RecordBatch, summary: &mut WriteSummary) {
    use sediment_lake::payload_schema::Shape;
    let strings = |name: &str| batch.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<StringArray>());
    if let Some(ids) = strings("event_id") {
        for i in 0..ids.len() {
            summary.checksum.add(ids.value(i));
        }
    }
    let Some(types) = strings("event_type") else { return };
    let aggregates = strings("aggregate_type");
    let versions = batch.column_by_name("event_version").and_then(|c| c.as_any().downcast_ref::<arrow::array::Int32Array>());
    let payloads = strings("payload").filter(|_| versions.is_some());
    let mut counts: std::collections::HashMap<(&str, &str), u64> = std::collections::HashMap::new();
    let mut shapes: std::collections::HashMap<(&str, i32), Shape> = std::collections::HashMap::new();
    for i in (0..types.len()).filter(|&i| types.is_valid(i)) {
        let event_type = types.value(i);
        if let Some(aggregates) = aggregates.filter(|a| a.is_valid(i)) {
            *counts.entry((event_type, aggregates.value(i))).or_default() += 1;
        }
        if let (Some(versions), Some(payloads)) = (versions.filter(|v| v.is_valid(i)), payloads) {
            let shape = if payloads.is_valid(i) { Shape::of_text(payloads.value(i)) } else { Shape::Null };
            shapes.entry((event_type, versions.value(i))).or_insert(Shape::Null).absorb(&shape);
        }
    }
    for ((t, a), n) in counts {
        *summary.counts.entry((t.to_owned(), a.to_owned())).or_default() += n;
    }
    for ((t, v), shape) in shapes {
        summary.shapes.entry((t.to_owned(), v)).or_insert(Shape::Null).absorb(&shape);
    }
}

impl WriteSummary {
    fn add(&mut self, file: WrittenFile) {
        self.rows += file.rows;
        self.bytes += file.size;
        self.files.push(file);
    }
}

/// Batches (their leaf columns) a column's task may have queued.
const COLUMN_QUEUE: usize = 4;

/// A row group whose columns are being encoded, a task per leaf column.
struct RowGroup {
    columns: Vec<(mpsc::Sender<ArrowLeafColumn>, JoinHandle<parquet::errors::Result<ArrowColumnChunk>>)>,
    /// The encoded size of its columns so far.
    estimated: Arc<AtomicUsize>,
}

impl RowGroup {
    fn start(factory: &ArrowRowGroupWriterFactory, index: usize) -> parquet::errors::Result<Self> {
        let estimated = Arc::new(AtomicUsize::new(0));
        let columns = factory
            .create_column_writers(index)?
            .into_iter()
            .map(|mut writer| {
                let (send, mut leaves) = mpsc::channel::<ArrowLeafColumn>(COLUMN_QUEUE);
                let estimated = Arc::clone(&estimated);
                let task = tokio::spawn(async move {
                    let mut counted = 0;
                    while let Some(leaf) = leaves.recv().await {
                        writer.write(&leaf)?;
                        let now = writer.get_estimated_total_bytes();
                        estimated.fetch_add(now.saturating_sub(counted), AtomicOrdering::Relaxed);
                        counted = counted.max(now);
                    }
                    writer.close()
                });
                (send, task)
            })
            .collect();
        Ok(Self { columns, estimated })
    }

    /// Hands each leaf of `batch` to its column's task.
    async fn write(&mut self, schema: &SchemaRef, batch: &RecordBatch) -> parquet::errors::Result<()> {
        let mut columns = self.columns.iter();
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            for leaf in compute_leaves(field, array)? {
                let Some((send, _)) = columns.next() else {
                    return Err(ParquetError::General("more leaf columns than column writers".into()));
                };
                if send.send(leaf).await.is_err() {
                    // The task ended early: its error is what closing reports.
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The encoded columns, once every task has finished.
    async fn close(self) -> parquet::errors::Result<Vec<ArrowColumnChunk>> {
        let mut chunks = Vec::with_capacity(self.columns.len());
        for (send, task) in self.columns {
            drop(send);
            chunks.push(task.await.map_err(|e| ParquetError::General(format!("column encoder: {e}")))??);
        }
        Ok(chunks)
    }
}

/// A file being written: row groups are encoded column-parallel and
/// appended in order; the bytes go to a multipart upload as each row group
/// is appended.
struct OpenFile {
    rel: String,
    key: String,
    schema: SchemaRef,
    writer: SerializedFileWriter<Vec<u8>>,
    factory: ArrowRowGroupWriterFactory,
    upload: BufWriter,
    /// The row group being fed, and the rows it holds.
    group: Option<RowGroup>,
    group_rows: usize,
    /// The previous row group, its columns finishing.
    closing: Option<RowGroup>,
    row_groups: usize,
    rows: u64,
}

impl OpenFile {
    fn create(lake: &Lake, table_root: &str, rel: String, schema: &SchemaRef, props: &Arc<WriterProperties>) -> Result<Self, Error> {
        let key = format!("{table_root}/{rel}");
        let parquet = |source| Error::Parquet { key: key.clone(), source };
        let parquet_schema = ArrowSchemaConverter::new().with_coerce_types(props.coerce_types()).convert(schema).map_err(parquet)?;
        let writer = SerializedFileWriter::new(Vec::new(), parquet_schema.root_schema_ptr(), Arc::clone(props)).map_err(parquet)?;
        let factory = ArrowRowGroupWriterFactory::new(&writer, Arc::clone(schema));
        let upload = BufWriter::new(lake.store(), Path::from(key.as_str()));
        Ok(Self {
            rel,
            key,
            schema: Arc::clone(schema),
            writer,
            factory,
            upload,
            group: None,
            group_rows: 0,
            closing: None,
            row_groups: 0,
            rows: 0,
        })
    }

    fn error(&self) -> impl Fn(ParquetError) -> Error + '_ {
        |source| Error::Parquet { key: self.key.clone(), source }
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        if self.group.is_none() {
            self.group = Some(RowGroup::start(&self.factory, self.row_groups).map_err(self.error())?);
            self.row_groups += 1;
        }
        let Some(group) = self.group.as_mut() else { return Ok(()) };
        let written = group.write(&self.schema, batch).await;
        written.map_err(self.error())?;
        self.group_rows += batch.num_rows();
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Stops feeding the current row group; it is appended once the next
    /// one ends (or the file), so its columns finish while input is read.
    async fn end_row_group(&mut self) -> Result<(), Error> {
        let Some(group) = self.group.take() else { return Ok(()) };
        self.group_rows = 0;
        self.append_closing().await?;
        self.closing = Some(group);
        Ok(())
    }

    async fn append_closing(&mut self) -> Result<(), Error> {
        let Some(group) = self.closing.take() else { return Ok(()) };
        let chunks = group.close().await.map_err(self.error())?;
        let appended = (|| {
            let mut row_group = self.writer.next_row_group()?;
            for chunk in chunks {
                chunk.append_to_row_group(&mut row_group)?;
            }
            row_group.close().map(drop)
        })();
        appended.map_err(self.error())?;
        self.upload_buffered().await
    }

    async fn upload_buffered(&mut self) -> Result<(), Error> {
        let bytes = std::mem::take(self.writer.inner_mut());
        if !bytes.is_empty() {
            let uploaded = self.upload.write(Bytes::from(bytes)).await;
            uploaded.map_err(self.error())?;
        }
        Ok(())
    }

    /// The encoded size of the row group being fed.
    fn group_bytes(&self) -> usize {
        self.group.as_ref().map_or(0, |g| g.estimated.load(AtomicOrdering::Relaxed))
    }

    /// Bytes appended so far plus the encoded size of the row groups in flight.
    fn estimated_size(&self) -> u64 {
        let in_flight =
            [&self.group, &self.closing].into_iter().flatten().map(|g| g.estimated.load(AtomicOrdering::Relaxed)).sum::<usize>();
        (self.writer.bytes_written() + in_flight) as u64
    }

    async fn finish(mut self) -> Result<WrittenFile, Error> {
        self.end_row_group().await?;
        self.append_closing().await?;
        let finished = self.writer.finish();
        finished.map_err(self.error())?;
        self.upload_buffered().await?;
        let completed = self.upload.complete().await;
        completed.map_err(self.error())?;
        // After finish: the count includes the footer.
        Ok(WrittenFile { path: self.rel, size: self.writer.bytes_written() as u64, rows: self.rows })
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::file::reader::FileReader;
    use parquet::file::serialized_reader::SerializedFileReader;

    use super::*;

    /// Row groups of a file written from `batches` batches of 1,000 rows
    /// under a row-group byte cap.
    async fn row_groups(lake: &Lake, batches: usize, row_group_bytes: usize) -> usize {
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
        let input: Vec<datafusion::error::Result<RecordBatch>> = (0..batches)
            .map(|b| {
                let values: Vec<String> = (0..1000).map(|i| format!("{b}-{i}-{}", "x".repeat(100))).collect();
                Ok(RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(StringArray::from(values))]).unwrap())
            })
            .collect();
        let sizes = FileSizes { file_bytes: u64::MAX, row_group_bytes };
        let summary = write_files(lake, "t", schema, futures::stream::iter(input), writer_properties(3, 1 << 20), sizes, |p| {
            format!("part-{row_group_bytes}-{p}.parquet")
        })
        .await
        .unwrap();
        assert_eq!(summary.rows, batches as u64 * 1000);
        let bytes = lake.get(&format!("t/{}", summary.files[0].path)).await.unwrap();
        SerializedFileReader::new(bytes).unwrap().metadata().num_row_groups()
    }

    /// A row group ends at its byte cap as well as at its row count (the
    /// encoded size is counted as the column tasks catch up).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn row_groups_end_at_their_byte_cap() {
        let lake = Lake::open("memory://write-row-group-bytes").unwrap();
        assert_eq!(row_groups(&lake, 40, usize::MAX).await, 1);
        assert!(row_groups(&lake, 40, 1).await > 1);
    }
}
