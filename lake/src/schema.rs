//! Arrow schema of the raw zone (one Parquet file per partition per batch).
//!
//! Timestamps are UTC milliseconds (`isAdjustedToUTC`, `TIMESTAMP_MILLIS` in
//! Parquet: what Athena reads as `timestamp(3)`). `dt` and `hour` live in the
//! object key (Hive partitioning), not in the file.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub const EVENT_ID: &str = "event_id";
pub const EVENT_TYPE: &str = "event_type";
pub const EVENT_VERSION: &str = "event_version";
pub const AGGREGATE_TYPE: &str = "aggregate_type";
pub const AGGREGATE_ID: &str = "aggregate_id";
pub const SEQUENCE: &str = "sequence";
pub const OCCURRED_AT: &str = "occurred_at";
pub const PAYLOAD: &str = "payload";
pub const METADATA: &str = "metadata";
pub const INGESTED_AT: &str = "ingested_at";
pub const SOURCE: &str = "source";
pub const SOURCE_POSITION: &str = "source_position";
pub const DT: &str = "dt";
pub const HOUR: &str = "hour";

/// UTC millisecond timestamps, as stored in raw files.
pub fn utc_millis() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

static RAW: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(EVENT_ID, DataType::Utf8, false),
        Field::new(EVENT_TYPE, DataType::Utf8, false),
        Field::new(EVENT_VERSION, DataType::Int32, false),
        Field::new(AGGREGATE_TYPE, DataType::Utf8, false),
        Field::new(AGGREGATE_ID, DataType::Utf8, false),
        Field::new(SEQUENCE, DataType::Int64, true),
        Field::new(OCCURRED_AT, utc_millis(), false),
        Field::new(PAYLOAD, DataType::Utf8, false),
        Field::new(METADATA, DataType::Utf8, true),
        Field::new(INGESTED_AT, utc_millis(), false),
        Field::new(SOURCE, DataType::Utf8, false),
        Field::new(SOURCE_POSITION, DataType::Utf8, false),
    ]))
});

/// The columns of a raw Parquet file.
pub fn raw_schema() -> SchemaRef {
    Arc::clone(&RAW)
}
