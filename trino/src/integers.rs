//! Trino's integer literals: a literal that fits 32 bits is an `integer`
//! (`typeof(1)`, `ARRAY[1, 2]` is `array(integer)`, `2147483647 + 1` fails
//! with `integer addition overflow`); past 32 bits it is a `bigint`.
//!
//! An analyzer rule that runs before type coercion, so the coercion sees
//! `integer` literals and widens them wherever a column, another operand or a
//! signature asks for more (`sequence + 1` stays `bigint`). Together with
//! [`crate::overflow::CheckedIntegers`] after coercion, integer arithmetic
//! is Trino's. Names are preserved, so plans above a rewritten expression
//! still find their columns.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::optimizer::AnalyzerRule;

use super::decimal::rewrite_exprs;

/// Integer literals that fit 32 bits become `integer`; `LIMIT`/`OFFSET`
/// keep theirs (DataFusion reads them as bigint).
#[derive(Debug, Default)]
pub struct IntegerLiterals;

fn narrow(e: Expr) -> Result<Transformed<Expr>> {
    e.transform_down(|e| match e {
        Expr::Literal(ScalarValue::Int64(Some(v)), meta) if i32::try_from(v).is_ok() => {
            Ok(Transformed::yes(Expr::Literal(ScalarValue::Int32(Some(v as i32)), meta)))
        }
        // A lambda's variables were typed from its arguments when it was
        // planned; narrowing inside it would leave them behind.
        e @ Expr::HigherOrderFunction(_) => Ok(Transformed::new(e, false, TreeNodeRecursion::Jump)),
        e => Ok(Transformed::no(e)),
    })
}

impl AnalyzerRule for IntegerLiterals {
    fn name(&self) -> &str {
        "trino_integer_literals"
    }

    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| match plan {
            LogicalPlan::Limit(_) | LogicalPlan::TableScan(_) | LogicalPlan::EmptyRelation(_) => Ok(Transformed::no(plan)),
            LogicalPlan::Values(v) => {
                let mut changed = false;
                let rows = v
                    .values
                    .iter()
                    .map(|row| {
                        row.iter()
                            .map(|e| {
                                let t = narrow(e.clone())?;
                                changed |= t.transformed;
                                Ok(t.data)
                            })
                            .collect::<Result<Vec<_>>>()
                    })
                    .collect::<Result<Vec<_>>>()?;
                if !changed {
                    return Ok(Transformed::no(LogicalPlan::Values(v)));
                }
                // The builder types each column as its rows' common type
                // (`VALUES 1, 3000000000` is bigint).
                Ok(Transformed::yes(LogicalPlanBuilder::values(rows)?.build()?))
            }
            plan => rewrite_exprs(plan, |e, _| narrow(e)),
        })
        .map(|t| t.data)
    }
}
