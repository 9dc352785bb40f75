//! Restatements: what a rebuild of a published derived day changed, and the
//! late events that caused it.
//!
//! When late events recompact an events day, every projection snapshot from
//! that day on and the view days of that day are rebuilt. Before the rebuilt
//! day is committed, its new files are compared with the published ones — by
//! `aggregate_id` where the table has one (updated, added, removed), else row
//! by row (added, removed) — and the differences are written to one Parquet
//! file per (table, day, run) under `_restatements/`. The day's manifest,
//! written before the commit that publishes the run, names it together with
//! the restatement files of the runs before (cumulative), so the current
//! manifests alone name every restatement that was ever published, and a
//! run that never committed names nothing (ADR 0014).
//!
//! The cause of a change is the late events of the same aggregate: the
//! events in raw files that events runs newer than the replaced derived run
//! added to the days it reads (projections: every day up to the snapshot's;
//! views: the day itself).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Date32Builder, ListBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, SchemaRef};
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sediment_engine::files::{DataFile, FileListTable};
use sediment_engine::schema::restatements_schema;
use sediment_engine::state::{CuratedDay, ManifestCache};
use sediment_lake::Lake;
use sediment_lake::manifest::ManifestV1;
use sediment_lake::paths::{EVENTS_TABLE, manifest_key};

use crate::{Error, Result};

fn arrow_error(e: arrow::error::ArrowError) -> Error {
    Error::Internal(format!("restatements: {e}"))
}

/// Most late event ids recorded per changed row.
pub const MAX_CAUSE_IDS: usize = 100;

/// One changed row of a derived day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub aggregate_id: Option<String>,
    /// `added`, `removed` or `updated`.
    pub change: &'static str,
    /// The row as published, as JSON.
    pub before: Option<String>,
    /// The row as rebuilt, as JSON.
    pub after: Option<String>,
}

/// A day's rows as `(aggregate_id, JSON text)`, from data files (lake keys
/// and sizes) of the given schema.
pub async fn rows(ctx: &SessionContext, schema: &SchemaRef, files: Vec<(String, u64)>) -> Result<Vec<(Option<String>, String)>> {
    let files = files.into_iter().map(|(key, size)| DataFile { key, size, num_rows: None, partition_values: vec![] }).collect();
    let table = FileListTable::new(Arc::clone(schema), vec![], files);
    let key_col = schema.index_of("aggregate_id").ok();
    let mut stream = ctx.read_table(Arc::new(table))?.execute_stream().await?;
    let mut out = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
        writer.write(&batch).map_err(|e| Error::Internal(format!("rendering a row as JSON: {e}")))?;
        writer.finish().map_err(|e| Error::Internal(format!("rendering a row as JSON: {e}")))?;
        let text = String::from_utf8(writer.into_inner()).map_err(|e| Error::Internal(e.to_string()))?;
        let keys: Option<ArrayRef> =
            key_col.map(|i| arrow::compute::cast(batch.column(i), &DataType::Utf8)).transpose().map_err(arrow_error)?;
        for (i, line) in text.lines().enumerate() {
            let key = keys.as_ref().and_then(|k| {
                let k = k.as_string::<i32>();
                (!k.is_null(i)).then(|| k.value(i).to_owned())
            });
            out.push((key, line.to_owned()));
        }
    }
    Ok(out)
}

/// The changes from `old` to `new`: by key when `keyed`, else as multisets
/// of rows.
pub fn diff(old: Vec<(Option<String>, String)>, new: Vec<(Option<String>, String)>, keyed: bool) -> Vec<Change> {
    let mut out = Vec::new();
    if keyed {
        let old: BTreeMap<Option<String>, String> = old.into_iter().collect();
        let mut new: BTreeMap<Option<String>, String> = new.into_iter().collect();
        for (k, before) in old {
            match new.remove(&k) {
                Some(after) if after == before => {}
                Some(after) => out.push(Change { aggregate_id: k, change: "updated", before: Some(before), after: Some(after) }),
                None => out.push(Change { aggregate_id: k, change: "removed", before: Some(before), after: None }),
            }
        }
        out.extend(new.into_iter().map(|(k, after)| Change { aggregate_id: k, change: "added", before: None, after: Some(after) }));
        out.sort_by(|a, b| a.aggregate_id.cmp(&b.aggregate_id));
        return out;
    }
    let mut counts: BTreeMap<String, (Option<String>, i64)> = BTreeMap::new();
    for (k, row) in old {
        counts.entry(row).or_insert((k, 0)).1 -= 1;
    }
    for (k, row) in new {
        counts.entry(row).or_insert((k, 0)).1 += 1;
    }
    for (row, (k, n)) in counts {
        for _ in 0..n.unsigned_abs() {
            out.push(if n < 0 {
                Change { aggregate_id: k.clone(), change: "removed", before: Some(row.clone()), after: None }
            } else {
                Change { aggregate_id: k.clone(), change: "added", before: None, after: Some(row.clone()) }
            });
        }
    }
    out
}

/// A late event: `(event_id, aggregate_type, aggregate_id)`.
type Late = (String, String, String);

/// Finds late events: raw files added to events days by runs newer than a
/// given instant, read once per build.
#[derive(Debug, Default)]
pub struct LateEvents {
    /// Events manifests, read once (the engine's cache of them).
    manifests: ManifestCache,
    files: HashMap<String, Arc<Vec<Late>>>,
}

impl LateEvents {
    async fn manifest(&self, lake: &Lake, dt: NaiveDate, run: &str) -> Result<Option<Arc<ManifestV1>>> {
        Ok(self.manifests.get(lake, &manifest_key(EVENTS_TABLE, dt, run)).await?)
    }

    /// Raw files the events runs of `day` newer than `since` added. A
    /// replaced run's manifest that vacuum deleted ends the walk.
    async fn added_since(&mut self, lake: &Lake, day: &CuratedDay, since: DateTime<Utc>) -> Result<BTreeSet<String>> {
        let mut added = BTreeSet::new();
        let mut m = Arc::clone(&day.manifest);
        while m.created_at > since {
            let previous = match &m.previous_run_id {
                Some(run) => match self.manifest(lake, m.dt, run).await? {
                    Some(p) => Some(p),
                    None => break,
                },
                None => None,
            };
            let before: BTreeSet<&String> = previous.as_ref().map(|p| p.raw_files.iter().collect()).unwrap_or_default();
            added.extend(m.raw_files.iter().filter(|k| !before.contains(k)).cloned());
            match previous {
                Some(p) => m = p,
                None => break,
            }
        }
        Ok(added)
    }

    async fn events_of(&mut self, lake: &Lake, key: &str) -> Result<Arc<Vec<Late>>> {
        if let Some(e) = self.files.get(key) {
            return Ok(Arc::clone(e));
        }
        // Vacuum may have deleted a covered raw file: its events are then
        // not named as causes (the change is still recorded).
        let mut out = Vec::new();
        if let Some(bytes) = lake.get_opt(key).await? {
            let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| Error::Internal(format!("{key}: {e}")))?;
            let schema = builder.schema().clone();
            let wanted: Vec<usize> =
                ["event_id", "aggregate_type", "aggregate_id"].iter().filter_map(|c| schema.index_of(c).ok()).collect();
            if wanted.len() == 3 {
                let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
                for batch in builder.with_projection(mask).build().map_err(|e| Error::Internal(format!("{key}: {e}")))? {
                    let batch = batch.map_err(|e| Error::Internal(format!("{key}: {e}")))?;
                    let text = |i: usize| arrow::compute::cast(batch.column(i), &DataType::Utf8).map_err(arrow_error);
                    let (ids, types, aggs) = (text(0)?, text(1)?, text(2)?);
                    let (ids, types, aggs) = (ids.as_string::<i32>(), types.as_string::<i32>(), aggs.as_string::<i32>());
                    for i in 0..batch.num_rows() {
                        out.push((ids.value(i).to_owned(), types.value(i).to_owned(), aggs.value(i).to_owned()));
                    }
                }
            }
        }
        let out = Arc::new(out);
        self.files.insert(key.to_owned(), Arc::clone(&out));
        Ok(out)
    }

    /// Late events of `days` since `since`, of `aggregate_type` if given,
    /// by aggregate id, with the days that had any.
    pub async fn by_aggregate(
        &mut self,
        lake: &Lake,
        days: &[&CuratedDay],
        since: DateTime<Utc>,
        aggregate_type: Option<&str>,
    ) -> Result<(BTreeMap<String, Vec<String>>, BTreeSet<NaiveDate>)> {
        let mut by_agg: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut recompacted = BTreeSet::new();
        for day in days {
            let added = self.added_since(lake, day, since).await?;
            if day.manifest.created_at > since {
                recompacted.insert(day.manifest.dt);
            }
            for key in added {
                for (id, ty, agg) in self.events_of(lake, &key).await?.iter() {
                    if aggregate_type.is_none_or(|t| t == ty) {
                        by_agg.entry(agg.clone()).or_default().push(id.clone());
                    }
                }
            }
        }
        for ids in by_agg.values_mut() {
            ids.sort();
            ids.dedup();
        }
        Ok((by_agg, recompacted))
    }
}

/// The restatement rows of one rebuilt day.
#[allow(clippy::too_many_arguments)]
pub fn batch(
    table: &str,
    dt: NaiveDate,
    changes: &[Change],
    late: &BTreeMap<String, Vec<String>>,
    recompacted: &BTreeSet<NaiveDate>,
    run_id: &str,
    previous_run_id: &str,
    at: DateTime<Utc>,
) -> Result<RecordBatch> {
    let n = changes.len();
    let mut names = StringBuilder::new();
    let mut dates = Date32Builder::with_capacity(n);
    let mut aggs = StringBuilder::new();
    let mut kinds = StringBuilder::new();
    let mut befores = StringBuilder::new();
    let mut afters = StringBuilder::new();
    let mut causes = StringBuilder::new();
    let mut ids = ListBuilder::new(StringBuilder::new());
    let mut runs = StringBuilder::new();
    let mut previous = StringBuilder::new();
    let mut ats = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let days = recompacted.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
    let all_late: Vec<&String> = late.values().flatten().collect();
    for c in changes {
        names.append_value(table);
        dates.append_value(sediment_engine::events::date32(dt));
        aggs.append_option(c.aggregate_id.as_deref());
        kinds.append_value(c.change);
        befores.append_option(c.before.as_deref());
        afters.append_option(c.after.as_deref());
        // Keyed rows: the aggregate's own late events; rows of a view
        // without aggregate ids: every late event of the day.
        let own: Vec<&String> = match &c.aggregate_id {
            Some(k) => late.get(k).map(|v| v.iter().collect()).unwrap_or_default(),
            None => all_late.clone(),
        };
        let cause = match (own.len(), days.is_empty()) {
            (0, true) => "rebuilt with no late events (--rebuild)".to_owned(),
            (0, false) => format!("events of {days} recompacted"),
            (k, _) => format!("{k} late event(s) of {days}"),
        };
        causes.append_value(cause);
        for id in own.iter().take(MAX_CAUSE_IDS) {
            ids.values().append_value(id);
        }
        ids.append(true);
        runs.append_value(run_id);
        previous.append_value(previous_run_id);
        ats.append_value(at.timestamp_micros());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(names.finish()),
        Arc::new(dates.finish()),
        Arc::new(aggs.finish()),
        Arc::new(kinds.finish()),
        Arc::new(befores.finish()),
        Arc::new(afters.finish()),
        Arc::new(causes.finish()),
        Arc::new(ids.finish()),
        Arc::new(runs.finish()),
        Arc::new(previous.finish()),
        Arc::new(ats.finish()),
    ];
    RecordBatch::try_new(restatements_schema(), columns).map_err(arrow_error)
}

/// The batch as one zstd Parquet file.
pub fn encode(batch: &RecordBatch) -> Result<bytes::Bytes> {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))
        .map_err(|e| Error::Internal(format!("encoding restatements: {e}")))?;
    writer.write(batch).map_err(|e| Error::Internal(format!("encoding restatements: {e}")))?;
    let bytes = writer.into_inner().map_err(|e| Error::Internal(format!("encoding restatements: {e}")))?;
    Ok(bytes.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(k: Option<&str>, v: &str) -> (Option<String>, String) {
        (k.map(str::to_owned), v.to_owned())
    }

    #[test]
    fn keyed_diff_finds_added_removed_updated() {
        let old = vec![row(Some("a"), "{\"x\":1}"), row(Some("b"), "{\"x\":2}"), row(Some("c"), "{\"x\":3}")];
        let new = vec![row(Some("a"), "{\"x\":1}"), row(Some("b"), "{\"x\":5}"), row(Some("d"), "{\"x\":4}")];
        let d = diff(old, new, true);
        let kinds: Vec<(Option<&str>, &str)> = d.iter().map(|c| (c.aggregate_id.as_deref(), c.change)).collect();
        assert_eq!(kinds, vec![(Some("b"), "updated"), (Some("c"), "removed"), (Some("d"), "added")]);
        assert_eq!(d[0].before.as_deref(), Some("{\"x\":2}"));
        assert_eq!(d[0].after.as_deref(), Some("{\"x\":5}"));
    }

    #[test]
    fn unkeyed_diff_is_a_multiset_difference() {
        let old = vec![row(None, "r1"), row(None, "r1"), row(None, "r2")];
        let new = vec![row(None, "r1"), row(None, "r3"), row(None, "r2")];
        let d = diff(old, new, false);
        let kinds: Vec<(&str, Option<&str>, Option<&str>)> =
            d.iter().map(|c| (c.change, c.before.as_deref(), c.after.as_deref())).collect();
        assert_eq!(kinds, vec![("removed", Some("r1"), None), ("added", None, Some("r3"))]);
        assert!(diff(vec![row(None, "x")], vec![row(None, "x")], false).is_empty());
    }

    #[test]
    fn rows_name_their_own_late_events() {
        let changes = vec![
            Change { aggregate_id: Some("a".into()), change: "updated", before: Some("{}".into()), after: Some("{}".into()) },
            Change { aggregate_id: Some("b".into()), change: "added", before: None, after: Some("{}".into()) },
        ];
        let late: BTreeMap<String, Vec<String>> = [("a".to_owned(), vec!["e1".to_owned(), "e2".to_owned()])].into();
        let days: BTreeSet<NaiveDate> = ["2026-09-02".parse().unwrap()].into();
        let b = batch("orders", "2026-09-03".parse().unwrap(), &changes, &late, &days, "r2", "r1", Utc::now()).unwrap();
        assert_eq!(b.num_rows(), 2);
        let cause = b.column(6).as_string::<i32>();
        assert_eq!(cause.value(0), "2 late event(s) of 2026-09-02");
        assert_eq!(cause.value(1), "events of 2026-09-02 recompacted");
        let ids = b.column(7).as_list::<i32>();
        assert_eq!(ids.value(0).len(), 2);
        assert_eq!(ids.value(1).len(), 0);
        assert!(encode(&b).unwrap().len() > 100);
    }
}
