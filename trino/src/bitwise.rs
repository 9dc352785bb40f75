//! Trino's bitwise functions (functions/bitwise.md), two's complement over
//! bigint; the shifts keep their argument's width (`bitwise_left_shift` of
//! an integer shifts 32 bits). The aggregates `bitwise_and_agg` and
//! `bitwise_or_agg` are DataFusion's `bit_and` / `bit_or` under Trino's
//! names, as `variance` is `var_samp`.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Result, exec_err};
use datafusion::functions_aggregate::bit_and_or_xor::{bit_and_udaf, bit_or_udaf};
use datafusion::functions_aggregate::variance::var_samp_udaf;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

use super::udf::{any, ret_first, ret_i64, udf};

pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        udf("bit_count", &[], any(2), ret_i64, bit_count),
        udf("bitwise_and", &[], any(2), ret_i64, |a, _| pairwise(a, |x, y| Ok(x & y))),
        udf("bitwise_or", &[], any(2), ret_i64, |a, _| pairwise(a, |x, y| Ok(x | y))),
        udf("bitwise_xor", &[], any(2), ret_i64, |a, _| pairwise(a, |x, y| Ok(x ^ y))),
        udf("bitwise_not", &[], any(1), ret_i64, bitwise_not),
        udf("bitwise_left_shift", &[], any(2), ret_first, |a, t| shift(a, t, left_shift)),
        udf("bitwise_right_shift", &[], any(2), ret_first, |a, t| shift(a, t, logical_right_shift)),
        udf("bitwise_right_shift_arithmetic", &[], any(2), ret_first, |a, t| shift(a, t, arithmetic_right_shift)),
    ]
}

/// DataFusion's aggregates under Trino's names.
pub(crate) fn aggregates() -> Vec<AggregateUDF> {
    vec![
        bit_and_udaf().as_ref().clone().with_aliases(["bitwise_and_agg"]),
        bit_or_udaf().as_ref().clone().with_aliases(["bitwise_or_agg"]),
        var_samp_udaf().as_ref().clone().with_aliases(["variance"]),
    ]
}

fn ints(a: &ArrayRef) -> Result<Int64Array> {
    Ok(cast(a, &DataType::Int64)?.as_primitive::<Int64Type>().clone())
}

/// `f` over two bigint arguments, NULL where either is.
fn pairwise(args: &[ArrayRef], f: impl Fn(i64, i64) -> Result<i64>) -> Result<ArrayRef> {
    let (a, b) = (ints(&args[0])?, ints(&args[1])?);
    let out: Int64Array = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => f(x, y).map(Some),
            _ => Ok(None),
        })
        .collect::<Result<_>>()?;
    Ok(Arc::new(out))
}

fn bitwise_not(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    Ok(Arc::new(ints(&args[0])?.iter().map(|x| x.map(|x| !x)).collect::<Int64Array>()))
}

/// `bit_count(x, bits)`: the bits set in `x` as a `bits`-bit signed integer.
fn bit_count(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    pairwise(args, |num, bits| {
        if bits == 64 {
            return Ok(i64::from(num.count_ones()));
        }
        if !(2..64).contains(&bits) {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: Bits specified in bit_count must be between 2 and 64, got {bits}");
        }
        let low = (1i64 << (bits - 1)) - 1;
        if num > low || num < !low {
            return exec_err!(
                "INVALID_FUNCTION_ARGUMENT: Number must be representable with the bits specified. {num} cannot be represented with {bits} bits"
            );
        }
        Ok(i64::from((num & ((1i64 << bits) - 1)).count_ones()))
    })
}

/// Bits of an integer type (bigint for anything else).
fn width(t: &DataType) -> u32 {
    match t {
        DataType::Int8 => 8,
        DataType::Int16 => 16,
        DataType::Int32 => 32,
        _ => 64,
    }
}

/// The low `w` bits of `x` as a signed `w`-bit value.
fn sign_extend(x: i64, w: u32) -> i64 {
    if w == 64 { x } else { (x << (64 - w)) >> (64 - w) }
}

fn left_shift(v: i64, s: i64, w: u32) -> i64 {
    if s >= i64::from(w) { 0 } else { sign_extend(v.wrapping_shl(s as u32 & (w - 1)), w) }
}

fn logical_right_shift(v: i64, s: i64, w: u32) -> i64 {
    if s >= i64::from(w) {
        return 0;
    }
    let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
    sign_extend((((v as u64) & mask) >> (s as u32 & (w - 1))) as i64, w)
}

fn arithmetic_right_shift(v: i64, s: i64, w: u32) -> i64 {
    if s >= i64::from(w) {
        return if v < 0 { -1 } else { 0 };
    }
    v >> (s as u32 & (w - 1))
}

/// A shift of `value` (keeping its type) by `shift` bits.
fn shift(args: &[ArrayRef], types: &[DataType], op: fn(i64, i64, u32) -> i64) -> Result<ArrayRef> {
    let w = width(&types[0]);
    let out = pairwise(args, |v, s| Ok(op(v, s, w)))?;
    match &types[0] {
        t @ (DataType::Int8 | DataType::Int16 | DataType::Int32) => Ok(cast(&out, t)?),
        _ => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_keep_the_width() {
        assert_eq!(logical_right_shift(-1, 1, 8), 127);
        assert_eq!(logical_right_shift(-45, 64, 64), 0);
        assert_eq!(logical_right_shift(-1, 1, 64), i64::MAX);
        assert_eq!(arithmetic_right_shift(-45, 64, 64), -1);
        assert_eq!(arithmetic_right_shift(12, 64, 64), 0);
        assert_eq!(left_shift(1, 31, 32), i64::from(i32::MIN));
        assert_eq!(left_shift(5, 2, 64), 20);
        assert_eq!(left_shift(5, 64, 64), 0);
    }
}
