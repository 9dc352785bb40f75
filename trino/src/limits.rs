//! Functions whose output size an argument decides, bounded.
//!
//! Trino's own limits where Trino has them: `sequence` and `repeat` make at
//! most 10,000 entries. Every other function whose output a literal can
//! size (`lpad`, `rpad`, `replace`, and DataFusion's `array_repeat`,
//! `array_resize`, `range`, `generate_series`) is wrapped by [`Bounded`]:
//! before the function runs, its output is sized from the arguments; no
//! single value may exceed [`MAX_VALUE_BYTES`] (Athena's limit on a row or
//! column), and the whole output of the call must fit in the query memory
//! pool, where it is reserved while it is built. `levenshtein` (and Trino's
//! `levenshtein_distance`) refuses inputs whose lengths multiply past a
//! million, as Trino does: its time grows with that product.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, ListArray, UInt32Array};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type, IntervalMonthDayNanoType, IntervalUnit, TimeUnit};
use chrono::{DateTime, Months, NaiveDateTime};
use datafusion::common::utils::{adjust_offsets_for_slice, list_values_row_number};
use datafusion::common::{DataFusionError, Result, exec_err};
use datafusion::execution::FunctionRegistry;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, HigherOrderFunctionArgs, HigherOrderReturnFieldArgs, HigherOrderSignature, HigherOrderUDF,
    HigherOrderUDFImpl, LambdaParametersProgress, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, ValueOrLambda,
};

use super::udf::{one_of, udf};

/// Entries in a `sequence` or `repeat` result (Trino's limit).
pub const MAX_ARRAY_ENTRIES: usize = 10_000;

/// Bytes of one value a function may build (Athena: 32 MB per row or column).
pub const MAX_VALUE_BYTES: u64 = 32 << 20;

/// Bytes of a value a function may build from constants alone. Such a
/// value is folded into the plan at planning time, where every rewrite
/// copies it, and is then repeated for every row of a batch.
pub const MAX_CONSTANT_BYTES: u64 = 4 << 20;

/// Largest product of the two lengths `levenshtein` accepts (Trino's limit).
const MAX_LEVENSHTEIN_CELLS: u64 = 1_000_000;

pub(crate) fn too_big(name: &str, bytes: u64, what: &str, limit: u64) -> DataFusionError {
    DataFusionError::Execution(format!(
        "EXCEEDED_FUNCTION_MEMORY_LIMIT: {name} would build a {what} larger than {limit} bytes, the most a {what} may hold ({bytes} bytes counted)"
    ))
}

/// What a call will build: the largest value and the whole output, in bytes.
#[derive(Debug, Default, Clone, Copy)]
struct Size {
    largest: u64,
    total: u64,
}

impl Size {
    fn add(&mut self, bytes: u64) {
        self.largest = self.largest.max(bytes);
        self.total = self.total.saturating_add(bytes);
    }
}

type Sizer = fn(&str, &[ArrayRef]) -> Result<Size>;

/// A DataFusion function run only when its output, sized beforehand, fits.
#[derive(Debug)]
pub(crate) struct Bounded {
    inner: Arc<ScalarUDF>,
    aliases: Vec<String>,
    size: Sizer,
    pool: Arc<dyn MemoryPool>,
}

super::udf::identity_by_name!(Bounded, |f| f.inner.name());

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.inner().coerce_types(arg_types)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let constant = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let size = (self.size)(self.name(), &arrays)?;
        if size.largest > MAX_VALUE_BYTES {
            return Err(too_big(self.name(), size.largest, "value", MAX_VALUE_BYTES));
        }
        if constant && size.largest > MAX_CONSTANT_BYTES {
            return Err(too_big(self.name(), size.largest, "constant", MAX_CONSTANT_BYTES));
        }
        let reservation = MemoryConsumer::new(self.name()).register(&self.pool);
        reservation.try_grow(size.total as usize)?;
        let out = self.inner.invoke_with_args(args);
        drop(reservation);
        out
    }
}

fn i64s(a: &ArrayRef) -> Result<Int64Array> {
    Ok(arrow::compute::cast(a, &DataType::Int64)?.as_primitive::<Int64Type>().clone())
}

fn utf8(a: &ArrayRef) -> Result<arrow::array::StringArray> {
    Ok(arrow::compute::cast(a, &DataType::Utf8)?.as_string::<i32>().clone())
}

/// `lpad(s, n[, pad])`, `rpad(…)`: `n` characters of at most 4 bytes (1 when ASCII).
fn pad_size(_: &str, args: &[ArrayRef]) -> Result<Size> {
    let n = i64s(&args[1])?;
    let ascii = args.iter().enumerate().filter(|(i, _)| *i != 1).all(|(_, a)| utf8(a).is_ok_and(|s| s.is_ascii()));
    let width = if ascii { 1 } else { 4 };
    let mut size = Size::default();
    for v in n.iter().flatten() {
        size.add(v.max(0) as u64 * width);
    }
    Ok(size)
}

/// `replace(s, from, to)`: exactly what Rust's `str::replace` makes.
fn replace_size(_: &str, args: &[ArrayRef]) -> Result<Size> {
    let (s, from, to) = (utf8(&args[0])?, utf8(&args[1])?, utf8(&args[2])?);
    let mut size = Size::default();
    for i in 0..s.len() {
        if s.is_null(i) || from.is_null(i) || to.is_null(i) {
            continue;
        }
        let (s, from, to) = (s.value(i), from.value(i), to.value(i));
        let bytes = if to.len() <= from.len() {
            s.len()
        } else {
            let count = if from.is_empty() { s.chars().count() + 1 } else { s.matches(from).count() };
            s.len() + count * (to.len() - from.len())
        };
        size.add(bytes as u64);
    }
    Ok(size)
}

/// Average bytes of one element of `a`.
fn element_bytes(a: &ArrayRef) -> u64 {
    if a.is_empty() { 8 } else { (a.get_array_memory_size() / a.len()).max(1) as u64 }
}

/// `array_repeat(x, n)`: `n` copies of `x`.
fn array_repeat_size(_: &str, args: &[ArrayRef]) -> Result<Size> {
    let each = element_bytes(&args[0]);
    let mut size = Size::default();
    for n in i64s(&args[1])?.iter().flatten() {
        size.add((n.max(0) as u64).saturating_mul(each));
    }
    Ok(size)
}

/// `array_resize(a, n[, x])`: `n` elements.
fn array_resize_size(_: &str, args: &[ArrayRef]) -> Result<Size> {
    let each = match args[0].data_type() {
        DataType::List(_) => element_bytes(args[0].as_list::<i32>().values()),
        _ => 8,
    };
    let mut size = Size::default();
    for n in i64s(&args[1])?.iter().flatten() {
        size.add((n.max(0) as u64).saturating_mul(each));
    }
    Ok(size)
}

/// `range` / `generate_series` as scalar functions: counted like `sequence`.
fn series_size(name: &str, args: &[ArrayRef]) -> Result<Size> {
    let mut size = Size::default();
    if args.len() < 2 {
        return Ok(size);
    }
    let rows = args[0].len();
    for i in 0..rows {
        if args.iter().any(|a| a.is_null(i)) {
            continue;
        }
        let step = args.get(2).map(|a| a.slice(i, 1));
        let entries = count_entries(name, &args[0].slice(i, 1), &args[1].slice(i, 1), step.as_ref(), u64::MAX / 16)?;
        size.add(entries.saturating_mul(8));
    }
    Ok(size)
}

/// `regexp_replace(s, pattern[, replacement])`: every match replaced by the
/// replacement's text plus, per `$` reference, up to the match itself.
/// Counted from the matches only where the quick bound is too large.
fn regexp_replace_size(_: &str, args: &[ArrayRef]) -> Result<Size> {
    let (s, p) = (utf8(&args[0])?, utf8(&args[1])?);
    let r = args.get(2).map(utf8).transpose()?;
    let at = |len: usize, i: usize| if len == 1 { 0 } else { i };
    let mut compiled: Option<(String, regex::Regex)> = None;
    let mut size = Size::default();
    for i in 0..s.len() {
        let (pi, ri) = (at(p.len(), i), r.as_ref().map_or(0, |r| at(r.len(), i)));
        if s.is_null(i) || p.is_null(pi) || r.as_ref().is_some_and(|r| r.is_null(ri)) {
            continue;
        }
        let (text, rep) = (s.value(i), r.as_ref().map_or("", |r| r.value(ri)));
        let refs = rep.matches('$').count() as u64;
        let (n, rl) = (text.len() as u64, rep.len() as u64);
        let quick = n + (n + 1) * rl + refs * n;
        let bytes = if quick <= MAX_VALUE_BYTES {
            quick
        } else {
            if compiled.as_ref().is_none_or(|(k, _)| k != p.value(pi)) {
                let re = regex::Regex::new(p.value(pi))
                    .map_err(|e| DataFusionError::Execution(format!("invalid regular expression {:?}: {e}", p.value(pi))))?;
                compiled = Some((p.value(pi).to_owned(), re));
            }
            let re = &compiled.as_ref().map(|(_, re)| re).ok_or_else(|| DataFusionError::Internal("pattern".into()))?;
            // Stops once past the cap: the call fails either way.
            let mut total = n;
            for m in re.find_iter(text) {
                total = total.saturating_add(rl + refs * m.len() as u64);
                if total > MAX_VALUE_BYTES {
                    break;
                }
            }
            total
        };
        size.add(bytes);
    }
    Ok(size)
}

fn levenshtein_size(name: &str, args: &[ArrayRef]) -> Result<Size> {
    let (a, b) = (utf8(&args[0])?, utf8(&args[1])?);
    for i in 0..a.len() {
        if a.is_valid(i) && b.is_valid(i) {
            let cells = a.value(i).chars().count() as u64 * b.value(i).chars().count() as u64;
            if cells > MAX_LEVENSHTEIN_CELLS {
                return exec_err!("INVALID_FUNCTION_ARGUMENT: The combined inputs for Levenshtein distance are too large ({name})");
            }
        }
    }
    Ok(Size { largest: 8, total: 8 * a.len() as u64 })
}

/// `sequence(start, stop[, step])`: 8 bytes an entry; more than
/// [`MAX_ARRAY_ENTRIES`] entries is Trino's error.
fn sequence_size(name: &str, args: &[ArrayRef]) -> Result<Size> {
    let mut size = Size::default();
    for i in 0..args[0].len() {
        if args.iter().any(|a| a.is_null(i)) {
            continue;
        }
        let step = args.get(2).map(|a| a.slice(i, 1));
        let entries = count_entries(name, &args[0].slice(i, 1), &args[1].slice(i, 1), step.as_ref(), MAX_ARRAY_ENTRIES as u64)?;
        size.add(entries * 8);
    }
    Ok(size)
}

/// `repeat(x, n)`: `n` copies of `x`, at most [`MAX_ARRAY_ENTRIES`].
fn repeat_size(_: &str, args: &[ArrayRef]) -> Result<Size> {
    let each = element_bytes(&args[0]);
    let mut size = Size::default();
    for n in i64s(&args[1])?.iter().flatten() {
        repeat_count(n)?;
        size.add(n as u64 * each);
    }
    Ok(size)
}

fn repeat_count(n: i64) -> Result<usize> {
    if n < 0 {
        return exec_err!("INVALID_FUNCTION_ARGUMENT: count argument of repeat function must be greater than or equal to 0");
    }
    if n as usize > MAX_ARRAY_ENTRIES {
        return exec_err!("INVALID_FUNCTION_ARGUMENT: count argument of repeat function must be less than or equal to {MAX_ARRAY_ENTRIES}");
    }
    Ok(n as usize)
}

/// `transform(array, x -> body)` (DataFusion's `array_transform`), with the
/// one step that can amplify bounded: a body that is a constant is
/// repeated once per element, so it must fit, that many times, in a value
/// and in the pool. Otherwise it computes what `array_transform` does.
#[derive(Debug)]
struct BoundedTransform {
    inner: Arc<HigherOrderUDF>,
    pool: Arc<dyn MemoryPool>,
}

super::udf::identity_by_name!(BoundedTransform, |f| f.inner.name());

impl HigherOrderUDFImpl for BoundedTransform {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.inner().aliases()
    }
    fn signature(&self) -> &HigherOrderSignature {
        self.inner.inner().signature()
    }
    fn coerce_value_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.inner().coerce_value_types(arg_types)
    }
    fn lambda_parameters(&self, step: usize, fields: &[ValueOrLambda<FieldRef, Option<FieldRef>>]) -> Result<LambdaParametersProgress> {
        self.inner.inner().lambda_parameters(step, fields)
    }
    fn return_field_from_args(&self, args: HigherOrderReturnFieldArgs) -> Result<FieldRef> {
        self.inner.inner().return_field_from_args(args)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.inner().documentation()
    }
    fn invoke_with_args(&self, args: HigherOrderFunctionArgs) -> Result<ColumnarValue> {
        let (Some(ValueOrLambda::Value(list)), Some(ValueOrLambda::Lambda(lambda))) = (args.args.first(), args.args.get(1)) else {
            return self.inner.inner().invoke_with_args(args);
        };
        let list_array = list.to_array(args.number_rows)?;
        let DataType::List(field) = args.return_field.data_type() else {
            return self.inner.inner().invoke_with_args(args);
        };
        let Some(list) = list_array.as_list_opt::<i32>() else {
            return self.inner.inner().invoke_with_args(args);
        };
        if list.null_count() == list.len() {
            return Ok(ColumnarValue::Array(arrow::array::new_null_array(args.return_field.data_type(), list.len())));
        }
        let offsets = list.value_offsets();
        let (first, last) = (offsets[0] as usize, offsets[list.len()] as usize);
        let values = list.values().slice(first, last - first);
        let entries = values.len();
        let values_param = || Ok(Arc::clone(&values));
        let evaluated = lambda.evaluate(&[&values_param], |arrays| {
            // Captured columns follow the elements: one copy per element of their row.
            let indices = list_values_row_number(&list_array)?;
            Ok(arrow::compute::take_arrays(arrays, &indices, None)?)
        })?;
        let _reservation = if let ColumnarValue::Scalar(v) = &evaluated {
            let bytes = (v.size() as u64).saturating_mul(entries as u64);
            let per_row = (v.size() as u64).saturating_mul(list.iter().map(|l| l.map_or(0, |l| l.len())).max().unwrap_or(0) as u64);
            if per_row > MAX_VALUE_BYTES {
                return Err(too_big(self.name(), per_row, "value", MAX_VALUE_BYTES));
            }
            let r = MemoryConsumer::new(self.name()).register(&self.pool);
            r.try_grow(bytes as usize)?;
            Some(r)
        } else {
            None
        };
        let transformed = evaluated.into_array(entries)?;
        let out = ListArray::try_new(Arc::clone(field), adjust_offsets_for_slice(list), transformed, list.nulls().cloned())?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// Replaces DataFusion's functions that an argument can make unbounded with
/// [`Bounded`] wrappers drawing on `pool`, and adds Trino's `sequence` and
/// `repeat` (an array, as in Trino), bounded the same way.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext, pool: Arc<dyn MemoryPool>) {
    let own = [
        (Arc::new(udf("sequence", &[], one_of(&[2, 3]), ret_sequence, sequence)), sequence_size as Sizer),
        (Arc::new(udf("repeat", &[], one_of(&[2]), ret_repeat, repeat)), repeat_size as Sizer),
    ];
    let builtin: [(&str, &[&str], Sizer); 9] = [
        ("regexp_replace", &[], regexp_replace_size),
        ("lpad", &[], pad_size),
        ("rpad", &[], pad_size),
        ("replace", &[], replace_size),
        ("array_repeat", &[], array_repeat_size),
        ("array_resize", &[], array_resize_size),
        ("range", &[], series_size),
        ("generate_series", &[], series_size),
        ("levenshtein", &["levenshtein_distance"], levenshtein_size),
    ];
    let wrapped = builtin.into_iter().filter_map(|(name, extra, size)| {
        let inner = ctx.udf(name).ok()?;
        let mut aliases = inner.aliases().to_vec();
        aliases.extend(extra.iter().map(|a| (*a).to_owned()));
        Some((inner, aliases, size))
    });
    for (inner, aliases, size) in own.into_iter().map(|(u, s)| (u, vec![], s)).chain(wrapped) {
        ctx.register_udf(ScalarUDF::new_from_impl(Bounded { inner, aliases, size, pool: Arc::clone(&pool) }));
    }
    if let Ok(inner) = ctx.higher_order_function("array_transform") {
        ctx.register_higher_order_function(Arc::new(HigherOrderUDF::new_from_impl(BoundedTransform { inner, pool })));
    }
}

fn ret_sequence(t: &[DataType]) -> Result<DataType> {
    let item = match &t[0] {
        t if t.is_integer() || t.is_null() => DataType::Int64,
        t @ (DataType::Date32 | DataType::Timestamp(..)) => t.clone(),
        other => return exec_err!("sequence needs integers, dates or timestamps, not {other}"),
    };
    Ok(DataType::List(Arc::new(Field::new_list_field(item, true))))
}

fn ret_repeat(t: &[DataType]) -> Result<DataType> {
    Ok(DataType::List(Arc::new(Field::new_list_field(t[0].clone(), true))))
}

/// One step of a date or timestamp sequence.
#[derive(Debug, Clone, Copy)]
struct Step {
    months: i32,
    days: i32,
    nanos: i64,
}

const DAY_NANOS: i128 = 86_400_000_000_000;

impl Step {
    fn of(a: &ArrayRef) -> Result<Step> {
        let a = arrow::compute::cast(a, &DataType::Interval(IntervalUnit::MonthDayNano))
            .map_err(|_| DataFusionError::Execution(format!("sequence step must be an interval, not {}", a.data_type())))?;
        let v = a.as_primitive::<IntervalMonthDayNanoType>().value(0);
        Ok(Step { months: v.months, days: v.days, nanos: v.nanoseconds })
    }

    /// +1 or -1; zero or mixed signs are errors.
    fn direction(&self) -> Result<i32> {
        let signs = [self.months.signum() as i64, self.days.signum() as i64, self.nanos.signum()];
        let pos = signs.contains(&1);
        let neg = signs.contains(&-1);
        match (pos, neg) {
            (false, false) => exec_err!("INVALID_FUNCTION_ARGUMENT: step must not be zero"),
            (true, true) => exec_err!("INVALID_FUNCTION_ARGUMENT: sequence step must not mix positive and negative parts"),
            (true, false) => Ok(1),
            (false, true) => Ok(-1),
        }
    }

    /// `start + k × step` in nanoseconds since the epoch (months by calendar).
    fn nth(&self, start: i128, k: i64) -> Option<i128> {
        let fixed = (self.days as i128 * DAY_NANOS + self.nanos as i128) * k as i128;
        if self.months == 0 {
            return start.checked_add(fixed);
        }
        let secs = start.div_euclid(1_000_000_000) as i64;
        let sub = start.rem_euclid(1_000_000_000) as u32;
        let t = DateTime::from_timestamp(secs, sub)?.naive_utc();
        let months = self.months as i64 * k;
        let moved: NaiveDateTime = if months >= 0 {
            t.checked_add_months(Months::new(u32::try_from(months).ok()?))?
        } else {
            t.checked_sub_months(Months::new(u32::try_from(-months).ok()?))?
        };
        let base = moved.and_utc().timestamp() as i128 * 1_000_000_000 + moved.and_utc().timestamp_subsec_nanos() as i128;
        base.checked_add(fixed)
    }
}

/// Nanoseconds since the epoch of row 0 of a date or timestamp array.
fn nanos_of(a: &ArrayRef) -> Result<i128> {
    let per = |u: &TimeUnit| match u {
        TimeUnit::Second => 1_000_000_000i128,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    };
    match a.data_type() {
        DataType::Date32 => Ok(a.as_primitive::<arrow::datatypes::Date32Type>().value(0) as i128 * DAY_NANOS),
        DataType::Timestamp(u, _) => {
            let v = arrow::compute::cast(a, &DataType::Int64)?;
            Ok(v.as_primitive::<Int64Type>().value(0) as i128 * per(u))
        }
        other => exec_err!("sequence needs integers, dates or timestamps, not {other}"),
    }
}

fn direction_error() -> DataFusionError {
    DataFusionError::Execution(
        "INVALID_FUNCTION_ARGUMENT: sequence stop value should be greater than or equal to start value if step is greater than zero \
         otherwise stop should be less than or equal to start"
            .into(),
    )
}

fn entries_error(limit: u64) -> DataFusionError {
    DataFusionError::Execution(format!("INVALID_FUNCTION_ARGUMENT: result of sequence function must not have more than {limit} entries"))
}

/// The entries of `start`, `start + step`, … up to `stop` (one row each),
/// refused past `limit`. Without a step: 1 (or 1 day) towards `stop`.
fn count_entries(name: &str, start: &ArrayRef, stop: &ArrayRef, step: Option<&ArrayRef>, limit: u64) -> Result<u64> {
    let check = |count: i128| if count as u64 > limit || count < 0 { Err(entries_error(limit)) } else { Ok(count as u64) };
    if start.data_type().is_integer() || start.data_type().is_null() {
        let (a, b) = (i64s(start)?.value(0) as i128, i64s(stop)?.value(0) as i128);
        let s = match step {
            Some(s) => i64s(s)?.value(0) as i128,
            None if a <= b => 1,
            None => -1,
        };
        if s == 0 {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: step must not be zero");
        }
        if (s > 0 && a > b) || (s < 0 && a < b) {
            return if name == "sequence" { Err(direction_error()) } else { Ok(0) };
        }
        return check((b - a) / s + 1);
    }
    let (a, b) = (nanos_of(start)?, nanos_of(stop)?);
    let step = match step {
        Some(s) => Step::of(s)?,
        None if matches!(start.data_type(), DataType::Date32) => Step { months: 0, days: if a <= b { 1 } else { -1 }, nanos: 0 },
        None => return exec_err!("sequence of timestamps needs a step"),
    };
    let dir = step.direction()?;
    if (dir > 0 && a > b) || (dir < 0 && a < b) {
        return if name == "sequence" { Err(direction_error()) } else { Ok(0) };
    }
    if step.months == 0 {
        let n = step.days as i128 * DAY_NANOS + step.nanos as i128;
        return check((b - a) / n + 1);
    }
    // Calendar steps are at least 28 days: few iterations, and capped.
    let mut count: u64 = 0;
    while let Some(v) = step.nth(a, count as i64) {
        if (dir > 0 && v > b) || (dir < 0 && v < b) {
            break;
        }
        count += 1;
        if count > limit {
            return Err(entries_error(limit));
        }
    }
    Ok(count)
}

/// Trino's `sequence`, for integers, dates and timestamps.
fn sequence(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    let field = match ret_sequence(types)? {
        DataType::List(f) => f,
        _ => unreachable!("ret_sequence returns a list"),
    };
    let rows = args[0].len();
    let mut offsets = vec![0i32];
    let mut valid = Vec::with_capacity(rows);
    let mut values: Vec<i128> = Vec::new();
    for i in 0..rows {
        let null = args.iter().any(|a| a.is_null(i));
        if !null {
            let (start, stop) = (args[0].slice(i, 1), args[1].slice(i, 1));
            let step = args.get(2).map(|a| a.slice(i, 1));
            let count = count_entries("sequence", &start, &stop, step.as_ref(), MAX_ARRAY_ENTRIES as u64)? as i64;
            if field.data_type() == &DataType::Int64 {
                let a = i64s(&start)?.value(0) as i128;
                let s = match &step {
                    Some(s) => i64s(s)?.value(0) as i128,
                    None if a <= i64s(&stop)?.value(0) as i128 => 1,
                    None => -1,
                };
                values.extend((0..count as i128).map(|k| a + k * s));
            } else {
                let a = nanos_of(&start)?;
                let step = match &step {
                    Some(s) => Step::of(s)?,
                    None => Step { months: 0, days: if a <= nanos_of(&stop)? { 1 } else { -1 }, nanos: 0 },
                };
                for k in 0..count {
                    values.push(step.nth(a, k).ok_or_else(|| DataFusionError::Execution("sequence value out of range".into()))?);
                }
            }
        }
        valid.push(!null);
        offsets.push(values.len() as i32);
    }
    let ints: Int64Array = match field.data_type() {
        DataType::Int64 => values.iter().map(|v| *v as i64).collect(),
        DataType::Date32 => values.iter().map(|v| (v.div_euclid(DAY_NANOS)) as i64).collect(),
        DataType::Timestamp(u, _) => {
            let per = match u {
                TimeUnit::Second => 1_000_000_000i128,
                TimeUnit::Millisecond => 1_000_000,
                TimeUnit::Microsecond => 1_000,
                TimeUnit::Nanosecond => 1,
            };
            values.iter().map(|v| v.div_euclid(per) as i64).collect()
        }
        other => return exec_err!("sequence of {other}"),
    };
    let items: ArrayRef = match field.data_type() {
        DataType::Date32 => arrow::compute::cast(&arrow::compute::cast(&ints, &DataType::Int32)?, &DataType::Date32)?,
        t => arrow::compute::cast(&ints, t)?,
    };
    Ok(Arc::new(ListArray::try_new(field, OffsetBuffer::new(offsets.into()), items, Some(NullBuffer::from(valid)))?))
}

/// Trino's `repeat(element, count)`: an array of `count` copies.
fn repeat(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let counts = i64s(&args[1])?;
    let mut take: Vec<u32> = Vec::new();
    let mut offsets = vec![0i32];
    let mut valid = Vec::with_capacity(counts.len());
    for i in 0..counts.len() {
        if counts.is_valid(i) {
            let n = repeat_count(counts.value(i))?;
            take.extend(std::iter::repeat_n(i as u32, n));
        }
        valid.push(counts.is_valid(i));
        offsets.push(take.len() as i32);
    }
    let items = arrow::compute::take(&args[0], &UInt32Array::from(take), None)?;
    let field = Arc::new(Field::new_list_field(args[0].data_type().clone(), true));
    Ok(Arc::new(ListArray::try_new(field, OffsetBuffer::new(offsets.into()), items, Some(NullBuffer::from(valid)))?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, StringArray};

    fn one(v: i64) -> ArrayRef {
        Arc::new(Int64Array::from(vec![v]))
    }

    #[test]
    fn sequences_count_and_refuse_like_trino() {
        assert_eq!(count_entries("sequence", &one(1), &one(5), None, 10_000).unwrap(), 5);
        assert_eq!(count_entries("sequence", &one(5), &one(1), None, 10_000).unwrap(), 5);
        assert_eq!(count_entries("sequence", &one(1), &one(10), Some(&one(3)), 10_000).unwrap(), 4);
        assert!(count_entries("sequence", &one(1), &one(3_000_000_000), None, 10_000).unwrap_err().to_string().contains("10000 entries"));
        assert!(count_entries("sequence", &one(1), &one(5), Some(&one(-1)), 10_000).is_err());
        assert_eq!(count_entries("range", &one(1), &one(5), Some(&one(-1)), 10_000).unwrap(), 0);
        assert!(count_entries("sequence", &one(1), &one(5), Some(&one(0)), 10_000).is_err());
        let d = |v: i32| Arc::new(Date32Array::from(vec![v])) as ArrayRef;
        assert_eq!(count_entries("sequence", &d(0), &d(9), None, 10_000).unwrap(), 10);
        let month =
            Arc::new(arrow::array::IntervalMonthDayNanoArray::from(vec![arrow::datatypes::IntervalMonthDayNano::new(1, 0, 0)])) as ArrayRef;
        assert_eq!(count_entries("sequence", &d(0), &d(365), Some(&month), 10_000).unwrap(), 13);
    }

    #[test]
    fn sequence_and_repeat_build_arrays() {
        let out = sequence(&[one(3), one(1)], &[DataType::Int64, DataType::Int64]).unwrap();
        let l = out.as_list::<i32>();
        assert_eq!(l.value(0).as_primitive::<Int64Type>().values().to_vec(), vec![3, 2, 1]);
        let s: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None]));
        let out = repeat(&[s, Arc::new(Int64Array::from(vec![2, 1]))], &[]).unwrap();
        let l = out.as_list::<i32>();
        assert_eq!(l.value(0).len(), 2);
        assert_eq!(l.value(1).null_count(), 1);
        assert!(repeat(&[one(1), one(10_001)], &[]).is_err());
    }

    #[test]
    fn pads_and_replaces_are_sized_before_they_run() {
        let s: ArrayRef = Arc::new(StringArray::from(vec!["x"]));
        let size = pad_size("lpad", &[Arc::clone(&s), one(2_000_000_000)]).unwrap();
        assert!(size.largest > MAX_VALUE_BYTES);
        let text: ArrayRef = Arc::new(StringArray::from(vec!["abab"]));
        let from: ArrayRef = Arc::new(StringArray::from(vec!["a"]));
        let to: ArrayRef = Arc::new(StringArray::from(vec!["xyz"]));
        assert_eq!(replace_size("replace", &[text, from, to]).unwrap().largest, "xyzbxyzb".len() as u64);
    }
}
