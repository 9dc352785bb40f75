//! The `events` table: curated days plus uncovered raw files, exactly once.
//!
//! Resolved afresh at every scan, so new data shows in the next query
//! without a restart. Partition filters on `dt` prune both parts before any
//! listing of a day's raw files.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, Date32Array, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use chrono::NaiveDate;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, JoinType, Result, ScalarValue};
use datafusion::datasource::{TableType, provider_as_source};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, TableProviderFilterPushDown, cast, col, lit};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use sediment_lake::Lake;
use sediment_lake::schema::{DT, EVENT_ID, INGESTED_AT, SOURCE_POSITION, raw_schema};

use crate::files::{DataFile, FileListTable};
use crate::schema::{curated_events_file_schema, dt_field, events_schema};
use crate::state::{CuratedDay, EventsState, ManifestCache, load_events};

/// Days since the epoch of a date, as Arrow's Date32.
pub fn date32(d: NaiveDate) -> i32 {
    (d - NaiveDate::default()).num_days() as i32
}

/// The `events` table provider.
#[derive(Debug)]
pub struct EventsTable {
    pub(crate) lake: Lake,
    pub(crate) manifests: Arc<ManifestCache>,
}

impl EventsTable {
    pub fn new(lake: Lake, manifests: Arc<ManifestCache>) -> Self {
        Self { lake, manifests }
    }
}

/// `Exact` for the filters on `partition` alone, which a lake table answers
/// itself (pruned days, or applied in its plan), `Inexact` for the rest:
/// those stay above the scan and reach the Parquet scans from there.
pub(crate) fn pushdown_by_partition(filters: &[&Expr], partition: &str) -> Vec<TableProviderFilterPushDown> {
    filters
        .iter()
        .map(|f| if only_references(f, partition) { TableProviderFilterPushDown::Exact } else { TableProviderFilterPushDown::Inexact })
        .collect()
}

/// The filters on `partition` alone, and whether they are all of them (a
/// limit may only be applied below the scan then).
pub(crate) fn exact_filters(filters: &[Expr], partition: &str) -> (Vec<Expr>, bool) {
    let exact: Vec<Expr> = filters.iter().filter(|f| only_references(f, partition)).cloned().collect();
    let all = exact.len() == filters.len();
    (exact, all)
}

/// An empty scan of `schema`'s projection.
pub(crate) fn empty(schema: &SchemaRef, projection: Option<&Vec<usize>>) -> Result<Arc<dyn ExecutionPlan>> {
    let projected = match projection {
        Some(p) => Arc::new(schema.project(p)?),
        None => Arc::clone(schema),
    };
    Ok(Arc::new(EmptyExec::new(projected)))
}

/// A provider's plan finished as its scan: the exact filters (the others
/// stay above the scan; applying them here too would evaluate each twice),
/// the projection, and the limit when every filter was exact.
pub(crate) fn finish_scan(
    mut plan: LogicalPlanBuilder,
    schema: &Schema,
    filters: &[Expr],
    partition: &str,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
) -> Result<LogicalPlan> {
    let (exact, all) = exact_filters(filters, partition);
    if let Some(predicate) = conjunction(exact) {
        plan = plan.filter(predicate)?;
    }
    if let Some(p) = projection {
        plan = plan.project(p.iter().map(|&i| col(schema.field(i).name())).collect::<Vec<_>>())?;
    }
    if let Some(n) = limit.filter(|_| all) {
        plan = plan.limit(0, Some(n))?;
    }
    plan.build()
}

/// The `events` state for the days `filters` keep.
pub(crate) async fn load_for_scan(table: &EventsTable, session: &dyn Session, filters: &[Expr]) -> Result<EventsState> {
    let keep = day_filter(session, filters);
    load_events(&table.lake, &table.manifests, &keep).await.map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
}

/// True for filters that reference only `column`.
pub fn only_references(expr: &Expr, column: &str) -> bool {
    let cols = expr.column_refs();
    !cols.is_empty() && cols.iter().all(|c| c.name == column)
}

/// Keeps the days `filters` accept (evaluating per call, for state loading).
pub(crate) fn day_filter(state: &dyn Session, filters: &[Expr]) -> impl Fn(NaiveDate) -> bool + Send + Sync {
    let filters: Vec<Expr> = filters.iter().filter(|f| only_references(f, DT)).cloned().collect();
    // Evaluate over a wide span once: every date a lake can hold is in 1900..=9999,
    // but only days that exist matter; evaluating lazily per date is simplest.
    let cache = std::sync::Mutex::new(std::collections::HashMap::<NaiveDate, bool>::new());
    let props = state.execution_props().clone();
    move |d: NaiveDate| {
        if filters.is_empty() {
            return true;
        }
        let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry(d).or_insert_with(|| eval_day(&props, &filters, d))
    }
}

fn eval_day(props: &datafusion::execution::context::ExecutionProps, filters: &[Expr], d: NaiveDate) -> bool {
    let Some(predicate) = conjunction(filters.to_vec()) else { return true };
    let schema = Arc::new(Schema::new(vec![dt_field()]));
    let Ok(df_schema) = DFSchema::try_from(Arc::clone(&schema)) else { return true };
    let Ok(physical) = datafusion::physical_expr::create_physical_expr(&predicate, &df_schema, props, &Default::default()) else {
        return true;
    };
    let Ok(batch) = RecordBatch::try_new(schema, vec![Arc::new(Date32Array::from(vec![date32(d)]))]) else { return true };
    match physical.evaluate(&batch).and_then(|v| v.into_array(1)) {
        Ok(a) => a.as_any().downcast_ref::<arrow::array::BooleanArray>().is_none_or(|m| m.is_valid(0) && m.value(0)),
        Err(_) => true,
    }
}

/// Output columns with the curated/raw physical types cast to the query types.
fn typed_columns() -> Vec<Expr> {
    events_schema().fields().iter().map(|f| cast(col(f.name()), f.data_type().clone()).alias(f.name())).collect()
}

fn curated_files(state: &EventsState, keep: &dyn Fn(NaiveDate) -> bool) -> Vec<DataFile> {
    state
        .curated
        .iter()
        .filter(|(dt, _)| keep(**dt))
        .flat_map(|(dt, day)| {
            day.files.iter().map(move |f| DataFile {
                key: CuratedDay::key_of(f),
                size: f.size,
                num_rows: f.num_records,
                partition_values: vec![ScalarValue::Date32(Some(date32(*dt)))],
            })
        })
        .collect()
}

/// The logical plan of `events` for one state: curated ∪ deduplicated uncovered raw.
pub fn events_plan(state: &EventsState) -> Result<LogicalPlan> {
    match events_plan_of(state, &|_| true)? {
        Some(plan) => Ok(plan),
        None => curated_plan(state, &|_| true)?.project(typed_columns())?.build(),
    }
}

/// [`events_plan`] with only the curated days `keep` accepts (the raw
/// files are all there, deduplicated against every curated day); `None`
/// when nothing is left.
pub fn events_plan_of(state: &EventsState, keep: &dyn Fn(NaiveDate) -> bool) -> Result<Option<LogicalPlan>> {
    let any_curated = state.curated.keys().any(|d| keep(*d));
    let curated = || -> Result<LogicalPlanBuilder> { curated_plan(state, keep)?.project(typed_columns()) };
    Ok(match (raw_plan(state)?, any_curated) {
        (None, false) => None,
        (None, true) => Some(curated()?.build()?),
        (Some(raw), false) => Some(raw.build()?),
        (Some(raw), true) => Some(curated()?.union(raw.build()?)?.build()?),
    })
}

/// The curated days' files `keep` accepts, in the file schema plus `dt`.
fn curated_plan(state: &EventsState, keep: &dyn Fn(NaiveDate) -> bool) -> Result<LogicalPlanBuilder> {
    let curated = FileListTable::new(curated_events_file_schema(), vec![Arc::new(dt_field())], curated_files(state, keep));
    LogicalPlanBuilder::scan("curated", provider_as_source(Arc::new(curated)), None)
}

/// The events of the uncovered raw files (typed, each `event_id` once per
/// day, none already in a curated day); `None` when there are none.
pub fn raw_plan(state: &EventsState) -> Result<Option<LogicalPlanBuilder>> {
    let uncovered = state.uncovered();
    if uncovered.is_empty() {
        return Ok(None);
    }
    let raw_files: Vec<DataFile> = uncovered
        .iter()
        .flat_map(|(dt, objects)| {
            objects.iter().map(move |o| DataFile {
                key: o.key.clone(),
                size: o.size,
                num_rows: None,
                partition_values: vec![ScalarValue::Date32(Some(date32(*dt)))],
            })
        })
        .collect();
    let raw = FileListTable::new(raw_schema(), vec![Arc::new(dt_field())], raw_files);
    // The first copy of each event by arrival wins, as in compaction.
    let mut raw_plan = LogicalPlanBuilder::scan("raw", provider_as_source(Arc::new(raw)), None)?.project(typed_columns())?.distinct_on(
        vec![col(DT), col(EVENT_ID)],
        events_schema().fields().iter().map(|f| col(f.name())).collect(),
        Some(vec![
            col(DT).sort(true, false),
            col(EVENT_ID).sort(true, false),
            col(INGESTED_AT).sort(true, false),
            col(SOURCE_POSITION).sort(true, false),
        ]),
    )?;
    // Late raw files of an already-curated day may repeat curated events.
    let overlap: BTreeSet<NaiveDate> = uncovered.keys().filter(|d| state.curated.contains_key(d)).copied().collect();
    if !overlap.is_empty() {
        let days: Vec<Expr> = overlap.iter().map(|d| lit(ScalarValue::Date32(Some(date32(*d))))).collect();
        let seen = curated_plan(state, &|d| overlap.contains(&d))?
            .filter(col(DT).in_list(days, false))?
            .project(vec![col(DT).alias("c_dt"), col(EVENT_ID).alias("c_event_id")])?
            .build()?;
        raw_plan = raw_plan.join(seen, JoinType::LeftAnti, (vec![DT, EVENT_ID], vec!["c_dt", "c_event_id"]), None)?;
    }
    Ok(Some(raw_plan))
}

#[async_trait]
impl TableProvider for EventsTable {
    fn schema(&self) -> SchemaRef {
        events_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(pushdown_by_partition(filters, DT))
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = load_for_scan(self, session, filters).await?;
        if state.curated.is_empty() && state.raw.is_empty() {
            return empty(&events_schema(), projection);
        }
        let plan = finish_scan(LogicalPlanBuilder::from(events_plan(&state)?), &events_schema(), filters, DT, projection, limit)?;
        session.create_physical_plan(&plan).await
    }
}
