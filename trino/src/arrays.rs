//! Trino's array and vector functions DataFusion lacks or answers
//! differently: `slice`, `trim_array`, `cosine_similarity`, and the
//! math functions `width_bucket`, `from_base`, `to_base`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, StringArray, UInt32Array};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::ScalarUDF;

use super::udf::{any, one_of, ret_f64, ret_first, ret_i64, ret_utf8, udf};

pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        udf("slice", &[], any(3), ret_first, slice),
        udf("trim_array", &[], any(2), ret_first, trim_array),
        udf("cosine_similarity", &[], any(2), ret_f64, cosine_similarity),
        udf("width_bucket", &[], one_of(&[2, 4]), ret_i64, width_bucket),
        udf("from_base", &[], any(2), ret_i64, from_base),
        udf("to_base", &[], any(2), ret_utf8, to_base),
    ]
}

fn ints(a: &ArrayRef) -> Result<Int64Array> {
    Ok(cast(a, &DataType::Int64)?.as_primitive::<Int64Type>().clone())
}

fn doubles(a: &ArrayRef) -> Result<Float64Array> {
    Ok(cast(a, &DataType::Float64)?.as_primitive::<Float64Type>().clone())
}

fn list<'a>(name: &str, a: &'a ArrayRef) -> Result<&'a ListArray> {
    match a.as_list_opt::<i32>() {
        Some(l) => Ok(l),
        None => plan_err!("{name} expects an array, got {}", a.data_type()),
    }
}

/// A list of the same type keeping, per row, `range(row, length)` of its
/// elements (NULL where it gives `None`).
fn sub_lists(l: &ListArray, range: impl Fn(usize, usize) -> Result<Option<(usize, usize)>>) -> Result<ArrayRef> {
    let DataType::List(item) = l.data_type() else { return exec_err!("expected an array") };
    let (mut idx, mut offsets, mut valid) = (vec![], vec![0i32], vec![]);
    for r in 0..l.len() {
        let here = if l.is_valid(r) { range(r, l.value_length(r) as usize)? } else { None };
        if let Some((from, n)) = here {
            let start = l.value_offsets()[r] as usize + from;
            idx.extend((start..start + n).map(|i| i as u32));
        }
        offsets.push(idx.len() as i32);
        valid.push(here.is_some());
    }
    let values = take(l.values().as_ref(), &UInt32Array::from(idx), None)?;
    Ok(Arc::new(ListArray::try_new(Arc::clone(item), OffsetBuffer::new(offsets.into()), values, Some(NullBuffer::from(valid)))?))
}

/// `slice(x, start, length)`: `length` elements from `start` (1-based;
/// negative counts from the end).
fn slice(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    if args[0].data_type() == &DataType::Null {
        return Ok(Arc::clone(&args[0]));
    }
    let l = list("slice", &args[0])?;
    let (start, length) = (ints(&args[1])?, ints(&args[2])?);
    sub_lists(l, |r, len| {
        if start.is_null(r) || length.is_null(r) {
            return Ok(None);
        }
        let (s, n) = (start.value(r), length.value(r));
        if s == 0 {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: SQL array indices start at 1");
        }
        if n < 0 {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: length must be greater than or equal to 0");
        }
        let from = if s > 0 { s - 1 } else { len as i64 + s };
        if from < 0 || from >= len as i64 {
            return Ok(Some((0, 0)));
        }
        Ok(Some((from as usize, (n as usize).min(len - from as usize))))
    })
}

/// `trim_array(x, n)`: `x` without its last `n` elements.
fn trim_array(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    if args[0].data_type() == &DataType::Null {
        return Ok(Arc::clone(&args[0]));
    }
    let l = list("trim_array", &args[0])?;
    let n = ints(&args[1])?;
    sub_lists(l, |r, len| {
        if n.is_null(r) {
            return Ok(None);
        }
        let k = n.value(r);
        if k < 0 || k as usize > len {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: size must not be negative or exceed array cardinality {len}: {k}");
        }
        Ok(Some((0, len - k as usize)))
    })
}

/// `cosine_similarity` of two dense vectors (arrays) or two sparse ones
/// (maps from a name to a value): dot product over the norms' product.
fn cosine_similarity(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let (a, b) = (&args[0], &args[1]);
    let mut out = Vec::with_capacity(a.len());
    match (a.data_type(), b.data_type()) {
        (DataType::List(_), DataType::List(_)) => {
            let (a, b) = (a.as_list::<i32>(), b.as_list::<i32>());
            for r in 0..a.len() {
                if a.is_null(r) || b.is_null(r) {
                    out.push(None);
                    continue;
                }
                let (x, y) = (doubles(&a.value(r))?, doubles(&b.value(r))?);
                if x.len() != y.len() {
                    return exec_err!("INVALID_FUNCTION_ARGUMENT: The arguments to cosine_similarity must have the same length");
                }
                if x.null_count() > 0 || y.null_count() > 0 {
                    return exec_err!("INVALID_FUNCTION_ARGUMENT: Vectors cannot contain nulls");
                }
                let dot: f64 = x.values().iter().zip(y.values()).map(|(p, q)| p * q).sum();
                let norm = |v: &Float64Array| v.values().iter().map(|p| p * p).sum::<f64>().sqrt();
                out.push(Some(dot / (norm(&x) * norm(&y))));
            }
        }
        (DataType::Map(..), DataType::Map(..)) => {
            let (a, b) = (a.as_map(), b.as_map());
            let side = |m: &arrow::array::MapArray, r: usize| -> Result<Vec<(String, Option<f64>)>> {
                let entries = m.value(r);
                let keys = cast(entries.column(0), &DataType::Utf8)?;
                let values = doubles(entries.column(1))?;
                Ok(keys.as_string::<i32>().iter().zip(values.iter()).map(|(k, v)| (k.unwrap_or_default().to_owned(), v)).collect())
            };
            for r in 0..a.len() {
                if a.is_null(r) || b.is_null(r) {
                    out.push(None);
                    continue;
                }
                let (x, y) = (side(a, r)?, side(b, r)?);
                if x.iter().chain(&y).any(|(_, v)| v.is_none()) {
                    out.push(None);
                    continue;
                }
                let ym: std::collections::HashMap<&str, f64> = y.iter().map(|(k, v)| (k.as_str(), v.unwrap_or(0.0))).collect();
                let dot: f64 = x.iter().filter_map(|(k, v)| ym.get(k.as_str()).map(|w| v.unwrap_or(0.0) * w)).sum();
                let norm = |s: &[(String, Option<f64>)]| s.iter().map(|(_, v)| v.unwrap_or(0.0).powi(2)).sum::<f64>().sqrt();
                out.push(Some(dot / (norm(&x) * norm(&y))));
            }
        }
        (p, q) => return plan_err!("cosine_similarity expects two arrays or two maps, got {p} and {q}"),
    }
    Ok(Arc::new(Float64Array::from(out)))
}

/// `width_bucket(x, bound1, bound2, n)` (equal-width buckets between the
/// bounds, 0 below and n + 1 above) and `width_bucket(x, bins)` (bins sorted
/// ascending: the number of bins at or below `x`).
fn width_bucket(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let x = doubles(&args[0])?;
    let mut out = Vec::with_capacity(x.len());
    if let [_, bins] = args {
        let bins = list("width_bucket", bins)?;
        for r in 0..x.len() {
            if x.is_null(r) || bins.is_null(r) {
                out.push(None);
                continue;
            }
            let b = doubles(&bins.value(r))?;
            if b.null_count() > 0 {
                return exec_err!("INVALID_FUNCTION_ARGUMENT: Bin values cannot be NULL");
            }
            if x.value(r).is_nan() {
                return exec_err!("INVALID_FUNCTION_ARGUMENT: Operand cannot be NaN");
            }
            out.push(Some(b.values().partition_point(|v| *v <= x.value(r)) as i64));
        }
        return Ok(Arc::new(Int64Array::from(out)));
    }
    let (lo, hi, n) = (doubles(&args[1])?, doubles(&args[2])?, ints(&args[3])?);
    for r in 0..x.len() {
        if x.is_null(r) || lo.is_null(r) || hi.is_null(r) || n.is_null(r) {
            out.push(None);
            continue;
        }
        let (v, b1, b2, n) = (x.value(r), lo.value(r), hi.value(r), n.value(r));
        if n <= 0 {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: bucketCount must be greater than 0");
        }
        if v.is_nan() {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: operand must not be NaN");
        }
        if !b1.is_finite() || !b2.is_finite() {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: first bound and second bound must be finite");
        }
        if b1 == b2 {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: bounds cannot equal each other");
        }
        // Trino's arithmetic, in Trino's order.
        let bucket = if b1 < b2 {
            if v < b1 {
                0
            } else if v >= b2 {
                n + 1
            } else {
                (n as f64 * (v - b1) / (b2 - b1) + 1.0) as i64
            }
        } else if v > b1 {
            0
        } else if v <= b2 {
            n + 1
        } else {
            (n as f64 * (b1 - v) / (b1 - b2) + 1.0) as i64
        };
        out.push(Some(bucket));
    }
    Ok(Arc::new(Int64Array::from(out)))
}

fn radix(r: i64) -> Result<u32> {
    if !(2..=36).contains(&r) {
        return exec_err!("INVALID_FUNCTION_ARGUMENT: Radix must be between 2 and 36");
    }
    Ok(r as u32)
}

/// `from_base(string, radix)`: the bigint the digits spell, with an
/// optional sign.
fn from_base(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let s = cast(&args[0], &DataType::Utf8)?;
    let (s, r) = (s.as_string::<i32>(), ints(&args[1])?);
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        if s.is_null(i) || r.is_null(i) {
            out.push(None);
            continue;
        }
        let text = s.value(i);
        match i64::from_str_radix(text, radix(r.value(i))?) {
            Ok(v) if !text.starts_with('+') || text.len() > 1 => out.push(Some(v)),
            _ => return exec_err!("INVALID_FUNCTION_ARGUMENT: Not a valid base-{} number: {text}", r.value(i)),
        }
    }
    Ok(Arc::new(Int64Array::from(out)))
}

/// `to_base(x, radix)`: lower-case digits, `-` for a negative `x`.
fn to_base(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let (x, r) = (ints(&args[0])?, ints(&args[1])?);
    let mut out = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        if x.is_null(i) || r.is_null(i) {
            out.push(None);
            continue;
        }
        let base = radix(r.value(i))?;
        let (mut m, mut digits) = (x.value(i).unsigned_abs(), vec![]);
        loop {
            digits.push(std::char::from_digit((m % base as u64) as u32, base).unwrap_or('0'));
            m /= base as u64;
            if m == 0 {
                break;
            }
        }
        if x.value(i) < 0 {
            digits.push('-');
        }
        out.push(Some(digits.into_iter().rev().collect::<String>()));
    }
    Ok(Arc::new(StringArray::from(out)))
}
