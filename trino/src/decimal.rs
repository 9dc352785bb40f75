//! Trino's decimal arithmetic: the result types of `*` and `/` on decimals.
//!
//! DataFusion types decimal products and quotients as Spark does (a quotient
//! gets at least six fraction digits: `10.0 / 4` is `2.50000`); Trino keeps
//! them tight (`decimal(p1 + p2, s1 + s2)` for a product, `decimal(p1 + s2 +
//! max(0, s2 - s1), max(s1, s2))` for a quotient, rounding half up: `2.5`).
//! This analyzer rule runs after type coercion and casts each decimal
//! product and quotient to Trino's type, keeping the expression's name, and
//! gives `round(decimal(p, s), d)` Trino's `decimal(p + 1, s)`.

use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{BinaryExpr, Cast, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;

#[derive(Debug, Default)]
pub struct TrinoDecimals;

/// Trino's result type of `l op r` on decimals, where it differs from DataFusion's.
pub fn trino_decimal_type(op: Operator, l: &DataType, r: &DataType) -> Option<DataType> {
    let (DataType::Decimal128(p1, s1), DataType::Decimal128(p2, s2)) = (l, r) else { return None };
    let (p1, s1, p2, s2) = (*p1 as i32, *s1 as i32, *p2 as i32, *s2 as i32);
    let (p, s) = match op {
        Operator::Multiply => (p1 + p2, s1 + s2),
        Operator::Divide => (p1 + s2 + 0.max(s2 - s1), s1.max(s2)),
        _ => return None,
    };
    if s > 38 {
        return None;
    }
    Some(DataType::Decimal128(p.clamp(1, 38) as u8, s as i8))
}

fn rewrite(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    // Trino: round(decimal(p, s), d) is decimal(p + 1, s) (DataFusion narrows
    // the scale). Here, after the argument's own type is Trino's.
    if let Expr::ScalarFunction(f) = &e
        && f.name() == "round"
        && f.args.len() == 2
        && let DataType::Decimal128(p, s) = f.args[0].get_type(schema)?
    {
        let target = DataType::Decimal128((p + 1).min(38), s);
        if e.get_type(schema)? == target {
            return Ok(Transformed::no(e));
        }
        return Ok(Transformed::yes(Expr::Cast(Cast::new(Box::new(e), target))));
    }
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else { return Ok(Transformed::no(e)) };
    let (lt, rt) = (left.get_type(schema)?, right.get_type(schema)?);
    let Some(target) = trino_decimal_type(*op, &lt, &rt) else { return Ok(Transformed::no(e)) };
    if e.get_type(schema)? == target {
        return Ok(Transformed::no(e));
    }
    Ok(Transformed::yes(Expr::Cast(Cast::new(Box::new(e), target))))
}

impl AnalyzerRule for TrinoDecimals {
    fn name(&self) -> &str {
        "trino_decimals"
    }

    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            if matches!(plan, LogicalPlan::TableScan(_) | LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_)) {
                return Ok(Transformed::no(plan));
            }
            rewrite_exprs(plan, |e, schema| e.transform_up(|e| rewrite(e, schema)))
        })
        .map(|t| t.data)
    }
}

/// Rewrites a node's expressions, keeping their names, and recomputes its
/// schema (types below may have changed even where this node's did not).
pub(crate) fn rewrite_exprs(
    plan: LogicalPlan,
    f: impl Fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
) -> Result<Transformed<LogicalPlan>> {
    let schema = merge_schema(&plan.inputs());
    let names = NamePreserver::new(&plan);
    let t = plan.map_expressions(|e| {
        let saved = names.save(&e);
        let t = f(e, &schema)?;
        Ok(if t.transformed { Transformed::yes(saved.restore(t.data)) } else { t })
    })?;
    t.map_data(|p| p.recompute_schema())
}
