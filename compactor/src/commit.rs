//! Replacing one partition of a Delta table in one transaction.
//!
//! Concurrency: commits are optimistic with no automatic retry. If another
//! writer committed since our snapshot, the commit fails with
//! [`Error::Conflict`] and the caller re-plans from fresh state (which may
//! find nothing left to do). The Delta log's conditional create of
//! `_delta_log/<version>.json` is what makes exactly one writer win.

use std::collections::HashMap;

use arrow::datatypes::{Field, Schema, SchemaRef};
use chrono::NaiveDate;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Add, Remove};
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableError};
use sediment_engine::delta::{self, SnapshotFile, kernel_schema};
use sediment_lake::Lake;

use crate::write::WrittenFile;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("another compaction committed to {table} first; re-plan and retry")]
    Conflict { table: String },
    #[error("Delta table {table}: {source}")]
    Delta { table: String, source: DeltaTableError },
    #[error(transparent)]
    Open(#[from] delta::Error),
}

fn is_conflict(e: &DeltaTableError) -> bool {
    matches!(e, DeltaTableError::VersionAlreadyExists(_))
        || matches!(e, DeltaTableError::Transaction { .. })
        || e.to_string().contains("ersion already exists")
        || e.to_string().contains("max commit attempts")
        || e.to_string().contains("Max commit attempts")
}

/// Opens `name`, creating it (empty, partitioned by `partition_col` of type
/// date) if it does not exist yet.
pub async fn open_or_create(lake: &Lake, name: &str, file_schema: &SchemaRef, partition_col: &str) -> Result<DeltaTable, Error> {
    if let Some(t) = delta::open(lake, name).await? {
        return Ok(t);
    }
    let mut fields: Vec<Field> = file_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(partition_col, arrow::datatypes::DataType::Date32, false));
    let full = std::sync::Arc::new(Schema::new(fields));
    let err = |source| Error::Delta { table: name.to_owned(), source };
    let kernel = kernel_schema(&full).map_err(err)?;
    let handle = delta::table_handle(lake, name)?;
    let created = CreateBuilder::new()
        .with_log_store(handle.log_store())
        .with_table_name(name)
        .with_columns(kernel.fields().cloned())
        .with_partition_columns([partition_col])
        .with_save_mode(SaveMode::ErrorIfExists)
        .await;
    match created {
        Ok(t) => Ok(t),
        // Another writer created it first: use theirs.
        Err(_) => delta::open(lake, name).await?.ok_or_else(|| Error::Conflict { table: name.to_owned() }),
    }
}

/// Delta file statistics: row count, enough for planners and `status`.
fn stats(rows: u64) -> String {
    serde_json::json!({"numRecords": rows}).to_string()
}

/// Replaces partition `col = day` of `table` with `files`, in one commit.
pub async fn replace_partition(
    table: &DeltaTable,
    name: &str,
    col: &str,
    day: NaiveDate,
    current: &[SnapshotFile],
    files: &[WrittenFile],
) -> Result<i64, Error> {
    let now = chrono::Utc::now().timestamp_millis();
    let value = day.to_string();
    let pv: HashMap<String, Option<String>> = HashMap::from([(col.to_owned(), Some(value.clone()))]);
    let mut actions = Vec::with_capacity(current.len() + files.len());
    for f in current {
        actions.push(Action::Remove(Remove {
            path: f.path.clone(),
            data_change: true,
            deletion_timestamp: Some(now),
            extended_file_metadata: Some(true),
            partition_values: Some(f.partition_values.clone()),
            size: Some(f.size as i64),
            ..Default::default()
        }));
    }
    for f in files {
        actions.push(Action::Add(Add {
            path: f.path.clone(),
            partition_values: pv.clone(),
            size: f.size as i64,
            modification_time: now,
            data_change: true,
            stats: Some(stats(f.rows)),
            ..Default::default()
        }));
    }
    let err = |source| Error::Delta { table: name.to_owned(), source };
    let snapshot = table.snapshot().map_err(err)?;
    let op = DeltaOperation::Write {
        mode: SaveMode::Overwrite,
        partition_by: Some(vec![col.to_owned()]),
        predicate: Some(format!("{col} = '{value}'")),
    };
    match CommitBuilder::default().with_actions(actions).with_max_retries(0).build(Some(snapshot), table.log_store(), op).await {
        Ok(done) => Ok(done.version() as i64),
        Err(e) if is_conflict(&e) => Err(Error::Conflict { table: name.to_owned() }),
        Err(e) => Err(err(e)),
    }
}
