//! Trino functions of no particular family: `typeof`, `element_at`, the
//! rounding behind `CAST(… AS INTEGER)`, Trino's `CAST(… AS VARCHAR)` text,
//! and `CAST(… AS ARRAY(…))` from JSON or from another array.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, ListArray, MapArray, StringArray, new_null_array};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::ScalarUDF;

use super::types::{render_column, trino_type};
use super::udf::{any, ret_first, ret_second, ret_utf8, udf};

fn type_of(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    let name = trino_type(&types[0]);
    Ok(Arc::new(StringArray::from(vec![name; args[0].len()])))
}

/// Rounds half away from zero, keeping the type (integers pass through).
pub(crate) fn round_for_int(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    match &types[0] {
        DataType::Float64 | DataType::Float32 | DataType::Float16 => {
            let f = arrow::compute::cast(&args[0], &DataType::Float64)?;
            let f = f.as_any().downcast_ref::<Float64Array>().cloned().unwrap_or_else(|| Float64Array::from(vec![None; args[0].len()]));
            let r: Float64Array = f.iter().map(|v| v.map(f64::round)).collect();
            Ok(arrow::compute::cast(&(Arc::new(r) as ArrayRef), &types[0])?)
        }
        DataType::Decimal128(_, s) if *s > 0 => {
            let d = args[0].as_any().downcast_ref::<arrow::array::Decimal128Array>();
            let Some(d) = d else {
                return Ok(Arc::clone(&args[0]));
            };
            let div = 10i128.pow(*s as u32);
            let rounded: arrow::array::Decimal128Array = d
                .iter()
                .map(|v| {
                    v.map(|x| {
                        let (q, r) = (x / div, x % div);
                        let q = if r.abs() * 2 >= div { q + r.signum() } else { q };
                        q * div
                    })
                })
                .collect();
            Ok(Arc::new(rounded.with_data_type(types[0].clone())))
        }
        _ => Ok(Arc::clone(&args[0])),
    }
}

/// `CAST(x AS VARCHAR)` in Trino's text form for temporal and floating values.
pub(crate) fn to_varchar(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    match &types[0] {
        DataType::Timestamp(..) | DataType::Float64 | DataType::Float32 | DataType::List(_) | DataType::Map(_, _) | DataType::Struct(_) => {
            Ok(Arc::new(StringArray::from(render_column(&args[0]))))
        }
        DataType::Utf8 => Ok(Arc::clone(&args[0])),
        _ => Ok(arrow::compute::cast(&args[0], &DataType::Utf8)?),
    }
}

fn element_type(t: &DataType) -> DataType {
    match t {
        DataType::List(f) | DataType::LargeList(f) => f.data_type().clone(),
        DataType::Map(f, _) => match f.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => kv[1].data_type().clone(),
            _ => DataType::Null,
        },
        _ => DataType::Null,
    }
}

fn ret_element(t: &[DataType]) -> Result<DataType> {
    Ok(element_type(&t[0]))
}

/// `element_at(array, i)` (1-based, negative from the end, NULL outside) and
/// `element_at(map, key)` (NULL when absent).
fn element_at(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    lookup(args, types, false)
}

/// The subscript operator `x[i]`: as `element_at`, but an index outside the
/// array or a key not in the map is an error, as in Trino.
fn subscript(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    lookup(args, types, true)
}

fn lookup(args: &[ArrayRef], types: &[DataType], strict: bool) -> Result<ArrayRef> {
    let out_type = element_type(&types[0]);
    let n = args[0].len();
    let mut values: Vec<ScalarValue> = Vec::with_capacity(n);
    match &types[0] {
        DataType::List(_) => {
            let l =
                args[0].as_any().downcast_ref::<ListArray>().ok_or_else(|| datafusion::error::DataFusionError::Internal("list".into()))?;
            let idx = arrow::compute::cast(&args[1], &DataType::Int64)?;
            let idx = idx.as_any().downcast_ref::<Int64Array>().cloned().unwrap_or_else(|| Int64Array::from(vec![None; n]));
            for i in 0..n {
                if l.is_null(i) || idx.is_null(i) {
                    values.push(ScalarValue::try_from(&out_type)?);
                    continue;
                }
                let items = l.value(i);
                let k = idx.value(i);
                if k == 0 {
                    return exec_err!("SQL array indices start at 1");
                }
                if strict && k < 0 {
                    return exec_err!("INVALID_FUNCTION_ARGUMENT: Array subscript is negative: {k}");
                }
                if strict && k > items.len() as i64 {
                    return exec_err!(
                        "INVALID_FUNCTION_ARGUMENT: Array subscript must be less than or equal to array length: {k} > {}",
                        items.len()
                    );
                }
                let pos = if k > 0 { k - 1 } else { items.len() as i64 + k };
                if pos < 0 || pos >= items.len() as i64 {
                    values.push(ScalarValue::try_from(&out_type)?);
                } else {
                    values.push(ScalarValue::try_from_array(&items, pos as usize)?);
                }
            }
        }
        DataType::Map(_, _) => {
            let m =
                args[0].as_any().downcast_ref::<MapArray>().ok_or_else(|| datafusion::error::DataFusionError::Internal("map".into()))?;
            for i in 0..n {
                let key = ScalarValue::try_from_array(&args[1], i)?;
                let mut found = ScalarValue::try_from(&out_type)?;
                if !m.is_null(i) && !key.is_null() {
                    let entries = m.value(i);
                    let mut present = false;
                    for j in 0..entries.len() {
                        let k = ScalarValue::try_from_array(entries.column(0), j)?;
                        let k = k.cast_to(&key.data_type()).unwrap_or(k);
                        if k == key {
                            found = ScalarValue::try_from_array(entries.column(1), j)?;
                            present = true;
                        }
                    }
                    if strict && !present {
                        return exec_err!("INVALID_FUNCTION_ARGUMENT: Key not present in map: {key}");
                    }
                }
                values.push(found);
            }
        }
        other => {
            return exec_err!("element_at needs an array or a map, got {}", trino_type(other));
        }
    }
    if values.is_empty() {
        return Ok(new_null_array(&out_type, 0));
    }
    ScalarValue::iter_to_array(values)
}

/// `CAST(x AS ARRAY(T))`: `x` a JSON array (text, as `json_parse` and
/// `json_extract` give it) or an array; the second argument is a typed NULL
/// of the target type.
fn cast_array(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    cast_to_array(args, types, false)
}

/// `CAST(x AS ARRAY(JSON))`: the elements as JSON text (strings keep quotes).
fn cast_json_array(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    cast_to_array(args, types, true)
}

fn cast_to_array(args: &[ArrayRef], types: &[DataType], json_elements: bool) -> Result<ArrayRef> {
    let target = &types[1];
    let a = &args[0];
    match a.data_type() {
        DataType::Null => Ok(new_null_array(target, a.len())),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = arrow::compute::cast(a, &DataType::Utf8)?;
            let text = text.as_any().downcast_ref::<StringArray>().expect("utf8");
            let parsed: Vec<Option<serde_json::Value>> = (0..text.len())
                .map(|i| {
                    if text.is_null(i) {
                        return Ok(None);
                    }
                    serde_json::from_str(text.value(i)).map(Some).map_err(|e| {
                        datafusion::error::DataFusionError::Execution(format!(
                            "Cannot cast to {}: invalid JSON {:?}: {e}",
                            trino_type(target),
                            text.value(i)
                        ))
                    })
                })
                .collect::<Result<_>>()?;
            let refs: Vec<Option<&serde_json::Value>> = parsed.iter().map(Option::as_ref).collect();
            json_to_array(&refs, target, json_elements)
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) if !json_elements => Ok(arrow::compute::cast(a, target)?),
        other => exec_err!("Cannot cast {} to {}", trino_type(other), trino_type(target)),
    }
}

fn json_to_array(values: &[Option<&serde_json::Value>], ty: &DataType, json_elements: bool) -> Result<ArrayRef> {
    use serde_json::Value;
    match ty {
        DataType::List(field) => {
            let mut offsets = vec![0i32];
            let mut children: Vec<Option<&Value>> = Vec::new();
            let mut valid = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    Some(Value::Array(items)) => {
                        children.extend(items.iter().map(|x| if x.is_null() { None } else { Some(x) }));
                        valid.push(true);
                    }
                    None | Some(Value::Null) => valid.push(false),
                    Some(other) => {
                        return exec_err!("Cannot cast JSON '{other}' to {}", trino_type(ty));
                    }
                }
                offsets.push(
                    i32::try_from(children.len()).map_err(|_| datafusion::error::DataFusionError::Execution("array too large".into()))?,
                );
            }
            let child = json_to_array(&children, field.data_type(), json_elements)?;
            let list = ListArray::try_new(
                Arc::clone(field),
                arrow::buffer::OffsetBuffer::new(offsets.into()),
                child,
                Some(arrow::buffer::NullBuffer::from(valid)),
            )?;
            Ok(Arc::new(list))
        }
        _ => {
            let text: StringArray = values
                .iter()
                .map(|v| {
                    v.map(|x| match x {
                        Value::String(s) if !json_elements => s.clone(),
                        other => other.to_string(),
                    })
                })
                .collect();
            if matches!(ty, DataType::Utf8) {
                return Ok(Arc::new(text));
            }
            let opts = arrow::compute::CastOptions { safe: false, ..Default::default() };
            arrow::compute::cast_with_options(&text, ty, &opts)
                .map_err(|e| datafusion::error::DataFusionError::Execution(format!("Cannot cast JSON element to {}: {e}", trino_type(ty))))
        }
    }
}

pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        udf("__cast_array", &[], any(2), ret_second, cast_array),
        udf("__cast_json_array", &[], any(2), ret_second, cast_json_array),
        udf("typeof", &[], any(1), ret_utf8, type_of),
        udf("__round_for_int", &[], any(1), ret_first, round_for_int),
        udf("__to_varchar", &[], any(1), ret_utf8, to_varchar),
        udf("element_at", &[], any(2), ret_element, element_at),
        udf("__subscript", &[], any(2), ret_element, subscript),
    ]
}
