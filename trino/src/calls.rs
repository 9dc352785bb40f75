//! Trino's answers where a DataFusion function of the same name answers
//! differently, decided by the argument types: a [`FunctionRewrite`] (run by
//! DataFusion's analyzer before type coercion, with the input schema).
//!
//! | call | DataFusion | Trino (this rewrite) |
//! | --- | --- | --- |
//! | `concat(array, …)` | text of the arrays | `array_concat` |
//! | `reverse(array)` | text of the array, reversed | `array_reverse` |
//! | `cardinality(array)` | every nested element | top-level length |
//! | `array_sort(x)` | nulls first | nulls last |
//! | `greatest`/`least` | nulls skipped | NULL if any argument is |
//! | `contains(a, x)` | `false` when not found | NULL when not found and `a` has a NULL |
//! | `arrays_overlap(a, b)` | `false` | NULL when nothing in common and a NULL in either |
//! | `sign(integer)` | a double | the argument's type |
//! | `ceil`/`floor` of an integer or decimal | a double | integer / exact decimal |
//! | `round(decimal(p, s), d)` | a narrower scale | decimal(p + 1, s) |
//! | `sum(decimal(p, s))` | decimal(p + 10, s) | decimal(38, s) |
//! | `CAST(zoned AS TIMESTAMP)` | the UTC instant | the zone's wall clock |

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanBuilder, GenericListArray, OffsetSizeTrait};
use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result, ScalarValue, exec_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::FunctionRewrite;
use datafusion::logical_expr::{Cast, Expr, ExprSchemable, ScalarUDF, lit, when};

use super::udf::{any, ret_bool, udf};

#[derive(Debug, Default)]
pub struct TrinoCalls;

fn is_list(t: &DataType) -> bool {
    matches!(t, DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _))
}

fn null_bool() -> Expr {
    lit(ScalarValue::Boolean(None))
}

fn cast(e: Expr, to: DataType) -> Expr {
    Expr::Cast(Cast::new(Box::new(e), to))
}

fn has_null(e: Expr) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(has_null_udf()), vec![e]))
}

/// `__has_null(array)`: whether the array holds a NULL element (NULL for a NULL array).
fn has_null_udf() -> ScalarUDF {
    udf("__has_null", &[], any(1), ret_bool, has_null_kernel)
}

fn has_null_kernel(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    fn per_row<O: OffsetSizeTrait>(l: &GenericListArray<O>) -> ArrayRef {
        let mut b = BooleanBuilder::with_capacity(l.len());
        for i in 0..l.len() {
            if l.is_null(i) {
                b.append_null();
            } else {
                b.append_value(l.value(i).null_count() > 0);
            }
        }
        Arc::new(b.finish())
    }
    let a = &args[0];
    match a.data_type() {
        DataType::List(_) => Ok(per_row(a.as_any().downcast_ref::<GenericListArray<i32>>().expect("a list array"))),
        DataType::LargeList(_) => Ok(per_row(a.as_any().downcast_ref::<GenericListArray<i64>>().expect("a large list array"))),
        DataType::Null => Ok(Arc::new(arrow::array::BooleanArray::new_null(a.len()))),
        other => exec_err!("__has_null takes an array, got {other}"),
    }
}

impl FunctionRewrite for TrinoCalls {
    fn name(&self) -> &str {
        "trino_calls"
    }

    fn rewrite(&self, expr: Expr, schema: &DFSchema, _: &ConfigOptions) -> Result<Transformed<Expr>> {
        match &expr {
            Expr::ScalarFunction(f) => {
                let types = f.args.iter().map(|a| a.get_type(schema)).collect::<Result<Vec<_>>>()?;
                call(f, &types)
            }
            // Trino sums decimal(p, s) as decimal(38, s) (DataFusion: p + 10).
            Expr::AggregateFunction(agg) if agg.func.name() == "sum" && agg.params.args.len() == 1 => {
                match agg.params.args[0].get_type(schema)? {
                    DataType::Decimal128(p, s) if p < 38 => {
                        let mut agg = agg.clone();
                        let x = agg.params.args.remove(0);
                        agg.params.args.push(cast(x, DataType::Decimal128(38, s)));
                        Ok(Transformed::yes(Expr::AggregateFunction(agg)))
                    }
                    _ => Ok(Transformed::no(expr)),
                }
            }
            Expr::Cast(Cast { expr: inner, field }) => match (field.data_type(), inner.get_type(schema)?) {
                // In UTC the local time is the instant itself: a plain cast,
                // which the Parquet scan can prune with and push filters through.
                (DataType::Timestamp(_, None), DataType::Timestamp(_, Some(zone))) if is_utc(&zone) => Ok(Transformed::no(expr)),
                (DataType::Timestamp(unit, None), DataType::Timestamp(_, Some(_))) => {
                    let local = datafusion::functions::datetime::to_local_time().call(vec![(**inner).clone()]);
                    Ok(Transformed::yes(cast(local, DataType::Timestamp(*unit, None))))
                }
                _ => Ok(Transformed::no(expr)),
            },
            _ => Ok(Transformed::no(expr)),
        }
    }
}

/// A zone name that is UTC itself (as the lake's timestamps carry it).
fn is_utc(zone: &str) -> bool {
    matches!(zone, "UTC" | "+00:00" | "Z" | "Etc/UTC")
}

fn call(f: &ScalarFunction, types: &[DataType]) -> Result<Transformed<Expr>> {
    use datafusion::functions_nested::expr_fn as nested;
    let args = f.args.clone();
    let unchanged = || Ok(Transformed::no(Expr::ScalarFunction(f.clone())));
    let e = match (f.name(), args.as_slice()) {
        ("concat", _) if types.iter().any(is_list) => nested::array_concat(args),
        ("reverse", [a]) if is_list(&types[0]) => nested::array_reverse(a.clone()),
        ("cardinality", [a]) if is_list(&types[0]) => {
            // Top-level elements, as bigint; an empty array is 0, a NULL array NULL.
            let length = datafusion::functions::core::expr_fn::coalesce(vec![nested::array_length(a.clone()), lit(0u64)]);
            when(a.clone().is_null(), lit(ScalarValue::Int64(None))).otherwise(cast(length, DataType::Int64))?
        }
        // Trino: ceil/floor of an integer is itself; of decimal(p, s) the
        // exact decimal(p - s + min(s, 1), 0) (DataFusion: a double).
        ("ceil" | "floor", [x]) if types[0].is_integer() => x.clone(),
        ("ceil" | "floor", [x]) if matches!(types[0], DataType::Decimal128(..)) => {
            let DataType::Decimal128(p, s) = types[0] else { unreachable!("matched a decimal") };
            let target = DataType::Decimal128(((p as i8 - s + s.min(1)).max(1)) as u8, 0);
            let frac = x.clone() % cast(lit(1i64), types[0].clone());
            let zero = cast(lit(0i64), types[0].clone());
            let one = cast(lit(1i64), types[0].clone());
            let whole = x.clone() - frac.clone();
            let stepped = if f.name() == "ceil" {
                when(frac.clone().eq(zero.clone()), x.clone()).when(x.clone().gt(zero), whole.clone() + one).otherwise(whole)?
            } else {
                when(frac.clone().eq(zero.clone()), x.clone()).when(x.clone().lt(zero), whole.clone() - one).otherwise(whole)?
            };
            cast(stepped, target)
        }
        // Trino's sign keeps an integer's type; a decimal's is decimal(1,0).
        ("signum", [x]) if types[0].is_integer() || matches!(types[0], DataType::Decimal128(..)) => {
            let target = if types[0].is_integer() { types[0].clone() } else { DataType::Decimal128(1, 0) };
            let zero = cast(lit(0i64), types[0].clone());
            let e = when(x.clone().gt(zero.clone()), lit(1i64)).when(x.clone().lt(zero), lit(-1i64)).otherwise(lit(0i64))?;
            when(x.clone().is_null(), cast(lit(ScalarValue::Null), target.clone())).otherwise(cast(e, target))?
        }
        // Through a double a decimal would lose digits: refused, not rounded.
        ("trunc", [_, ..]) if matches!(types[0], DataType::Decimal128(..)) => {
            return datafusion::common::plan_err!(
                "NOT_SUPPORTED: function truncate is not supported for {}",
                super::types::trino_type(&types[0])
            );
        }
        ("array_sort", [a]) => nested::array_sort(a.clone(), lit("ASC"), lit("NULLS LAST")),
        ("greatest" | "least", _) if args.len() > 1 => {
            let any_null = args.iter().cloned().map(Expr::is_null).reduce(Expr::or).expect("two or more arguments");
            when(any_null, lit(ScalarValue::Null)).otherwise(Expr::ScalarFunction(f.clone()))?
        }
        ("array_has", [a, x]) if is_list(&types[0]) => when(x.clone().is_null(), null_bool())
            .when(Expr::ScalarFunction(f.clone()), lit(true))
            .when(has_null(a.clone()), null_bool())
            .otherwise(lit(false))?,
        ("array_has_any", [a, b]) if is_list(&types[0]) && is_list(&types[1]) => when(Expr::ScalarFunction(f.clone()), lit(true))
            .when(has_null(a.clone()).or(has_null(b.clone())), null_bool())
            .otherwise(lit(false))?,
        _ => return unchanged(),
    };
    Ok(Transformed::yes(e))
}
