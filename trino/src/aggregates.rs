//! Trino's result types of aggregates where DataFusion's differ:
//!
//! | aggregate | DataFusion | Trino |
//! |---|---|---|
//! | `avg(decimal(p, s))` | decimal(p + 4, s + 4) | decimal(p, s), rounded half up |
//! | `approx_percentile(integer x, p)` | double | x's type, rounded |
//!
//! An analyzer rule, after type coercion: an aggregate with such results
//! gets a projection above it casting them, under the same names, and the
//! plans above are re-typed.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, DFSchema, Result};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Cast, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder};
use datafusion::optimizer::AnalyzerRule;

use arrow::datatypes::DataType;

#[derive(Debug, Default)]
pub struct TrinoAggregateTypes;

/// Trino's type of an aggregate's result, where it differs from DataFusion's.
fn trino_result(e: &Expr, input: &DFSchema) -> Result<Option<DataType>> {
    let agg = match e {
        Expr::AggregateFunction(a) => a,
        Expr::Alias(a) => return trino_result(&a.expr, input),
        _ => return Ok(None),
    };
    let AggregateFunction { func, params } = agg;
    let Some(arg) = params.args.first() else { return Ok(None) };
    Ok(match func.name() {
        "avg" => match arg.get_type(input)? {
            t @ DataType::Decimal128(..) => Some(t),
            _ => None,
        },
        "approx_percentile_cont" => {
            // Coercion cast the integer argument to double.
            let original = match arg {
                Expr::Cast(Cast { expr, .. }) => expr.get_type(input)?,
                other => other.get_type(input)?,
            };
            original.is_integer().then_some(original)
        }
        _ => None,
    })
}

impl AnalyzerRule for TrinoAggregateTypes {
    fn name(&self) -> &str {
        "trino_aggregate_types"
    }

    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let LogicalPlan::Aggregate(agg) = &plan else {
                if matches!(plan, LogicalPlan::TableScan(_) | LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_)) {
                    return Ok(Transformed::no(plan));
                }
                // Types below may have changed.
                return Ok(Transformed::no(plan.recompute_schema()?));
            };
            let targets = agg.aggr_expr.iter().map(|e| trino_result(e, agg.input.schema())).collect::<Result<Vec<Option<DataType>>>>()?;
            if targets.iter().all(Option::is_none) {
                return Ok(Transformed::no(plan));
            }
            let groups = agg.group_expr_len()?;
            let schema = plan.schema().clone();
            let exprs: Vec<Expr> = schema
                .iter()
                .enumerate()
                .map(|(i, (qualifier, field))| {
                    let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
                    match i.checked_sub(groups).and_then(|k| targets.get(k).cloned().flatten()) {
                        Some(t) if &t != field.data_type() => {
                            Expr::Cast(Cast::new(Box::new(column), t)).alias_qualified(qualifier.cloned(), field.name())
                        }
                        _ => column,
                    }
                })
                .collect();
            Ok(Transformed::yes(LogicalPlanBuilder::from(plan).project(exprs)?.build()?))
        })
        .map(|t| t.data)
    }
}
