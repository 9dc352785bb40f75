//! Encoding a partition's events as a raw zstd Parquet file.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use sediment_lake::Envelope;
use sediment_lake::schema::{EVENT_ID, INGESTED_AT, METADATA, OCCURRED_AT, PAYLOAD, SOURCE_POSITION, raw_schema};

/// One row of a raw file: the event plus where and when it arrived.
pub(crate) struct Row<'a> {
    pub(crate) event: &'a Envelope,
    pub(crate) ingested_at_ms: i64,
    pub(crate) position: Position<'a>,
}

/// A record's `source_position`: the source's own text, or a line of an
/// NDJSON input (`<input>:<line>`, formatted only when the column is built).
#[derive(Clone, Copy)]
pub(crate) enum Position<'a> {
    Text(&'a str),
    Line(&'a str, u64),
}

/// Sort order of raw rows: (aggregate_type, aggregate_id, sequence), then
/// occurred_at and event_id so the order is total and the bytes deterministic.
pub(crate) fn sort_rows(rows: &mut [Row<'_>]) {
    rows.sort_by(|a, b| {
        let (x, y) = (a.event, b.event);
        (&x.aggregate_type, &x.aggregate_id, x.sequence, x.occurred_at_ms, &x.event_id).cmp(&(
            &y.aggregate_type,
            &y.aggregate_id,
            y.sequence,
            y.occurred_at_ms,
            &y.event_id,
        ))
    });
}

pub(crate) fn record_batch<'r>(rows: &'r [Row<'r>], source: &'r str) -> Result<RecordBatch, arrow::error::ArrowError> {
    let n = rows.len();
    fn text<'r>(rows: &'r [Row<'r>], f: impl Fn(&'r Row<'r>) -> &'r str) -> ArrayRef {
        let n = rows.len();
        let bytes = rows.iter().map(|r| f(r).len()).sum();
        let mut b = StringBuilder::with_capacity(n, bytes);
        for r in rows {
            b.append_value(f(r));
        }
        Arc::new(b.finish()) as ArrayRef
    }
    let mut version = Int32Builder::with_capacity(n);
    let mut sequence = Int64Builder::with_capacity(n);
    let mut occurred = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut ingested = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut metadata = StringBuilder::with_capacity(n, 0);
    for r in rows {
        version.append_value(r.event.event_version);
        sequence.append_option(r.event.sequence);
        occurred.append_value(r.event.occurred_at_ms);
        ingested.append_value(r.ingested_at_ms);
        metadata.append_option(r.event.metadata.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        text(rows, |r| &r.event.event_id),
        text(rows, |r| &r.event.event_type),
        Arc::new(version.finish()),
        text(rows, |r| &r.event.aggregate_type),
        text(rows, |r| &r.event.aggregate_id),
        Arc::new(sequence.finish()),
        Arc::new(occurred.finish()),
        text(rows, |r| &r.event.payload),
        Arc::new(metadata.finish()),
        Arc::new(ingested.finish()),
        text(rows, |_| source),
        positions(rows),
    ];
    RecordBatch::try_new(raw_schema(), columns)
}

fn positions(rows: &[Row<'_>]) -> ArrayRef {
    use std::fmt::Write as _;
    let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 24);
    for r in rows {
        match r.position {
            Position::Text(text) => b.append_value(text),
            Position::Line(input, line) => {
                // Writing into the builder cannot fail.
                let _ = write!(b, "{input}:{line}");
                b.append_value("");
            }
        }
    }
    Arc::new(b.finish())
}

pub(crate) fn writer_properties(zstd_level: i32) -> WriterProperties {
    let level = ZstdLevel::try_new(zstd_level).unwrap_or_default();
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(128 * 1024));
    // Columns whose values are (nearly) all distinct: a dictionary is
    // built, found too large and thrown away, page after page.
    for column in [EVENT_ID, OCCURRED_AT, PAYLOAD, METADATA, INGESTED_AT, SOURCE_POSITION] {
        props = props.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    // No query prunes on the JSON text's minimum and maximum.
    for column in [PAYLOAD, METADATA] {
        props = props.set_column_statistics_enabled(ColumnPath::from(column), EnabledStatistics::None);
    }
    props.set_created_by("sediment".to_owned()).build()
}

/// Encodes sorted rows as one Parquet file in memory.
pub(crate) fn encode(rows: &[Row<'_>], source: &str, zstd_level: i32) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let batch = record_batch(rows, source)?;
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() / 4);
    let mut writer = ArrowWriter::try_new(&mut buf, raw_schema(), Some(writer_properties(zstd_level)))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(buf)
}
