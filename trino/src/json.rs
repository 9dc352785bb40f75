//! Trino's JSON functions over JSON text: `json_extract_scalar`,
//! `json_extract`, `json_array_length`, `json_size`, `json_parse`,
//! `json_format`, `is_json_scalar`, `json_array_get`, `json_array_contains`.
//! Paths are JSONPath strings like `'$.a.b[0]'`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanBuilder, Int64Builder, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::ScalarUDF;
use jiter::{Jiter, Peek};
use sediment_lake::jsonpath::{JsonPath, Step};
use serde_json::Value;

use super::udf::{any, ret_bool, ret_i64, ret_second, ret_utf8, udf};

pub(crate) fn strings(a: &ArrayRef) -> Result<StringArray> {
    let c = arrow::compute::cast(a, &DataType::Utf8)?;
    Ok(c.as_any().downcast_ref::<StringArray>().cloned().unwrap_or_else(|| StringArray::from(vec![None::<&str>; a.len()])))
}

/// Positions `j` on the value `steps` lead to, without consuming it.
///
/// Navigation is lazy, as Trino's is: members and elements before the target
/// are skipped, not built, and nothing after it is read. So the first of
/// duplicate member names wins, and a document malformed only after the
/// target still yields it. `None`: the path is absent, or the text is not
/// JSON up to the target.
fn locate(j: &mut Jiter<'_>, steps: &[Step]) -> Option<Peek> {
    let mut peek = j.peek().ok()?;
    for step in steps {
        peek = match step {
            Step::Key(want) => {
                if peek != Peek::Object {
                    return None;
                }
                let mut found = j.known_object().ok()?.map(|k| k == want);
                loop {
                    match found {
                        None => return None,
                        Some(true) => break j.peek().ok()?,
                        Some(false) => {
                            j.next_skip().ok()?;
                            found = j.next_key().ok()?.map(|k| k == want);
                        }
                    }
                }
            }
            Step::Index(i) => {
                if peek != Peek::Array {
                    return None;
                }
                let mut p = j.known_array().ok()??;
                for _ in 0..*i {
                    j.known_skip(p).ok()?;
                    p = j.array_step().ok()??;
                }
                p
            }
        };
    }
    Some(peek)
}

/// The text of the value `j` is positioned on (after [`locate`]).
fn value_text<'j>(j: &mut Jiter<'j>, data: &'j str, peek: Peek) -> Option<&'j str> {
    let start = j.current_index();
    j.known_skip(peek).ok()?;
    data.get(start..j.current_index())
}

/// Applies `f` to (json text, compiled path) per row: `f` gets a parser
/// positioned on the value at the path, its text, and its first byte.
/// Paths are compiled once per distinct text.
fn with_path<B>(
    args: &[ArrayRef],
    mut builder: B,
    mut f: impl for<'j> FnMut(&mut B, Option<(&mut Jiter<'j>, &'j str, Peek)>),
) -> Result<B> {
    let json = strings(&args[0])?;
    let paths = strings(&args[1])?;
    let mut cached: Option<(String, JsonPath)> = None;
    for i in 0..json.len() {
        if json.is_null(i) || paths.is_null(i) {
            f(&mut builder, None);
            continue;
        }
        let p = paths.value(i);
        if cached.as_ref().is_none_or(|(t, _)| t != p) {
            let compiled = match JsonPath::parse(p) {
                Ok(c) => c,
                Err(e) => return exec_err!("{e}"),
            };
            cached = Some((p.to_owned(), compiled));
        }
        let Some((_, path)) = &cached else { unreachable!("compiled above") };
        let text = json.value(i);
        let mut j = Jiter::new(text.as_bytes());
        match locate(&mut j, path.steps()) {
            Some(peek) => f(&mut builder, Some((&mut j, text, peek))),
            None => f(&mut builder, None),
        }
    }
    Ok(builder)
}

/// The text of each wanted member of a JSON object, read as `json_extract`
/// finds them: `want` maps a member name to a slot of `out`, the first
/// member of a name fills its slot, and reading stops at text that is not
/// JSON (members before it are kept). Slots of names absent stay `None`;
/// `false` when the text is not a JSON object.
pub fn object_members<'j>(text: &'j str, want: impl Fn(&str) -> Option<usize>, out: &mut [Option<&'j str>]) -> bool {
    let mut j = Jiter::new(text.as_bytes());
    if j.peek().ok() != Some(Peek::Object) {
        return false;
    }
    let mut key = j.known_object().ok().flatten().map(&want);
    while let Some(slot) = key {
        let Ok(peek) = j.peek() else { break };
        match slot.filter(|&i| out[i].is_none()) {
            Some(i) => match value_text(&mut j, text, peek) {
                Some(value) => out[i] = Some(value),
                None => break,
            },
            None if j.known_skip(peek).is_err() => break,
            None => {}
        }
        key = match j.next_key() {
            Ok(k) => k.map(&want),
            Err(_) => break,
        };
    }
    true
}

/// The value at the path, built as a tree (for results that are JSON text),
/// the first of duplicate member names winning inside it too.
fn located_value<'j>(found: Option<(&mut Jiter<'j>, &'j str, Peek)>) -> Option<Value> {
    let (j, text, peek) = found?;
    sediment_lake::payload_schema::parse(value_text(j, text, peek)?)
}

fn extract_scalar(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let mut b = with_path(args, StringBuilder::new(), |b, found| {
        let Some((j, _, peek)) = found else { return b.append_null() };
        match peek {
            Peek::String => match j.known_str() {
                Ok(s) => b.append_value(s),
                Err(_) => b.append_null(),
            },
            Peek::True | Peek::False => match j.known_bool(peek) {
                Ok(x) => b.append_value(if x { "true" } else { "false" }),
                Err(_) => b.append_null(),
            },
            // Numbers print as serde_json prints them (`1.50` → `1.5`).
            p if p.is_num() => match j.known_number_bytes(p).ok().and_then(|n| serde_json::from_slice::<serde_json::Number>(n).ok()) {
                Some(n) => b.append_value(n.to_string()),
                None => b.append_null(),
            },
            _ => b.append_null(),
        }
    })?;
    Ok(Arc::new(b.finish()))
}

fn extract(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let mut b = with_path(args, StringBuilder::new(), |b, found| match located_value(found) {
        Some(v) => b.append_value(v.to_string()),
        None => b.append_null(),
    })?;
    Ok(Arc::new(b.finish()))
}

fn size(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let mut b = with_path(args, Int64Builder::new(), |b, found| match located_value(found) {
        Some(Value::Array(a)) => b.append_value(a.len() as i64),
        Some(Value::Object(o)) => b.append_value(o.len() as i64),
        Some(_) => b.append_value(0),
        None => b.append_null(),
    })?;
    Ok(Arc::new(b.finish()))
}

fn per_value<B>(args: &[ArrayRef], mut builder: B, mut f: impl FnMut(&mut B, Option<Value>)) -> Result<B> {
    let json = strings(&args[0])?;
    for i in 0..json.len() {
        let v = if json.is_null(i) { None } else { serde_json::from_str(json.value(i)).ok() };
        f(&mut builder, v);
    }
    Ok(builder)
}

fn array_length(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let mut b = per_value(args, Int64Builder::new(), |b, v| match v {
        Some(Value::Array(a)) => b.append_value(a.len() as i64),
        _ => b.append_null(),
    })?;
    Ok(Arc::new(b.finish()))
}

/// `json_array_get(json_array, index)`: the element at a 0-based index
/// (negative from the end) as JSON text; NULL outside the array or when the
/// text is not a JSON array.
fn array_get(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let idx = arrow::compute::cast(&args[1], &DataType::Int64)?;
    let idx = idx.as_primitive::<Int64Type>();
    let mut row = 0;
    let mut b = per_value(args, StringBuilder::new(), |b, v| {
        let i = row;
        row += 1;
        let (Some(Value::Array(items)), true) = (v, idx.is_valid(i)) else { return b.append_null() };
        let k = idx.value(i);
        let pos = if k < 0 { items.len() as i64 + k } else { k };
        match usize::try_from(pos).ok().and_then(|p| items.get(p)) {
            Some(item) => b.append_value(item.to_string()),
            None => b.append_null(),
        }
    })?;
    Ok(Arc::new(b.finish()))
}

/// `json_array_contains(json, value)`: whether the JSON array holds `value`
/// as a JSON value of the same kind (a number equal to a bigint or double, a
/// string equal to a varchar, a boolean).
fn array_contains(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    let wanted = &args[1];
    // The wanted values as the JSON kind they match, cast once.
    let as_kind = match &types[1] {
        DataType::Boolean => DataType::Boolean,
        t if t.is_integer() => DataType::Int64,
        t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => DataType::Float64,
        _ => DataType::Utf8,
    };
    let cast = arrow::compute::cast(wanted, &as_kind)?;
    let mut row = 0;
    let mut b = per_value(args, BooleanBuilder::new(), |b, v| {
        let i = row;
        row += 1;
        let (Some(Value::Array(items)), true) = (v, cast.is_valid(i)) else { return b.append_null() };
        let hit = |item: &Value| -> bool {
            match &as_kind {
                DataType::Boolean => item.as_bool() == Some(cast.as_boolean().value(i)),
                DataType::Int64 => item.as_i64() == Some(cast.as_primitive::<Int64Type>().value(i)),
                DataType::Float64 => item.is_number() && item.as_f64() == Some(cast.as_primitive::<Float64Type>().value(i)),
                _ => item.as_str() == Some(cast.as_string::<i32>().value(i)),
            }
        };
        b.append_value(items.iter().any(hit));
    })?;
    Ok(Arc::new(b.finish()))
}

fn is_scalar(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let mut b = per_value(args, BooleanBuilder::new(), |b, v| match v {
        Some(Value::Array(_) | Value::Object(_)) => b.append_value(false),
        Some(_) => b.append_value(true),
        None => b.append_null(),
    })?;
    Ok(Arc::new(b.finish()))
}

fn parse(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let json = strings(&args[0])?;
    let mut b = StringBuilder::new();
    for i in 0..json.len() {
        if json.is_null(i) {
            b.append_null();
            continue;
        }
        match serde_json::from_str::<Value>(json.value(i)) {
            Ok(v) => b.append_value(v.to_string()),
            Err(e) => return exec_err!("Cannot convert value to JSON: '{}' ({e})", json.value(i)),
        }
    }
    Ok(Arc::new(b.finish()))
}

fn format(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let mut b = per_value(args, StringBuilder::new(), |b, v| match v {
        Some(v) => b.append_value(v.to_string()),
        None => b.append_null(),
    })?;
    Ok(Arc::new(b.finish()))
}

pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        udf("json_extract_scalar", &[], any(2), ret_utf8, extract_scalar),
        udf("json_extract", &[], any(2), ret_utf8, extract),
        udf("json_size", &[], any(2), ret_i64, size),
        udf("json_array_length", &[], any(1), ret_i64, array_length),
        udf("is_json_scalar", &[], any(1), ret_bool, is_scalar),
        udf("json_parse", &[], any(1), ret_utf8, parse),
        udf("json_format", &[], any(1), ret_utf8, format),
        udf("json_array_get", &[], any(2), ret_utf8, array_get),
        udf("json_array_contains", &[], any(2), ret_bool, array_contains),
        udf("__to_json", &[], any(1), ret_utf8, to_json),
        udf("__json_to", &[], any(2), ret_second, |a, t| json_to(a, t, false)),
        udf("__try_json_to", &[], any(2), ret_second, |a, t| json_to(a, t, true)),
    ]
}

/// A SQL value as a JSON value (Trino's `CAST(x AS JSON)`): strings become
/// JSON strings, arrays arrays, maps objects, rows arrays of their fields.
fn scalar_to_json(v: &ScalarValue) -> Result<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let items =
        |a: &ArrayRef| -> Result<Vec<Value>> { (0..a.len()).map(|i| scalar_to_json(&ScalarValue::try_from_array(a, i)?)).collect() };
    Ok(match v {
        ScalarValue::Boolean(Some(b)) => Value::Bool(*b),
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => Value::String(s.clone()),
        ScalarValue::Float32(Some(x)) => json_number(f64::from(*x))?,
        ScalarValue::Float64(Some(x)) => json_number(*x)?,
        ScalarValue::List(l) => Value::Array(items(&l.value(0))?),
        ScalarValue::LargeList(l) => Value::Array(items(&l.value(0))?),
        ScalarValue::Struct(s) => Value::Array(s.columns().iter().map(items).collect::<Result<Vec<_>>>()?.into_iter().flatten().collect()),
        ScalarValue::Map(m) => {
            let entries = m.value(0);
            let (keys, values) = (crate::types::render_column(entries.column(0)), items(entries.column(1))?);
            Value::Object(keys.into_iter().zip(values).map(|(k, v)| (k.unwrap_or_default(), v)).collect())
        }
        v if v.data_type().is_numeric() => {
            let text = v.to_string();
            serde_json::from_str::<Value>(&text)
                .map_err(|e| datafusion::error::DataFusionError::Execution(format!("{text} as JSON: {e}")))?
        }
        // Dates and times as their text, as Trino casts them.
        v => Value::String(crate::types::render_column(&v.to_array()?).pop().flatten().unwrap_or_default()),
    })
}

fn json_number(x: f64) -> Result<Value> {
    match serde_json::Number::from_f64(x) {
        Some(n) => Ok(Value::Number(n)),
        None => exec_err!("INVALID_CAST_ARGUMENT: Cannot cast {x} to JSON"),
    }
}

pub(crate) fn to_json(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let mut b = StringBuilder::new();
    for i in 0..args[0].len() {
        // A NULL (of any type, a NullArray's too) is NULL, not JSON null.
        let v = ScalarValue::try_from_array(&args[0], i)?;
        if v.is_null() {
            b.append_null();
            continue;
        }
        b.append_value(scalar_to_json(&v)?.to_string());
    }
    Ok(Arc::new(b.finish()))
}

/// Trino's cast of a JSON value to a scalar type: JSON null is NULL; a
/// string is its text (read as a number or boolean for those types); a
/// number or boolean converted; an array or object is an error (NULL under
/// `TRY_CAST`).
fn json_to(args: &[ArrayRef], types: &[DataType], lenient: bool) -> Result<ArrayRef> {
    let target = &types[1];
    let json = strings(&args[0])?;
    let mut values: Vec<ScalarValue> = Vec::with_capacity(json.len());
    for i in 0..json.len() {
        let v = if json.is_null(i) { Value::Null } else { serde_json::from_str(json.value(i)).unwrap_or(Value::Null) };
        let text = match &v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) if target.is_numeric() => Some(if *b { "1" } else { "0" }.to_owned()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) if target.is_integer() => match n.as_i64() {
                Some(k) => Some(k.to_string()),
                // Trino rounds a fractional number cast to an integer type.
                None => n.as_f64().map(|f| format!("{}", f.round())),
            },
            Value::Number(n) if *target == DataType::Boolean => Some((n.as_f64() != Some(0.0)).to_string()),
            Value::Number(n) => Some(n.to_string()),
            Value::Array(_) | Value::Object(_) if lenient => None,
            Value::Array(_) | Value::Object(_) => {
                return exec_err!("INVALID_CAST_ARGUMENT: Cannot cast '{}' to {}", v, crate::types::trino_type(target));
            }
        };
        let value = match text {
            None => ScalarValue::try_from(target)?,
            Some(t) => match ScalarValue::Utf8(Some(t.clone())).cast_to(target) {
                Ok(x) if !x.is_null() => x,
                _ if lenient => ScalarValue::try_from(target)?,
                _ => return exec_err!("INVALID_CAST_ARGUMENT: Cannot cast '{t}' to {}", crate::types::trino_type(target)),
            },
        };
        values.push(value);
    }
    if values.is_empty() {
        return Ok(arrow::array::new_empty_array(target));
    }
    ScalarValue::iter_to_array(values)
}
