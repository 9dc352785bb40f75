//! Trino's array and vector functions DataFusion lacks or answers
//! differently: `slice`, `trim_array`, `cosine_similarity`, and the
//! math functions `width_bucket`, `from_base`, `to_base`; `combinations`,
//! `ngrams`, `contains_sequence`, `array_histogram` and `zip`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, StringArray, UInt32Array};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::ScalarUDF;

use super::maps::{build_map, map_type};
use super::udf::{any, one_of, ret_bool, ret_f64, ret_first, ret_i64, ret_utf8, udf, variadic_any};

pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        udf("slice", &[], any(3), ret_first, slice),
        udf("trim_array", &[], any(2), ret_first, trim_array),
        udf("cosine_similarity", &[], any(2), ret_f64, cosine_similarity),
        udf("width_bucket", &[], one_of(&[2, 4]), ret_i64, width_bucket),
        udf("from_base", &[], any(2), ret_i64, from_base),
        udf("to_base", &[], any(2), ret_utf8, to_base),
        udf("combinations", &[], any(2), ret_list_of_first, combinations),
        udf("ngrams", &[], any(2), ret_list_of_first, ngrams),
        udf("contains_sequence", &[], any(2), ret_bool, contains_sequence),
        udf("array_histogram", &[], any(1), ret_histogram, array_histogram),
        udf("zip", &[], variadic_any(), ret_zip, zip),
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

fn ret_list_of_first(t: &[DataType]) -> Result<DataType> {
    Ok(DataType::new_list(t[0].clone(), true))
}

/// Per row, groups of element positions (relative to the row) → an array of
/// arrays of those elements; NULL rows stay NULL.
fn groups_of(l: &ListArray, groups: impl Fn(usize, usize) -> Result<Option<Vec<Vec<usize>>>>) -> Result<ArrayRef> {
    let DataType::List(item) = l.data_type() else { return exec_err!("expected an array") };
    let (mut idx, mut inner, mut outer, mut valid) = (vec![], vec![0i32], vec![0i32], vec![]);
    for r in 0..l.len() {
        let here = if l.is_valid(r) { groups(r, l.value_length(r) as usize)? } else { None };
        let start = l.value_offsets()[r] as usize;
        for g in here.iter().flatten() {
            idx.extend(g.iter().map(|&i| (start + i) as u32));
            inner.push(idx.len() as i32);
        }
        outer.push((inner.len() - 1) as i32);
        valid.push(here.is_some());
    }
    let values = take(l.values().as_ref(), &UInt32Array::from(idx), None)?;
    let lists = ListArray::try_new(Arc::clone(item), OffsetBuffer::new(inner.into()), values, None)?;
    let field = Arc::new(arrow::datatypes::Field::new_list_field(lists.data_type().clone(), true));
    Ok(Arc::new(ListArray::try_new(field, OffsetBuffer::new(outer.into()), Arc::new(lists), Some(NullBuffer::from(valid)))?))
}

/// `combinations(array, n)`: every n-element sub-group, in the order of the
/// positions chosen (n at most 5, fewer than 100,000 groups).
fn combinations(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let (l, n) = (list("combinations", &args[0])?, ints(&args[1])?);
    groups_of(l, |r, len| {
        if n.is_null(r) {
            return Ok(None);
        }
        let k = n.value(r);
        if k < 0 {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: combination size must not be negative: {k}");
        }
        if k > 5 {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: combination size must not exceed 5: {k}");
        }
        let k = k as usize;
        if k > len {
            return Ok(Some(vec![]));
        }
        let count = (0..k).fold(1u128, |c, i| c * (len - i) as u128 / (i + 1) as u128);
        if count >= 100_000 {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: combinations exceed max size");
        }
        let mut out = Vec::with_capacity(count as usize);
        let mut pick: Vec<usize> = (0..k).collect();
        loop {
            out.push(pick.clone());
            // The rightmost position that can still move right.
            let Some(i) = (0..k).rev().find(|&i| pick[i] < len - k + i) else { break };
            pick[i] += 1;
            for j in i + 1..k {
                pick[j] = pick[j - 1] + 1;
            }
        }
        Ok(Some(out))
    })
}

/// `ngrams(array, n)`: the runs of n adjacent elements (the whole array when
/// it is shorter than n).
fn ngrams(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let (l, n) = (list("ngrams", &args[0])?, ints(&args[1])?);
    groups_of(l, |r, len| {
        if n.is_null(r) {
            return Ok(None);
        }
        let k = n.value(r);
        if k <= 0 {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: N must be positive");
        }
        let k = (k as usize).min(len);
        if k == 0 {
            return Ok(Some(vec![vec![]]));
        }
        Ok(Some((0..=len - k).map(|s| (s..s + k).collect()).collect()))
    })
}

/// `contains_sequence(x, seq)`: `seq` appears in `x` as consecutive
/// elements (NULL elements equal to each other).
fn contains_sequence(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let (x, seq) = (list("contains_sequence", &args[0])?, list("contains_sequence", &args[1])?);
    let mut out = Vec::with_capacity(x.len());
    for r in 0..x.len() {
        if x.is_null(r) || seq.is_null(r) {
            out.push(None);
            continue;
        }
        let (a, b) = (x.value(r), seq.value(r));
        let b = if b.data_type() != a.data_type() { cast(&b, a.data_type())? } else { b };
        let (na, nb) = (a.len(), b.len());
        let mut found = nb == 0;
        if !found && nb <= na {
            'start: for start in 0..=na - nb {
                for j in 0..nb {
                    if ScalarValue::try_from_array(&a, start + j)? != ScalarValue::try_from_array(&b, j)? {
                        continue 'start;
                    }
                }
                found = true;
                break;
            }
        }
        out.push(Some(found));
    }
    Ok(Arc::new(arrow::array::BooleanArray::from(out)))
}

fn element_of(t: &DataType) -> DataType {
    match t {
        DataType::List(f) | DataType::LargeList(f) => f.data_type().clone(),
        _ => DataType::Null,
    }
}

fn ret_histogram(t: &[DataType]) -> Result<DataType> {
    Ok(map_type(&element_of(&t[0]), &DataType::Int64))
}

/// `array_histogram(x)`: each distinct non-NULL element and how often it
/// occurs, in the order first seen.
fn array_histogram(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    let l = list("array_histogram", &args[0])?;
    let (mut keys, mut counts, mut offsets, mut valid) = (vec![], vec![], vec![0i32], vec![]);
    for r in 0..l.len() {
        if l.is_valid(r) {
            let items = l.value(r);
            let mut seen: Vec<(ScalarValue, i64)> = Vec::new();
            for i in 0..items.len() {
                if items.is_null(i) {
                    continue;
                }
                let v = ScalarValue::try_from_array(&items, i)?;
                match seen.iter_mut().find(|(k, _)| *k == v) {
                    Some((_, c)) => *c += 1,
                    None => seen.push((v, 1)),
                }
            }
            for (k, c) in seen {
                keys.push(k);
                counts.push(c);
            }
        }
        offsets.push(keys.len() as i32);
        valid.push(l.is_valid(r));
    }
    let key_type = element_of(&types[0]);
    let keys = if keys.is_empty() { arrow::array::new_empty_array(&key_type) } else { ScalarValue::iter_to_array(keys)? };
    build_map(&ret_histogram(types)?, offsets, keys, Arc::new(Int64Array::from(counts)), Some(NullBuffer::from(valid)))
}

fn ret_zip(t: &[DataType]) -> Result<DataType> {
    let fields: Vec<arrow::datatypes::Field> =
        t.iter().enumerate().map(|(i, t)| arrow::datatypes::Field::new(format!("field{i}"), element_of(t), true)).collect();
    Ok(DataType::new_list(DataType::Struct(fields.into()), true))
}

/// `zip(a1, a2, …)`: an array of rows, the i-th holding the i-th element of
/// each array (NULL past the end of a shorter one).
fn zip(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    if args.len() < 2 {
        return plan_err!("zip takes at least two arrays");
    }
    let lists: Vec<&ListArray> = args.iter().map(|a| list("zip", a)).collect::<Result<_>>()?;
    let DataType::List(row_field) = ret_zip(types)? else { return exec_err!("zip: unexpected type") };
    let DataType::Struct(fields) = row_field.data_type() else { return exec_err!("zip: unexpected type") };
    let rows = lists[0].len();
    let mut offsets = vec![0i32];
    let mut valid = vec![];
    // Per input array, the positions (None: NULL filler) taken for each output row.
    let mut picks: Vec<Vec<Option<u32>>> = vec![vec![]; lists.len()];
    for r in 0..rows {
        let null = lists.iter().any(|l| l.is_null(r));
        let width = if null { 0 } else { lists.iter().map(|l| l.value_length(r) as usize).max().unwrap_or(0) };
        for (k, l) in lists.iter().enumerate() {
            let (start, len) = (l.value_offsets()[r] as usize, l.value_length(r) as usize);
            picks[k].extend((0..width).map(|i| (i < len).then_some((start + i) as u32)));
        }
        offsets.push(offsets.last().copied().unwrap_or(0) + width as i32);
        valid.push(!null);
    }
    let columns: Vec<ArrayRef> = lists
        .iter()
        .zip(&picks)
        .map(|(l, p)| take(l.values().as_ref(), &UInt32Array::from(p.clone()), None))
        .collect::<std::result::Result<_, _>>()?;
    let n = picks[0].len();
    let rows_array = arrow::array::StructArray::try_new(fields.clone(), columns, None)?;
    debug_assert_eq!(rows_array.len(), n);
    Ok(Arc::new(ListArray::try_new(row_field, OffsetBuffer::new(offsets.into()), Arc::new(rows_array), Some(NullBuffer::from(valid)))?))
}
