//! Schemas of the tables the engine reads and the compactor writes.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use sediment_lake::schema::{self as raw, raw_schema};

pub use sediment_trino::types::sql_timestamp;

/// Timestamps as Delta Lake stores them: UTC microseconds.
pub fn delta_timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn retype(schema: &Schema, ts: &DataType) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(..) => Field::new(f.name(), ts.clone(), f.is_nullable()),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

static CURATED: LazyLock<SchemaRef> = LazyLock::new(|| retype(&raw_schema(), &delta_timestamp()));
static EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let base = retype(&raw_schema(), &sql_timestamp());
    let mut fields: Vec<FieldRef> = base.fields().iter().cloned().collect();
    fields.push(Arc::new(dt_field()));
    // Query-facing columns are nullable, as in Trino: plans over the union of
    // curated and raw files do not preserve NOT NULL.
    Arc::new(Schema::new(fields.iter().map(|f| f.as_ref().clone().with_nullable(true)).collect::<Vec<_>>()))
});

/// Columns of a curated `events` data file (without the `dt` partition).
pub fn curated_events_file_schema() -> SchemaRef {
    Arc::clone(&CURATED)
}

/// The `dt` partition column.
pub fn dt_field() -> Field {
    Field::new(raw::DT, DataType::Date32, false)
}

/// The `events` table as queried: envelope, arrival columns, `dt`.
pub fn events_schema() -> SchemaRef {
    Arc::clone(&EVENTS)
}

static RESTATEMENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("table_name", DataType::Utf8, false),
        Field::new("snapshot_date", DataType::Date32, false),
        Field::new("aggregate_id", DataType::Utf8, true),
        Field::new("change", DataType::Utf8, false),
        Field::new("before", DataType::Utf8, true),
        Field::new("after", DataType::Utf8, true),
        Field::new("cause", DataType::Utf8, false),
        Field::new("late_event_ids", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), true),
        Field::new("run_id", DataType::Utf8, false),
        Field::new("previous_run_id", DataType::Utf8, false),
        Field::new("compacted_at", delta_timestamp(), false),
    ]))
});

/// Columns of a restatement file and of `sediment_restatements` (one row per
/// aggregate — or, for a view without `aggregate_id`, per row — whose
/// published value a rebuild added, removed or updated).
pub fn restatements_schema() -> SchemaRef {
    Arc::clone(&RESTATEMENTS)
}
