//! The newest row per key without a sort: `row_number() OVER (PARTITION BY
//! k ORDER BY o) = 1` as a hash aggregate.
//!
//! Analysts ask for "the latest event of each aggregate" with a window and
//! a filter on its row number. Planned as written, that sorts every row by
//! key and order, numbers them, and keeps one per key. The same answer is
//! one row per group of `k`: every other column taken by `first_value(c
//! ORDER BY o)`, a groups accumulator that keeps one value per group. Each
//! accumulator sees the same rows in the same order and replaces its value
//! only on a strictly earlier ordering, so among rows tied on `o` all take
//! the same row, as the window picks one row (Trino leaves which one open).

use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, DFSchema, Result, ScalarValue};
use datafusion::functions_aggregate::first_last::first_value_udaf;
use datafusion::logical_expr::expr::{WindowFunction, WindowFunctionParams};
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Expr, ExprFunctionExt, ExprSchemable, LogicalPlan, Operator, Projection, SortExpr, Window,
    WindowFunctionDefinition, lit,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// The rule (a logical optimizer rule, applied top-down).
#[derive(Debug, Default)]
pub struct FirstRowPerKey;

impl OptimizerRule for FirstRowPerKey {
    fn name(&self) -> &str {
        "first_row_per_key"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Filter(filter) = &plan else { return Ok(Transformed::no(plan)) };
        let Some(rn) = row_number_is_one(&filter.predicate) else { return Ok(Transformed::no(plan)) };
        // The window, directly below or under a projection of columns.
        let (projection, window) = match filter.input.as_ref() {
            LogicalPlan::Window(w) => (None, w),
            LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => match p.input.as_ref() {
                LogicalPlan::Window(w) => (Some(p), w),
                _ => return Ok(Transformed::no(plan)),
            },
            _ => return Ok(Transformed::no(plan)),
        };
        let Some(replacement) = as_aggregate(window, &rn)? else { return Ok(Transformed::no(plan)) };
        let rebuilt = match projection {
            Some(p) => LogicalPlan::Projection(Projection::try_new(p.expr.clone(), Arc::new(replacement))?),
            None => replacement,
        };
        // Every row left has row number 1: the filter goes.
        Ok(Transformed::yes(rebuilt))
    }
}

/// The column a predicate compares to 1 (`c = 1`, `1 = c`, `c <= 1`, `c < 2`).
fn row_number_is_one(predicate: &Expr) -> Option<Column> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = predicate else { return None };
    let int = |e: &Expr| match e {
        Expr::Literal(v, _) => integer(v),
        _ => None,
    };
    match (left.as_ref(), op, right.as_ref()) {
        (Expr::Column(c), Operator::Eq, v) | (v, Operator::Eq, Expr::Column(c)) if int(v) == Some(1) => Some(c.clone()),
        (Expr::Column(c), Operator::LtEq, v) if int(v) == Some(1) => Some(c.clone()),
        (Expr::Column(c), Operator::Lt, v) if int(v) == Some(2) => Some(c.clone()),
        _ => None,
    }
}

fn integer(v: &ScalarValue) -> Option<i128> {
    match v {
        ScalarValue::Int8(Some(x)) => Some(*x as i128),
        ScalarValue::Int16(Some(x)) => Some(*x as i128),
        ScalarValue::Int32(Some(x)) => Some(*x as i128),
        ScalarValue::Int64(Some(x)) => Some(*x as i128),
        ScalarValue::UInt8(Some(x)) => Some(*x as i128),
        ScalarValue::UInt16(Some(x)) => Some(*x as i128),
        ScalarValue::UInt32(Some(x)) => Some(*x as i128),
        ScalarValue::UInt64(Some(x)) => Some(*x as i128),
        _ => None,
    }
}

/// `window` (one `row_number()` with partition and order, named `rn`) as
/// an aggregate with the window's output schema.
fn as_aggregate(window: &Window, rn: &Column) -> Result<Option<LogicalPlan>> {
    let [Expr::WindowFunction(wf)] = window.window_expr.as_slice() else { return Ok(None) };
    let WindowFunction { fun, params } = wf.as_ref();
    let WindowFunctionParams { args, partition_by, order_by, filter, null_treatment: _, distinct, .. } = params;
    let is_row_number = matches!(fun, WindowFunctionDefinition::WindowUDF(u) if u.name() == "row_number");
    if !is_row_number || !args.is_empty() || partition_by.is_empty() || order_by.is_empty() || filter.is_some() || *distinct {
        return Ok(None);
    }
    let schema = window.schema.as_ref();
    let input_fields = window.input.schema().fields().len();
    // The window's own column is the last; the filter must be on it.
    let (rn_qualifier, rn_field) = schema.qualified_field(input_fields);
    if rn_field.name() != &rn.name || rn.relation.as_ref().is_some_and(|r| Some(r) != rn_qualifier) {
        return Ok(None);
    }
    let mut keys: Vec<Column> = Vec::with_capacity(partition_by.len());
    for p in partition_by {
        let Expr::Column(c) = p else { return Ok(None) };
        keys.push(c.clone());
    }
    let input_schema = window.input.schema();
    let mut aggs = Vec::new();
    let mut out = Vec::new();
    for (i, (qualifier, field)) in input_schema.iter().enumerate() {
        let column = Column::new(qualifier.cloned(), field.name());
        if keys.contains(&column) {
            out.push(Expr::Column(column));
            continue;
        }
        let name = format!("__first_row_{i}");
        aggs.push(first_of(Expr::Column(column), order_by, input_schema)?.alias(&name));
        out.push(Expr::Column(Column::new_unqualified(&name)).alias_qualified(qualifier.cloned(), field.name()));
    }
    out.push(lit(ScalarValue::UInt64(Some(1))).alias_qualified(rn_qualifier.cloned(), rn_field.name()));
    let group: Vec<Expr> = keys.into_iter().map(Expr::Column).collect();
    let aggregate = LogicalPlan::Aggregate(Aggregate::try_new(Arc::clone(&window.input), group, aggs)?);
    let projected = LogicalPlan::Projection(Projection::try_new(out, Arc::new(aggregate))?);
    // Same names and types as the window gave, or no rewrite.
    if !projected.schema().logically_equivalent_names_and_types(schema) {
        return Ok(None);
    }
    Ok(Some(projected))
}

/// `first_value(value ORDER BY order_by)`; [`first_row`](crate::first_row)
/// when the ordering is one integer or temporal column, which it compares
/// natively.
fn first_of(value: Expr, order_by: &[SortExpr], schema: &DFSchema) -> Result<Expr> {
    let native = match order_by {
        [key] => crate::first_row::is_integer_key(&key.expr.get_type(schema)?),
        _ => false,
    };
    let function = if native { crate::first_row::first_row_udaf() } else { first_value_udaf() };
    function.call(vec![value]).order_by(order_by.to_vec()).build()
}

#[cfg(test)]
mod tests {
    use datafusion::execution::runtime_env::RuntimeEnv;
    use datafusion::prelude::SessionConfig;

    const SQL: &str = "SELECT k, v FROM (SELECT k, v, row_number() OVER (PARTITION BY k ORDER BY o DESC) AS rn \
                       FROM (VALUES (1, 1, 'a'), (1, 3, 'b'), (2, 2, 'c')) AS t(k, o, v)) WHERE rn = 1 ORDER BY k";

    /// The window and its filter become one aggregate, with the same rows.
    #[tokio::test]
    async fn a_row_number_filter_becomes_an_aggregate() {
        let ctx = crate::session::context(SessionConfig::new(), std::sync::Arc::new(RuntimeEnv::default()));
        let df = ctx.sql(SQL).await.unwrap();
        let plan = df.clone().into_optimized_plan().unwrap().display_indent().to_string();
        assert!(plan.contains("Aggregate:") && plan.contains("first_row"), "{plan}");
        assert!(!plan.contains("WindowAggr"), "{plan}");
        let rows = df.collect().await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string();
        assert!(text.contains("| 1 | b |") && text.contains("| 2 | c |"), "{text}");
    }

    /// Other row numbers keep the window.
    #[tokio::test]
    async fn other_row_numbers_keep_the_window() {
        let ctx = crate::session::context(SessionConfig::new(), std::sync::Arc::new(RuntimeEnv::default()));
        let df = ctx.sql(&SQL.replace("rn = 1", "rn = 2")).await.unwrap();
        let plan = df.into_optimized_plan().unwrap().display_indent().to_string();
        assert!(plan.contains("WindowAggr"), "{plan}");
    }

    /// On many keys, batches and partitions, with NULL keys and each
    /// direction and NULL placement, the aggregate keeps the row the window
    /// numbers 1 (stock DataFusion's window as the oracle; order keys are
    /// distinct within a key, so that row is one).
    #[tokio::test]
    async fn the_aggregate_keeps_the_row_the_window_numbers_one() {
        let rows: Vec<String> = (0..2000)
            .map(|i: i64| {
                let o = if i < 40 { "NULL".to_owned() } else { ((i * 7919) % 2000).to_string() };
                format!("({}, {o}, 'v{i}', DATE '2026-01-01' + INTERVAL '{}' DAY)", i % 40, (i * 31) % 2000)
            })
            .collect();
        let table = format!("(VALUES {}) AS t(k, o, v, d)", rows.join(", "));
        let config = SessionConfig::new().with_target_partitions(2).with_batch_size(64);
        let ours = crate::session::context(config.clone(), std::sync::Arc::new(RuntimeEnv::default()));
        let stock = datafusion::prelude::SessionContext::new_with_config(config);
        for order in ["o DESC NULLS LAST", "o ASC NULLS FIRST", "o DESC NULLS FIRST", "d DESC", "CAST(o AS INTEGER) ASC NULLS LAST"] {
            let sql = format!(
                "SELECT k, v, d FROM (SELECT k, v, d, row_number() OVER (PARTITION BY k ORDER BY {order}) AS rn FROM {table}) WHERE rn = 1 ORDER BY k"
            );
            let answer = |ctx: datafusion::prelude::SessionContext| {
                let sql = sql.clone();
                async move {
                    let df = ctx.sql(&sql).await.unwrap();
                    let plan = df.clone().into_optimized_plan().unwrap().display_indent().to_string();
                    let rows = df.collect().await.unwrap();
                    (plan, arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string())
                }
            };
            let (plan, got) = answer(ours.clone()).await;
            let (_, want) = answer(stock.clone()).await;
            assert!(plan.contains("first_row"), "{order}: {plan}");
            assert_eq!(got, want, "{order}");
        }
    }
}
