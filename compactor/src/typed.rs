//! The typed copies of a compacted day (ADR 0018): for each event type
//! whose payloads are objects, the day's rows without the payload, with a
//! column per top-level scalar payload field, typed as the typed tables
//! type it, so those tables read columns instead of parsing JSON. Written after the day's files and
//! before its manifest, which lists them: a reader finds them through the
//! day's current run like every other file of the day.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;
use chrono::NaiveDate;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use sediment_engine::files::{DataFile, FileListTable};
use sediment_engine::schema::curated_events_file_schema;
use sediment_engine::typed::{payload_arrays, typed_file_columns, typed_file_schema};
use sediment_lake::Lake;
use sediment_lake::manifest::{TypedFile, TypedFileColumn, TypedFiles};
use sediment_lake::paths::{EVENTS_TABLE, table_root, typed_file, typed_root};
use sediment_lake::payload_schema::Shape;
use sediment_lake::schema::{EVENT_TYPE, PAYLOAD};

use crate::write::{WriteSummary, write_copy, writer_properties};
use crate::{Error, Result, Settings};

/// A copy's payload columns, and the fields it leaves in the payload.
type CopyColumns = (Vec<TypedFileColumn>, Vec<String>);

/// One event type's way from the day's rows to its writer.
struct Route {
    members: Vec<(String, Shape)>,
    schema: SchemaRef,
    send: mpsc::Sender<datafusion::error::Result<RecordBatch>>,
    /// Why its copy is not written, once a payload did not fit its shape.
    misfit: Option<String>,
}

/// Writes the typed copies of the day `day` wrote (its files and payload
/// shapes), one pass over its files. A type whose payload does not fit the
/// day's own shape (which a shape inferred from the same rows always
/// holds) gets no copy, and its readers parse the payload.
pub(crate) async fn write_typed(lake: &Lake, settings: &Settings, dt: NaiveDate, run: &str, day: &WriteSummary) -> Result<Vec<TypedFiles>> {
    let mut shapes: BTreeMap<&str, Shape> = BTreeMap::new();
    for ((event_type, _), shape) in &day.shapes {
        shapes.entry(event_type.as_str()).or_insert(Shape::Null).absorb(shape);
    }
    let types: Vec<(String, CopyColumns)> =
        shapes.into_iter().filter_map(|(t, shape)| typed_file_columns(&shape).map(|columns| (t.to_owned(), columns))).collect();
    if types.is_empty() || day.files.is_empty() {
        return Ok(Vec::new());
    }
    let root = typed_root(EVENTS_TABLE);
    let props = writer_properties(settings.compaction.zstd_level, settings.compaction.row_group_rows);
    let mut sizes = settings.file_sizes();
    // Every type's writer holds its row groups at once.
    sizes.row_group_bytes = (sizes.row_group_bytes / types.len()).max(1 << 20);
    let mut routes: HashMap<String, Route> = HashMap::new();
    let mut writers = Vec::new();
    for (index, (event_type, (columns, _))) in types.iter().enumerate() {
        let schema = typed_file_schema(columns);
        let (send, receive) = mpsc::channel(2);
        let members = columns.iter().map(|c| (c.field.clone(), c.shape.clone())).collect();
        routes.insert(event_type.clone(), Route { members, schema: Arc::clone(&schema), send, misfit: None });
        writers.push(write_copy(lake, &root, schema, receive, props.clone(), sizes, move |part| typed_file(dt, run, index, part)));
    }
    let files: Vec<DataFile> = day
        .files
        .iter()
        .map(|f| DataFile {
            key: format!("{}/{}", table_root(EVENTS_TABLE), f.path),
            size: f.size,
            num_rows: Some(f.rows as usize),
            partition_values: vec![],
        })
        .collect();
    let ctx = settings.session(lake)?;
    let mut rows = ctx.read_table(Arc::new(FileListTable::new(curated_events_file_schema(), vec![], files)))?.execute_stream().await?;
    let route = async move {
        while let Some(batch) = rows.next().await {
            let batch = batch?;
            let types = batch.column_by_name(EVENT_TYPE).and_then(|c| c.as_string_opt::<i32>());
            let Some(types) = types else { return Err(Error::Internal("a curated file's event_type is not text".into())) };
            let mut by_type: HashMap<&str, Vec<u32>> = HashMap::new();
            for i in (0..batch.num_rows()).filter(|&i| types.is_valid(i)) {
                by_type.entry(types.value(i)).or_default().push(i as u32);
            }
            for (event_type, indices) in by_type {
                let Some(route) = routes.get_mut(event_type).filter(|r| r.misfit.is_none()) else { continue };
                let rows = take_record_batch(&batch, &UInt32Array::from(indices)).map_err(datafusion::error::DataFusionError::from)?;
                let payloads = rows.column_by_name(PAYLOAD).and_then(|c| c.as_string_opt::<i32>());
                let Some(payloads) = payloads else { return Err(Error::Internal("a curated file's payload is not text".into())) };
                match payload_arrays(&route.members, payloads) {
                    Ok(typed) => {
                        // Every column but the payload, which the copy does not repeat.
                        let mut columns: Vec<_> = rows
                            .schema()
                            .fields()
                            .iter()
                            .zip(rows.columns())
                            .filter(|(f, _)| f.name() != PAYLOAD)
                            .map(|(_, c)| Arc::clone(c))
                            .collect();
                        columns.extend(typed);
                        let out =
                            RecordBatch::try_new(Arc::clone(&route.schema), columns).map_err(datafusion::error::DataFusionError::from)?;
                        // A writer gone has failed: its error is the one reported.
                        if route.send.send(Ok(out)).await.is_err() {
                            return Ok(routes);
                        }
                    }
                    Err((member, e)) => {
                        tracing::warn!(%dt, event_type, member, error = %e, "no typed copy of the type: a payload does not fit the day's shape");
                        route.misfit = Some(format!("payload field {member:?}: {e}"));
                        route.send.close_channel();
                    }
                }
            }
        }
        routes.values_mut().for_each(|r| r.send.close_channel());
        Ok::<_, Error>(routes)
    };
    let (routes, written) = futures::join!(route, futures::future::join_all(writers));
    let routes = routes?;
    let mut copies = Vec::new();
    for ((event_type, (columns, parsed)), summary) in types.into_iter().zip(written) {
        let summary = summary?;
        let files = summary.files.iter().map(|f| TypedFile { key: format!("{root}/{}", f.path), size: f.size, rows: f.rows });
        if routes.get(&event_type).is_some_and(|r| r.misfit.is_some()) {
            for f in files {
                lake.delete(&f.key).await?;
            }
            continue;
        }
        copies.push(TypedFiles { event_type, columns, parsed, files: files.collect() });
    }
    Ok(copies)
}
