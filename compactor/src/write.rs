//! Streaming Parquet output into the lake, rolled over at a target size.
//!
//! Each file is a multipart upload that becomes visible whole when closed;
//! memory holds at most one row group per open file.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::datatypes::SchemaRef;
use futures::{Stream, StreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use sediment_lake::Lake;
use sediment_lake::manifest::IdChecksum;

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
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing {key}: {source}")]
    Parquet { key: String, source: parquet::errors::ParquetError },
    #[error("reading the input to write {key}: {source}")]
    Input { key: String, source: datafusion::error::DataFusionError },
}

pub fn writer_properties(zstd_level: i32, row_group_rows: usize) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(zstd_level).unwrap_or_default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_created_by("sediment".to_owned())
        .build()
}

/// Writes a stream of batches as files `name(part)` under `table_root`,
/// starting a new file once one reaches `target_bytes`.
pub async fn write_files(
    lake: &Lake,
    table_root: &str,
    schema: SchemaRef,
    mut input: impl Stream<Item = datafusion::error::Result<RecordBatch>> + Unpin,
    props: WriterProperties,
    target_bytes: u64,
    name: impl Fn(usize) -> String,
) -> Result<WriteSummary, Error> {
    let mut summary = WriteSummary::default();
    let mut current: Option<(AsyncArrowWriter<BufWriter>, String, u64)> = None;
    let store = lake.store();
    while let Some(batch) = input.next().await {
        let part = summary.files.len();
        let key_hint = format!("{table_root}/{}", name(part));
        let batch = batch.map_err(|source| Error::Input { key: key_hint.clone(), source })?;
        if batch.num_rows() == 0 {
            continue;
        }
        if let Some(ids) = batch.column_by_name("event_id").and_then(|c| c.as_any().downcast_ref::<StringArray>()) {
            for i in 0..ids.len() {
                summary.checksum.add(ids.value(i));
            }
        }
        if let (Some(types), Some(aggregates)) = (
            batch.column_by_name("event_type").and_then(|c| c.as_any().downcast_ref::<StringArray>()),
            batch.column_by_name("aggregate_type").and_then(|c| c.as_any().downcast_ref::<StringArray>()),
        ) {
            let mut here: std::collections::HashMap<(&str, &str), u64> = std::collections::HashMap::new();
            // Both are required columns; a null (never written) is simply
            // not counted, and the manifest then records no counts.
            for i in (0..types.len()).filter(|&i| types.is_valid(i) && aggregates.is_valid(i)) {
                *here.entry((types.value(i), aggregates.value(i))).or_default() += 1;
            }
            for ((t, a), n) in here {
                *summary.counts.entry((t.to_owned(), a.to_owned())).or_default() += n;
            }
        }
        if current.is_none() {
            let rel = name(part);
            let key = format!("{table_root}/{rel}");
            let w = BufWriter::new(Arc::clone(&store), Path::from(key.as_str()));
            let writer = AsyncArrowWriter::try_new(w, Arc::clone(&schema), Some(props.clone()))
                .map_err(|source| Error::Parquet { key: key.clone(), source })?;
            current = Some((writer, rel, 0));
        }
        let Some((writer, rel, rows)) = current.as_mut() else { continue };
        writer.write(&batch).await.map_err(|source| Error::Parquet { key: format!("{table_root}/{rel}"), source })?;
        *rows += batch.num_rows() as u64;
        if (writer.bytes_written() + writer.in_progress_size()) as u64 >= target_bytes
            && let Some(done) = current.take()
        {
            finish(done, table_root, &mut summary).await?;
        }
    }
    if let Some(done) = current.take() {
        finish(done, table_root, &mut summary).await?;
    }
    Ok(summary)
}

async fn finish(
    (writer, rel, rows): (AsyncArrowWriter<BufWriter>, String, u64),
    table_root: &str,
    summary: &mut WriteSummary,
) -> Result<(), Error> {
    let key = format!("{table_root}/{rel}");
    let mut writer = writer;
    writer.finish().await.map_err(|source| Error::Parquet { key, source })?;
    // After finish: the count includes the footer.
    let size = writer.bytes_written() as u64;
    summary.rows += rows;
    summary.bytes += size;
    summary.files.push(WrittenFile { path: rel, size, rows });
    Ok(())
}
