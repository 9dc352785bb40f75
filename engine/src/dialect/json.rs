//! Trino's JSON functions over JSON text: `json_extract_scalar`,
//! `json_extract`, `json_array_length`, `json_size`, `json_parse`,
//! `json_format`, `is_json_scalar`. Paths are JSONPath strings like `'$.a.b[0]'`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanBuilder, Int64Builder, StringArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::ScalarUDF;
use sediment_lake::jsonpath::JsonPath;
use serde_json::Value;

use super::udf::{any, ret_bool, ret_i64, ret_utf8, udf};

pub(crate) fn strings(a: &ArrayRef) -> Result<StringArray> {
    let c = arrow::compute::cast(a, &DataType::Utf8)?;
    Ok(c.as_any().downcast_ref::<StringArray>().cloned().unwrap_or_else(|| StringArray::from(vec![None::<&str>; a.len()])))
}

/// Applies `f` to (json value, compiled path) per row; paths are compiled once per distinct text.
fn with_path<B>(args: &[ArrayRef], mut builder: B, mut f: impl FnMut(&mut B, Option<&Value>)) -> Result<B> {
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
        let parsed: Option<Value> = serde_json::from_str(json.value(i)).ok();
        let found = match (&parsed, &cached) {
            (Some(v), Some((_, path))) => path.find(v),
            _ => None,
        };
        f(&mut builder, found);
    }
    Ok(builder)
}

fn extract_scalar(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let b = with_path(args, StringBuilder::new(), |b, v| match v {
        Some(Value::String(s)) => b.append_value(s),
        Some(Value::Number(n)) => b.append_value(n.to_string()),
        Some(Value::Bool(x)) => b.append_value(if *x { "true" } else { "false" }),
        _ => b.append_null(),
    })?;
    let mut b = b;
    Ok(Arc::new(b.finish()))
}

fn extract(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let mut b = with_path(args, StringBuilder::new(), |b, v| match v {
        Some(v) => b.append_value(v.to_string()),
        None => b.append_null(),
    })?;
    Ok(Arc::new(b.finish()))
}

fn size(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let mut b = with_path(args, Int64Builder::new(), |b, v| match v {
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
    ]
}
