//! Trino's integers: an integer literal that fits 32 bits is an `integer`
//! (`typeof(1)`, `ARRAY[1, 2]` is `array(integer)`), and integer `+`, `-`,
//! `*` fail on overflow (`integer addition overflow`) where DataFusion's
//! wrap around — a wrapped `integer` would be a silently wrong answer.
//!
//! Two analyzer rules: [`IntegerLiterals`] before type coercion (so the
//! coercion sees `integer` literals and widens them where a column or a
//! signature asks), [`CheckedArithmetic`] after it (when both sides of an
//! operator have their final, equal type). Names are preserved, so plans
//! above a rewritten expression still find their columns.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result, ScalarValue, exec_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use super::udf::identity_by_name;

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
        // planned; narrowing those would leave them behind, so the call stays.
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
            LogicalPlan::Limit(_) => Ok(Transformed::no(plan)),
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
                // The builder types each column as its rows' common type.
                Ok(Transformed::yes(LogicalPlanBuilder::values(rows)?.build()?))
            }
            plan => rewrite_exprs(plan, |e, _| narrow(e)),
        })
        .map(|t| t.data)
    }
}

/// Integer `+`, `-`, `*` through [`checked`], after type coercion.
#[derive(Debug, Default)]
pub struct CheckedArithmetic;

impl AnalyzerRule for CheckedArithmetic {
    fn name(&self) -> &str {
        "trino_checked_arithmetic"
    }

    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            if matches!(plan, LogicalPlan::TableScan(_) | LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_)) {
                return Ok(Transformed::no(plan));
            }
            rewrite_exprs(plan, |e, schema| e.transform_up(|e| check(e, schema)))
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

fn check(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else { return Ok(Transformed::no(e)) };
    let Some(udf) = checked(*op) else { return Ok(Transformed::no(e)) };
    let (lt, rt) = (left.get_type(schema)?, right.get_type(schema)?);
    if !(lt.is_integer() && lt == rt) {
        return Ok(Transformed::no(e));
    }
    Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(udf), vec![(**left).clone(), (**right).clone()]))))
}

/// The checked form of an integer operator, if it can overflow.
pub fn checked(op: Operator) -> Option<ScalarUDF> {
    let (name, verb) = match op {
        Operator::Plus => ("__checked_add", "addition"),
        Operator::Minus => ("__checked_subtract", "subtraction"),
        Operator::Multiply => ("__checked_multiply", "multiplication"),
        _ => return None,
    };
    Some(ScalarUDF::new_from_impl(Checked { name, verb, op, signature: Signature::any(2, Volatility::Immutable) }))
}

#[derive(Debug)]
struct Checked {
    name: &'static str,
    verb: &'static str,
    op: Operator,
    signature: Signature,
}

identity_by_name!(Checked, |f| f.name);

impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use arrow::compute::kernels::numeric::{add, mul, sub};
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (l, r) = (&arrays[0], &arrays[1]);
        let out: std::result::Result<ArrayRef, _> = match self.op {
            Operator::Plus => add(l, r),
            Operator::Minus => sub(l, r),
            _ => mul(l, r),
        };
        let out = match out {
            Ok(out) => out,
            Err(arrow::error::ArrowError::ArithmeticOverflow(_)) => {
                let ty = super::types::trino_type(l.data_type());
                return exec_err!("NUMERIC_VALUE_OUT_OF_RANGE: {ty} {} overflow", self.verb);
            }
            Err(e) => return Err(e.into()),
        };
        if scalar && out.len() == 1 {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        debug_assert_eq!(out.len(), args.number_rows);
        Ok(ColumnarValue::Array(out))
    }
}
