//! JSON paths over `events` read from the typed copies (ADR 0018).
//!
//! `SELECT dt, sum(CAST(json_extract_scalar(payload, '$.amount') AS DOUBLE))
//! FROM events WHERE event_type = 'PaymentReceived' GROUP BY dt` parses every
//! payload of the type; the compactor already wrote `amount` of those rows
//! as a column. An optimizer rule ([`PayloadReads`]) finds, in an aggregate
//! or projection over `events` filtered to one event type, the reads of a
//! top-level payload field —
//!
//! ```text
//!  json_extract_scalar(payload, '$.f')                  varchar
//!  CAST(json_extract_scalar(payload, '$.f') AS BIGINT)   bigint
//!  CAST(json_extract_scalar(payload, '$.f') AS DOUBLE)   double
//!  CAST(json_extract_scalar(payload, '$.f') AS BOOLEAN)  boolean
//! ```
//!
//! — and scans [`EventsOfType`] instead: `events` of that type with a
//! column per read. A curated day whose copy holds the field as a column of
//! the kind that gives the read's value exactly (varchar for the text,
//! bigint for `BIGINT`, bigint or double for `DOUBLE`, boolean for
//! `BOOLEAN`; no column: the field has no value that day) is read from the
//! copy; every other day — hot raw files, a field of another kind that day,
//! a day without copies — evaluates the read itself on the payload. The
//! answer is the JSON evaluation's either way, errors included.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, Result, ScalarValue, TableReference};
use datafusion::datasource::{TableType, provider_as_source, source_as_provider};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Cast, Expr, LogicalPlan, LogicalPlanBuilder, Operator, Projection, TableProviderFilterPushDown, TableScan, col,
    lit,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;
use sediment_lake::jsonpath::{JsonPath, Step};
use sediment_lake::manifest::TypedFiles;
use sediment_lake::payload_schema::Shape;
use sediment_lake::schema::{DT, EVENT_TYPE, PAYLOAD};

use crate::events::{EventsTable, empty, events_plan_of, finish_scan, load_for_scan, pushdown_by_partition};
use crate::schema::events_schema;
use crate::typed::{copies_plan, copy_serves, days_of_type, typed_file_column};

/// What a read gives: the text of a scalar, or the text cast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadKind {
    Text,
    Bigint,
    Double,
    Boolean,
}

impl ReadKind {
    fn data_type(self) -> DataType {
        match self {
            ReadKind::Text => DataType::Utf8,
            ReadKind::Bigint => DataType::Int64,
            ReadKind::Double => DataType::Float64,
            ReadKind::Boolean => DataType::Boolean,
        }
    }

    /// Whether a copy's column of `shape` holds exactly what the read gives.
    fn served_by(self, shape: &Shape) -> bool {
        matches!(
            (self, shape),
            (ReadKind::Text, Shape::Varchar)
                | (ReadKind::Bigint, Shape::Bigint)
                | (ReadKind::Double, Shape::Double | Shape::Bigint)
                | (ReadKind::Boolean, Shape::Boolean)
        )
    }
}

/// One read of a payload field, as a column of [`EventsOfType`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PayloadRead {
    pub field: String,
    pub kind: ReadKind,
    /// The column's name.
    pub name: String,
    /// The read itself, over an unqualified `payload`.
    pub expr: Expr,
}

/// The field and kind of a read: `json_extract_scalar(payload, '$.f')`,
/// cast or not, `f` a plain member name.
fn read_of(e: &Expr) -> Option<(String, ReadKind)> {
    let (inner, kind) = match e {
        Expr::Cast(Cast { expr, field }) => (
            expr.as_ref(),
            match field.data_type() {
                DataType::Int64 => ReadKind::Bigint,
                DataType::Float64 => ReadKind::Double,
                DataType::Boolean => ReadKind::Boolean,
                DataType::Utf8 => ReadKind::Text,
                _ => return None,
            },
        ),
        other => (other, ReadKind::Text),
    };
    let Expr::ScalarFunction(ScalarFunction { func, args }) = inner else { return None };
    if func.name() != "json_extract_scalar" || args.len() != 2 {
        return None;
    }
    let (Expr::Column(c), Expr::Literal(ScalarValue::Utf8(Some(path)), _)) = (&args[0], &args[1]) else { return None };
    if c.name != PAYLOAD {
        return None;
    }
    match JsonPath::parse(path).ok()?.steps() {
        [Step::Key(k)] if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => Some((k.clone(), kind)),
        _ => None,
    }
}

/// `event_type = 'T'` (either way round).
fn event_type_of(e: &Expr) -> Option<String> {
    let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = e else { return None };
    match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(ScalarValue::Utf8(Some(t)), _))
        | (Expr::Literal(ScalarValue::Utf8(Some(t)), _), Expr::Column(c))
            if c.name == EVENT_TYPE =>
        {
            Some(t.clone())
        }
        _ => None,
    }
}

fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
            let mut out = conjuncts(left);
            out.extend(conjuncts(right));
            out
        }
        other => vec![other],
    }
}

/// Serves payload reads over `events` of one type from the typed copies.
#[derive(Debug, Default)]
pub struct PayloadReads;

/// A node between the rewritten node and the scan.
enum Layer {
    Filter(Expr),
    Alias(TableReference),
    /// Columns passed through (projection pushdown's).
    Columns(Vec<Expr>),
}

impl OptimizerRule for PayloadReads {
    fn name(&self) -> &str {
        "payload_reads_from_typed_copies"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let (exprs, input) = match &plan {
            LogicalPlan::Aggregate(a) if !a.group_expr.iter().any(|g| matches!(g, Expr::GroupingSet(_))) => {
                (a.group_expr.iter().chain(&a.aggr_expr).collect::<Vec<_>>(), a.input.as_ref())
            }
            LogicalPlan::Projection(p) => (p.expr.iter().collect(), p.input.as_ref()),
            _ => return Ok(Transformed::no(plan)),
        };
        let mut found = false;
        for e in &exprs {
            e.apply(|x| {
                found |= read_of(x).is_some();
                Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
            })?;
        }
        if !found {
            return Ok(Transformed::no(plan));
        }
        let mut layers = vec![];
        let mut node = input;
        let scan: &TableScan = loop {
            match node {
                LogicalPlan::Filter(f) => {
                    layers.push(Layer::Filter(f.predicate.clone()));
                    node = f.input.as_ref();
                }
                LogicalPlan::SubqueryAlias(a) => {
                    layers.push(Layer::Alias(a.alias.clone()));
                    node = a.input.as_ref();
                }
                LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
                    layers.push(Layer::Columns(p.expr.clone()));
                    node = p.input.as_ref();
                }
                LogicalPlan::TableScan(s) => break s,
                _ => return Ok(Transformed::no(plan)),
            }
        };
        let Ok(provider) = source_as_provider(&scan.source) else { return Ok(Transformed::no(plan)) };
        let Some(events) = provider.downcast_ref::<EventsTable>() else { return Ok(Transformed::no(plan)) };
        let filters = scan.filters.iter().chain(layers.iter().filter_map(|l| match l {
            Layer::Filter(f) => Some(f),
            _ => None,
        }));
        let types: HashSet<String> = filters.flat_map(|f| conjuncts(f).into_iter().filter_map(event_type_of)).collect();
        if types.len() != 1 {
            return Ok(Transformed::no(plan));
        }
        let Some(event_type) = types.into_iter().next() else { return Ok(Transformed::no(plan)) };

        // The reads, each once, and the node's expressions over their columns.
        let qualifier = layers.iter().rev().fold(scan.table_name.clone(), |q, l| match l {
            Layer::Alias(a) => a.clone(),
            _ => q,
        });
        let mut reads: Vec<PayloadRead> = Vec::new();
        let mut replace = |e: &Expr| -> Result<Expr> {
            let name = e.schema_name().to_string();
            let out = e.clone().transform_down(|x| {
                let Some((field, kind)) = read_of(&x) else { return Ok(Transformed::no(x)) };
                let at = match reads.iter().position(|r| r.field == field && r.kind == kind) {
                    Some(at) => at,
                    None => {
                        let expr = x.clone().transform(|y| match y {
                            Expr::Column(c) if c.name == PAYLOAD => Ok(Transformed::yes(col(Column::new_unqualified(PAYLOAD)))),
                            other => Ok(Transformed::no(other)),
                        })?;
                        reads.push(PayloadRead { field, kind, name: format!("__payload_read_{}", reads.len()), expr: expr.data });
                        reads.len() - 1
                    }
                };
                Ok(Transformed::new(Expr::Column(Column::new(Some(qualifier.clone()), &reads[at].name)), true, TreeNodeRecursion::Jump))
            })?;
            Ok(if out.transformed && !matches!(e, Expr::Alias(_)) { out.data.alias(name) } else { out.data })
        };
        let rebuilt: Vec<Expr> = exprs.iter().map(|e| replace(e)).collect::<Result<_>>()?;

        // `events` of the type with the reads; `payload` only if still read.
        let still_read = |e: &Expr| e.column_refs().iter().any(|c| c.name == PAYLOAD);
        let payload_read = rebuilt.iter().any(still_read)
            || layers.iter().any(|l| matches!(l, Layer::Filter(f) if still_read(f)))
            || scan.filters.iter().any(still_read);
        let of_type = EventsOfType::new(EventsTable::new(events.lake.clone(), Arc::clone(&events.manifests)), event_type, reads.clone());
        let envelope = events_schema();
        let mut projection: Vec<usize> = match &scan.projection {
            Some(p) => p.clone(),
            None => (0..envelope.fields().len()).collect(),
        };
        let payload_at = envelope.index_of(PAYLOAD)?;
        if !payload_read {
            projection.retain(|&i| i != payload_at);
        }
        projection.extend((0..reads.len()).map(|i| envelope.fields().len() + i));
        let mut b = LogicalPlanBuilder::scan_with_filters_fetch(
            scan.table_name.clone(),
            provider_as_source(Arc::new(of_type)),
            Some(projection),
            scan.filters.clone(),
            scan.fetch,
        )?;
        let mut current = scan.table_name.clone();
        for layer in layers.into_iter().rev() {
            b = match layer {
                Layer::Filter(p) => b.filter(p)?,
                Layer::Alias(a) => {
                    current = a.clone();
                    b.alias(a)?
                }
                Layer::Columns(mut cols) => {
                    if !payload_read {
                        cols.retain(|c| !matches!(c, Expr::Column(c) if c.name == PAYLOAD));
                    }
                    cols.extend(reads.iter().map(|r| Expr::Column(Column::new(Some(current.clone()), &r.name))));
                    b.project(cols)?
                }
            };
        }
        let input = Arc::new(b.build()?);
        let rewritten = match plan {
            LogicalPlan::Aggregate(a) => {
                let groups = a.group_expr.len();
                let (group, aggr) = rebuilt.split_at(groups);
                LogicalPlan::Aggregate(Aggregate::try_new(input, group.to_vec(), aggr.to_vec())?)
            }
            LogicalPlan::Projection(_) => LogicalPlan::Projection(Projection::try_new(rebuilt, input)?),
            other => return Ok(Transformed::no(other)),
        };
        Ok(Transformed::yes(rewritten))
    }
}

/// `events` of one type, with a column per payload read.
#[derive(Debug)]
pub struct EventsOfType {
    events: EventsTable,
    event_type: String,
    reads: Vec<PayloadRead>,
    schema: SchemaRef,
}

impl EventsOfType {
    pub fn new(events: EventsTable, event_type: String, reads: Vec<PayloadRead>) -> Self {
        let mut fields: Vec<Field> = events_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(reads.iter().map(|r| Field::new(&r.name, r.kind.data_type(), true)));
        Self { events, event_type, reads, schema: Arc::new(Schema::new(fields)) }
    }

    /// Whether `copy` holds every wanted read as a column of its kind.
    fn serves(&self, copy: &TypedFiles, reads: &[&PayloadRead]) -> bool {
        reads.iter().all(|r| copy_serves(copy, &r.field, |s| r.kind.served_by(s)))
    }
}

#[async_trait]
impl TableProvider for EventsOfType {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
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
        if state.curated.is_empty() && state.raw.is_empty() {
            return empty(&self.schema, projection);
        }
        let envelope = events_schema();
        let n = envelope.fields().len();
        let wanted: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..self.schema.fields().len()).collect());
        let reads: Vec<&PayloadRead> = wanted.iter().filter(|&&i| i >= n).map(|&i| &self.reads[i - n]).collect();
        let (copies, elsewhere) = days_of_type(&state, &self.event_type, &self.schema, &wanted, |copy| self.serves(copy, &reads));
        let mut parts = Vec::new();
        if !copies.is_empty() {
            let stored = |i: usize| typed_file_column(&self.reads[i - n].field);
            parts.push(copies_plan(session, &self.schema, &wanted, &stored, &copies, filters, limit).await?);
        }
        if let Some(plan) = events_plan_of(&state, &|d| !elsewhere.contains(&d))? {
            // The type's rows, the envelope columns wanted and the reads evaluated.
            let mut b = LogicalPlanBuilder::from(plan).filter(col(EVENT_TYPE).eq(lit(self.event_type.as_str())))?;
            let mut exprs: Vec<Expr> = envelope.fields().iter().map(|f| col(Column::new_unqualified(f.name()))).collect();
            exprs.extend(self.reads.iter().map(|r| r.expr.clone().alias(&r.name)));
            b = b.project(exprs)?;
            let plan = finish_scan(b, &self.schema, filters, DT, Some(&wanted), limit)?;
            parts.push(session.create_physical_plan(&plan).await?);
        }
        if parts.is_empty() {
            return empty(&self.schema, projection);
        }
        UnionExec::try_new(parts)
    }
}
