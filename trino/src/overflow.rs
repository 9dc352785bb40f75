//! Trino's integer arithmetic: `+`, `-` and `*` on tinyint, smallint,
//! integer and bigint fail on overflow (`bigint addition overflow`) where
//! DataFusion's wrap around (`9223372036854775807 + 1` would answer
//! `-9223372036854775808`).
//!
//! An analyzer rule, after type coercion (both sides then have one integer
//! type), puts Arrow's checked kernels in place of those operators, keeping
//! each expression's name.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DataFusionError, Result};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator, ScalarUDF};
use datafusion::optimizer::AnalyzerRule;

use super::decimal::rewrite_exprs;
use super::udf::{any, ret_first, udf};

#[derive(Debug, Default)]
pub struct CheckedIntegers;

fn kernel(args: &[ArrayRef], types: &[DataType], op: &str) -> Result<ArrayRef> {
    use arrow::compute::kernels::numeric::{add, mul, sub};
    let (l, r) = (&args[0], &args[1]);
    let out = match op {
        "addition" => add(l, r),
        "subtraction" => sub(l, r),
        _ => mul(l, r),
    };
    out.map_err(|e| match e {
        arrow::error::ArrowError::ArithmeticOverflow(_) => {
            DataFusionError::Execution(format!("NUMERIC_VALUE_OUT_OF_RANGE: {} {op} overflow", super::types::trino_type(&types[0])))
        }
        e => DataFusionError::ArrowError(Box::new(e), None),
    })
}

/// The checked operators, registered so that plans naming them resolve.
pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        udf("__checked_add", &[], any(2), ret_first, |a, t| kernel(a, t, "addition")),
        udf("__checked_subtract", &[], any(2), ret_first, |a, t| kernel(a, t, "subtraction")),
        udf("__checked_multiply", &[], any(2), ret_first, |a, t| kernel(a, t, "multiplication")),
    ]
}

fn is_integer(t: &DataType) -> bool {
    matches!(t, DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64)
}

fn rewrite(e: Expr, schema: &DFSchema, udfs: &[Arc<ScalarUDF>]) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else { return Ok(Transformed::no(e)) };
    let slot = match op {
        Operator::Plus => 0,
        Operator::Minus => 1,
        Operator::Multiply => 2,
        _ => return Ok(Transformed::no(e)),
    };
    let (lt, rt) = (operand_type(left, schema)?, operand_type(right, schema)?);
    if !(is_integer(&lt) && lt == rt) {
        return Ok(Transformed::no(e));
    }
    let call = Expr::ScalarFunction(datafusion::logical_expr::expr::ScalarFunction::new_udf(
        Arc::clone(&udfs[slot]),
        vec![(**left).clone(), (**right).clone()],
    ));
    Ok(Transformed::yes(call))
}

/// The type of an operand. An operand already rewritten has its first
/// argument's type: following the chain down, rather than asking
/// `get_type` (which names every call beneath), keeps a long chain such as
/// `1 + 1 + … + 1` linear to type at each level.
fn operand_type(e: &Expr, schema: &DFSchema) -> Result<DataType> {
    let mut e = e;
    loop {
        match e {
            Expr::ScalarFunction(f) if f.name().starts_with("__checked_") && !f.args.is_empty() => e = &f.args[0],
            other => return other.get_type(schema),
        }
    }
}

impl AnalyzerRule for CheckedIntegers {
    fn name(&self) -> &str {
        "trino_checked_integers"
    }

    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        let udfs: Vec<Arc<ScalarUDF>> = functions().into_iter().map(Arc::new).collect();
        plan.transform_up_with_subqueries(|plan| {
            if matches!(plan, LogicalPlan::TableScan(_) | LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_)) {
                return Ok(Transformed::no(plan));
            }
            rewrite_exprs(plan, |e, schema| e.transform_up(|e| rewrite(e, schema, &udfs)))
        })
        .map(|t| t.data)
    }
}
