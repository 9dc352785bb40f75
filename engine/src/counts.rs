//! Counts of `events` answered from the coverage manifests.
//!
//! The compactor records, in each curated day's manifest, the day's rows by
//! `(event_type, aggregate_type)` (exact). A query that only counts rows —
//! `count(*)` grouped by any of `dt`, `event_type`, `aggregate_type`, with
//! filters on those columns only — needs no curated file: an optimizer rule
//! ([`CountsFromManifests`]) replaces the aggregate over `events` by a sum
//! over [`EventCounts`], whose scan loads one state of the table and yields
//!
//! ```text
//!  curated days: one row per (dt, event_type, aggregate_type) from manifests
//!  ∪ uncovered raw files: count(*) GROUP BY dt, event_type, aggregate_type
//!    (deduplicated exactly as `events` deduplicates them)
//! ```
//!
//! The state is the one `events` itself would use (raw listed first, Delta
//! snapshot after, ADR 0002), so the counts are those of `events` at that
//! instant. A curated day whose manifest predates the counts makes the
//! scan count from the files instead, and the rule stands aside while the
//! manifest cache knows of such a day (so `count(*)` alone keeps the Delta
//! log's row counts).

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result};
use datafusion::datasource::{MemTable, TableType, provider_as_source, source_as_provider};
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, TableProviderFilterPushDown, col, lit};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use sediment_lake::schema::{AGGREGATE_TYPE, DT, EVENT_TYPE};

use crate::events::{EventsTable, date32, events_plan, finish_scan, load_for_scan, pushdown_by_partition, raw_plan};
use crate::schema::events_schema;
use crate::state::EventsState;

/// The count column of [`EventCounts`].
pub const ROWS: &str = "__rows";

/// The columns counts are kept by.
const COUNTED: [&str; 3] = [DT, EVENT_TYPE, AGGREGATE_TYPE];

/// The counted columns as `events` has them, and the count (non-null, as
/// `count(*)` is): every branch of the scan has this schema exactly.
fn counts_schema() -> SchemaRef {
    let events = events_schema();
    let mut fields: Vec<Field> =
        COUNTED.iter().map(|c| events.field_with_name(c).cloned().unwrap_or_else(|_| Field::new(*c, DataType::Utf8, true))).collect();
    fields.push(Field::new(ROWS, DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

/// `events` counted by `(dt, event_type, aggregate_type)`.
#[derive(Debug)]
pub struct EventCounts {
    /// The `events` table counted (its lake and caches).
    events: EventsTable,
}

/// Whether an expression references only the counted columns.
fn counted_only(e: &Expr) -> bool {
    e.column_refs().iter().all(|c| COUNTED.contains(&c.name.as_str()))
}

/// The counts of one state: from manifests where every curated day has
/// them, else from the files.
fn counts_plan(state: &EventsState) -> Result<LogicalPlan> {
    let group = || COUNTED.iter().map(|c| col(*c)).collect::<Vec<_>>();
    let counted = || vec![count(lit(1)).alias(ROWS)];
    if state.curated.values().any(|d| d.manifest.counts.is_none()) {
        return LogicalPlanBuilder::from(events_plan(state)?).aggregate(group(), counted())?.build();
    }
    let (mut days, mut types, mut aggregates, mut rows) = (vec![], vec![], vec![], vec![]);
    for (dt, day) in &state.curated {
        for c in day.manifest.counts.iter().flatten() {
            days.push(date32(*dt));
            types.push(c.event_type.clone());
            aggregates.push(c.aggregate_type.clone());
            rows.push(c.rows as i64);
        }
    }
    let schema = counts_schema();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from(days)),
        Arc::new(StringArray::from(types)),
        Arc::new(StringArray::from(aggregates)),
        Arc::new(Int64Array::from(rows)),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    let curated =
        LogicalPlanBuilder::scan("curated_counts", provider_as_source(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?)), None)?;
    let Some(raw) = raw_plan(state)? else { return curated.build() };
    // Raw rows count one each: the sum above adds them up, with no
    // aggregation of its own here (each hash aggregation holds memory).
    let raw = raw.project(COUNTED.iter().map(|c| col(*c)).chain([lit(1i64).alias(ROWS)]).collect::<Vec<_>>())?;
    curated.union(raw.build()?)?.build()
}

#[async_trait]
impl TableProvider for EventCounts {
    fn schema(&self) -> SchemaRef {
        counts_schema()
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
        let state = load_for_scan(&self.events, session, filters).await?;
        let plan = finish_scan(LogicalPlanBuilder::from(counts_plan(&state)?), &counts_schema(), filters, DT, projection, limit)?;
        session.create_physical_plan(&plan).await
    }
}

/// Replaces `count(*) … FROM events [WHERE …] GROUP BY <counted columns>`
/// by a sum over [`EventCounts`] (see the module).
#[derive(Debug, Default)]
pub struct CountsFromManifests;

/// Whether an aggregate expression is a plain `count(*)` / `count(1)`.
fn is_count_star(e: &Expr) -> bool {
    match e {
        Expr::Alias(a) => is_count_star(&a.expr),
        Expr::AggregateFunction(f) => {
            f.func.name() == "count"
                && !f.params.distinct
                && f.params.filter.is_none()
                && f.params.order_by.is_empty()
                && match f.params.args.as_slice() {
                    [] => true,
                    [Expr::Literal(v, _)] => !v.is_null(),
                    _ => false,
                }
        }
        _ => false,
    }
}

/// What lies between the aggregate and the scan, bottom first.
enum Layer {
    Filter(Expr),
    Alias(datafusion::common::TableReference),
}

impl OptimizerRule for CountsFromManifests {
    fn name(&self) -> &str {
        "counts_from_manifests"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(agg) = &plan else { return Ok(Transformed::no(plan)) };
        let groups_counted = agg.group_expr.iter().all(|g| matches!(g, Expr::Column(c) if COUNTED.contains(&c.name.as_str())));
        if !groups_counted || agg.aggr_expr.is_empty() || !agg.aggr_expr.iter().all(is_count_star) {
            return Ok(Transformed::no(plan));
        }
        let mut layers = vec![];
        let mut input = agg.input.as_ref();
        let scan = loop {
            match input {
                LogicalPlan::Filter(f) => {
                    layers.push(Layer::Filter(f.predicate.clone()));
                    input = f.input.as_ref();
                }
                LogicalPlan::SubqueryAlias(a) => {
                    layers.push(Layer::Alias(a.alias.clone()));
                    input = a.input.as_ref();
                }
                // Columns passed through (projection pushdown's).
                LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => input = p.input.as_ref(),
                LogicalPlan::TableScan(s) => break s,
                _ => return Ok(Transformed::no(plan)),
            }
        };
        if scan.fetch.is_some() || !source_as_provider(&scan.source).is_ok_and(|p| p.is::<EventsTable>()) {
            return Ok(Transformed::no(plan));
        }
        let all_filters = scan.filters.iter().chain(layers.iter().filter_map(|l| match l {
            Layer::Filter(f) => Some(f),
            Layer::Alias(_) => None,
        }));
        if !all_filters.clone().all(counted_only) {
            return Ok(Transformed::no(plan));
        }
        let provider = source_as_provider(&scan.source)?;
        let Some(events) = provider.downcast_ref::<EventsTable>() else { return Ok(Transformed::no(plan)) };
        // A lake with days compacted before manifests had counts: count the
        // files as before (and `count(*)` alone from the Delta log).
        if !events.manifests.counts_complete() {
            return Ok(Transformed::no(plan));
        }
        let counts = EventCounts { events: EventsTable::new(events.lake.clone(), Arc::clone(&events.manifests)) };
        let mut b = LogicalPlanBuilder::scan(scan.table_name.clone(), provider_as_source(Arc::new(counts)), None)?;
        if let Some(p) = conjunction(scan.filters.clone()) {
            b = b.filter(p)?;
        }
        for layer in layers.into_iter().rev() {
            b = match layer {
                Layer::Filter(p) => b.filter(p)?,
                Layer::Alias(a) => b.alias(a)?,
            };
        }
        let total = "__total";
        b = b.aggregate(agg.group_expr.clone(), vec![sum(col(ROWS)).alias(total)])?;
        // The aggregate's own names; `count(*)` of no rows is 0, not NULL.
        let groups = agg.group_expr.len();
        let names = agg.schema.fields();
        let mut exprs: Vec<Expr> = agg.group_expr.clone();
        for field in names.iter().skip(groups) {
            let n = datafusion::functions::core::expr_fn::coalesce(vec![col(Column::from_name(total)), lit(0i64)]);
            exprs.push(n.alias(field.name()));
        }
        let rewritten = b.project(exprs)?.build()?;
        Ok(Transformed::yes(rewritten))
    }
}
