//! Trino's casts to structured types: `CAST(x AS MAP(K, V))`,
//! `CAST(x AS ROW(name T, …))` and arrays of them, from JSON (as
//! `json_parse` and `json_extract` give it) or from maps, rows and arrays.
//!
//! The rewriter turns the cast's target, a syntax tree, into a [`Shape`] and
//! calls `__cast_to(x, 'shape')` with the shape's canonical Trino name; the
//! function reads the name once (its return type is the shape's Arrow type)
//! and converts recursively:
//!
//! - from JSON: an array to `ARRAY`, an object to `MAP` (keys read as the
//!   key type), an array (by position) or an object (by field name, any
//!   case) to `ROW`; JSON null is NULL; scalars as Trino casts JSON
//!   scalars (a fractional number to an integer type rounds);
//! - from a map, row or array: keys, values, fields (by position) and
//!   elements cast one by one, integers rounding as Trino's casts do; a
//!   map whose keys collide after the cast is an error, as in Trino.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray, StringArray, StructArray, new_null_array};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err};
use datafusion::logical_expr::ScalarUDF;
use serde_json::Value;

use super::types::trino_type;
use super::udf::{any, udf, udf_valued};

/// A cast's target type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// Trino's `json`: JSON text.
    Json,
    /// Any other scalar type, as Arrow's.
    Scalar(DataType),
    Array(Box<Shape>),
    Map(Box<Shape>, Box<Shape>),
    /// Fields with their names (`field0`, … for an unnamed one).
    Row(Vec<(String, Shape)>),
}

impl Shape {
    pub(crate) fn arrow(&self) -> DataType {
        match self {
            Shape::Json => DataType::Utf8,
            Shape::Scalar(t) => t.clone(),
            Shape::Array(inner) => DataType::new_list(inner.arrow(), true),
            Shape::Map(k, v) => super::maps::map_type(&k.arrow(), &v.arrow()),
            Shape::Row(fields) => {
                DataType::Struct(Fields::from(fields.iter().map(|(n, s)| Field::new(n, s.arrow(), true)).collect::<Vec<_>>()))
            }
        }
    }

    /// The canonical Trino name (`map(varchar, array(integer))`), which
    /// [`Shape::parse`] reads back.
    pub(crate) fn name(&self) -> String {
        match self {
            Shape::Json => "json".into(),
            Shape::Scalar(t) => trino_type(t),
            Shape::Array(inner) => format!("array({})", inner.name()),
            Shape::Map(k, v) => format!("map({}, {})", k.name(), v.name()),
            Shape::Row(fields) => {
                format!("row({})", fields.iter().map(|(n, s)| format!("\"{n}\" {}", s.name())).collect::<Vec<_>>().join(", "))
            }
        }
    }

    /// Reads a canonical name ([`Shape::name`]).
    pub(crate) fn parse(text: &str) -> Result<Shape> {
        let mut p = NameParser { s: text.as_bytes(), i: 0 };
        let shape = p.shape()?;
        p.space();
        if p.i != p.s.len() {
            return exec_err!("unexpected text in type name {text:?}");
        }
        Ok(shape)
    }
}

/// Reads the type names [`Shape::name`] writes.
struct NameParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl NameParser<'_> {
    fn space(&mut self) {
        while self.i < self.s.len() && self.s[self.i] == b' ' {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.space();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<()> {
        if self.eat(c) { Ok(()) } else { exec_err!("expected '{}' in a type name at {}", c as char, self.i) }
    }

    fn word(&mut self) -> String {
        self.space();
        let start = self.i;
        while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_') {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn quoted(&mut self) -> Result<String> {
        self.expect(b'"')?;
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i] != b'"' {
            self.i += 1;
        }
        let name = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.expect(b'"')?;
        Ok(name)
    }

    fn numbers(&mut self) -> Result<Vec<i64>> {
        let mut out = vec![];
        if self.eat(b'(') {
            loop {
                let w = self.word();
                out.push(w.parse().map_err(|_| DataFusionError::Execution(format!("bad type parameter {w:?}")))?);
                if !self.eat(b',') {
                    break;
                }
            }
            self.expect(b')')?;
        }
        Ok(out)
    }

    fn shape(&mut self) -> Result<Shape> {
        let word = self.word();
        Ok(match word.as_str() {
            "json" => Shape::Json,
            "array" => {
                self.expect(b'(')?;
                let inner = self.shape()?;
                self.expect(b')')?;
                Shape::Array(Box::new(inner))
            }
            "map" => {
                self.expect(b'(')?;
                let k = self.shape()?;
                self.expect(b',')?;
                let v = self.shape()?;
                self.expect(b')')?;
                Shape::Map(Box::new(k), Box::new(v))
            }
            "row" => {
                self.expect(b'(')?;
                let mut fields = vec![];
                loop {
                    let name = self.quoted()?;
                    fields.push((name, self.shape()?));
                    if !self.eat(b',') {
                        break;
                    }
                }
                self.expect(b')')?;
                Shape::Row(fields)
            }
            "decimal" => match self.numbers()?.as_slice() {
                [p, s] => Shape::Scalar(DataType::Decimal128(*p as u8, *s as i8)),
                _ => return exec_err!("decimal needs a precision and a scale"),
            },
            "timestamp" => {
                let p = self.numbers()?.first().copied().unwrap_or(3);
                let unit = time_unit(p);
                self.space();
                let zoned = self.s[self.i..].starts_with(b"with time zone");
                if zoned {
                    self.i += "with time zone".len();
                }
                Shape::Scalar(DataType::Timestamp(unit, zoned.then(|| "UTC".into())))
            }
            "varchar" => {
                self.numbers()?;
                Shape::Scalar(DataType::Utf8)
            }
            other => Shape::Scalar(match other {
                "boolean" => DataType::Boolean,
                "tinyint" => DataType::Int8,
                "smallint" => DataType::Int16,
                "integer" => DataType::Int32,
                "bigint" => DataType::Int64,
                "real" => DataType::Float32,
                "double" => DataType::Float64,
                "varbinary" => DataType::Binary,
                "date" => DataType::Date32,
                _ => return exec_err!("NOT_SUPPORTED: cast to {other}"),
            }),
        })
    }
}

/// The Arrow unit of a timestamp precision (fraction digits).
pub(crate) fn time_unit(precision: i64) -> TimeUnit {
    match precision {
        0 => TimeUnit::Second,
        1..=3 => TimeUnit::Millisecond,
        4..=6 => TimeUnit::Microsecond,
        _ => TimeUnit::Nanosecond,
    }
}

pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        udf_valued("__cast_to", any(2), ret_cast_to, cast_to),
        udf_valued("__try_cast_to", any(2), ret_cast_to, try_cast_to),
        udf("__unnest_rows", &[], any(1), ret_unnest_rows, unnest_rows),
        udf_valued("__field", any(2), ret_field, field),
    ]
}

fn shape_argument(v: Option<&ScalarValue>) -> Result<Shape> {
    match v {
        Some(ScalarValue::Utf8(Some(name))) => Shape::parse(name),
        _ => exec_err!("__cast_to needs a constant type name"),
    }
}

fn ret_cast_to(_: &[DataType], values: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(shape_argument(values.get(1).copied().flatten())?.arrow())
}

fn cast_to(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let name = args[1].as_string_opt::<i32>().filter(|a| !a.is_empty() && a.is_valid(0)).map(|a| a.value(0).to_owned());
    let shape = shape_argument(name.map(|n| ScalarValue::Utf8(Some(n))).as_ref())?;
    cast(&args[0], &shape)
}

/// What `UNNEST(x) AS t(a, b, …)` unnests, one row per element: a map's
/// entries as rows (key, value), an array as it is (an array of rows
/// gives one column per field).
fn ret_unnest_rows(t: &[DataType]) -> Result<DataType> {
    Ok(match &t[0] {
        DataType::Map(entries, _) => DataType::new_list(entries.data_type().clone(), true),
        other => other.clone(),
    })
}

fn unnest_rows(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    match args[0].data_type() {
        DataType::Map(entries, _) => {
            let m = args[0].as_map();
            let field = Arc::new(Field::new_list_field(entries.data_type().clone(), true));
            Ok(Arc::new(ListArray::try_new(field, m.offsets().clone(), Arc::new(m.entries().clone()), m.nulls().cloned())?))
        }
        _ => Ok(Arc::clone(&args[0])),
    }
}

/// `__field(v, i)`: the i-th (1-based) field of a row, or `v` itself for
/// i = 1 when it is not a row (an unnested array of scalars).
fn field_index(t: &DataType, i: Option<&ScalarValue>) -> Result<Option<usize>> {
    let i = match i {
        Some(ScalarValue::Int64(Some(i))) => *i,
        Some(ScalarValue::Int32(Some(i))) => i64::from(*i),
        _ => return exec_err!("__field needs a constant position"),
    };
    match t {
        DataType::Struct(fields) if i >= 1 && i as usize <= fields.len() => Ok(Some(i as usize - 1)),
        DataType::Struct(fields) => {
            exec_err!("UNNEST: the unnested rows have {} field(s), fewer than the column names given", fields.len())
        }
        DataType::Null => Ok(None),
        _ if i == 1 => Ok(None),
        other => exec_err!("UNNEST: a value of type {} gives one column, not {i}", trino_type(other)),
    }
}

fn ret_field(t: &[DataType], values: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(match (field_index(&t[0], values.get(1).copied().flatten())?, &t[0]) {
        (Some(i), DataType::Struct(fields)) => fields[i].data_type().clone(),
        _ => t[0].clone(),
    })
}

fn field(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    let i = ScalarValue::try_from_array(&args[1], 0)?;
    match (field_index(&types[0], Some(&i))?, args[0].as_struct_opt()) {
        (Some(i), Some(s)) => {
            let column = s.column(i);
            // A NULL row has NULL fields.
            match s.nulls() {
                Some(n) => {
                    let merged = NullBuffer::union(Some(n), column.nulls());
                    Ok(arrow::array::make_array(column.to_data().into_builder().nulls(merged).build()?))
                }
                None => Ok(Arc::clone(column)),
            }
        }
        _ => Ok(Arc::clone(&args[0])),
    }
}

/// `TRY_CAST`: NULL for each value that does not cast.
fn try_cast_to(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    if let Ok(out) = cast_to(args, types) {
        return Ok(out);
    }
    let rows = (0..args[0].len())
        .map(|i| {
            let one = [args[0].slice(i, 1), Arc::clone(&args[1])];
            cast_to(&one, types).or_else(|_| {
                let name = args[1].as_string::<i32>().value(0);
                Ok(new_null_array(&Shape::parse(name)?.arrow(), 1))
            })
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let refs: Vec<&dyn Array> = rows.iter().map(|a| a.as_ref()).collect();
    if refs.is_empty() {
        return cast_to(args, types);
    }
    Ok(arrow::compute::concat(&refs)?)
}

/// Casts an array of any type to `shape`.
pub(crate) fn cast(a: &ArrayRef, shape: &Shape) -> Result<ArrayRef> {
    let target = shape.arrow();
    match (a.data_type(), shape) {
        (DataType::Null, _) => Ok(new_null_array(&target, a.len())),
        // Text cast to a structured type is JSON text.
        (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View, Shape::Array(_) | Shape::Map(..) | Shape::Row(_)) => {
            let text = super::json::strings(a)?;
            let parsed: Vec<Option<Value>> = (0..text.len())
                .map(|i| {
                    if text.is_null(i) {
                        return Ok(None);
                    }
                    serde_json::from_str(text.value(i)).map(Some).map_err(|e| {
                        DataFusionError::Execution(format!("INVALID_CAST_ARGUMENT: Cannot cast to {}: invalid JSON: {e}", shape.name()))
                    })
                })
                .collect::<Result<_>>()?;
            let refs: Vec<Option<&Value>> = parsed.iter().map(|v| v.as_ref().filter(|v| !v.is_null())).collect();
            from_json(&refs, shape)
        }
        (_, Shape::Json) => super::json::to_json(std::slice::from_ref(a), &[a.data_type().clone()]),
        (_, Shape::Scalar(t)) => scalar(a, t),
        (DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..), Shape::Array(inner)) => {
            let list = arrow::compute::cast(a, &DataType::new_list(a_element(a.data_type()), true))?;
            let list = list.as_list::<i32>();
            let values = cast(list.values(), inner)?;
            let DataType::List(field) = &target else { unreachable!("an array shape is a list") };
            Ok(Arc::new(ListArray::try_new(Arc::clone(field), list.offsets().clone(), values, list.nulls().cloned())?))
        }
        (DataType::Map(..), Shape::Map(k, v)) => {
            let m = a.as_map();
            let keys = cast(m.keys(), k)?;
            let values = cast(m.values(), v)?;
            let offsets: Vec<i32> = m.value_offsets().to_vec();
            super::maps::check_unique_keys(
                &keys,
                (0..m.len()).filter(|&i| m.is_valid(i)).map(|i| offsets[i] as usize..offsets[i + 1] as usize),
            )?;
            super::maps::build_map(&target, offsets, keys, values, m.nulls().cloned())
        }
        (DataType::Struct(from), Shape::Row(fields)) => {
            if from.len() != fields.len() {
                return exec_err!(
                    "INVALID_CAST_ARGUMENT: Cannot cast {} to {}: field counts differ",
                    trino_type(a.data_type()),
                    shape.name()
                );
            }
            let s = a.as_struct();
            let columns = s.columns().iter().zip(fields).map(|(c, (_, f))| cast(c, f)).collect::<Result<Vec<_>>>()?;
            let DataType::Struct(out) = &target else { unreachable!("a row shape is a struct") };
            Ok(Arc::new(StructArray::try_new(out.clone(), columns, s.nulls().cloned())?))
        }
        (from, _) => exec_err!("INVALID_CAST_ARGUMENT: Cannot cast {} to {}", trino_type(from), shape.name()),
    }
}

fn a_element(t: &DataType) -> DataType {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => f.data_type().clone(),
        _ => DataType::Null,
    }
}

/// A scalar cast as Trino's: floating and decimal values round to integers.
fn scalar(a: &ArrayRef, t: &DataType) -> Result<ArrayRef> {
    if a.data_type() == t {
        return Ok(Arc::clone(a));
    }
    let a = if t.is_integer() { super::misc::round_for_int(std::slice::from_ref(a), &[a.data_type().clone()])? } else { Arc::clone(a) };
    if matches!(t, DataType::Utf8) {
        return super::misc::to_varchar(std::slice::from_ref(&a), &[a.data_type().clone()]);
    }
    let opts = arrow::compute::CastOptions { safe: false, ..Default::default() };
    arrow::compute::cast_with_options(&a, t, &opts).map_err(|e| {
        DataFusionError::Execution(format!("INVALID_CAST_ARGUMENT: Cannot cast {} to {}: {e}", trino_type(a.data_type()), trino_type(t)))
    })
}

/// JSON values (`None` for NULL and JSON null) as `shape`.
fn from_json(values: &[Option<&Value>], shape: &Shape) -> Result<ArrayRef> {
    let refuse = |v: &Value| -> Result<ArrayRef> {
        let shown: String = v.to_string().chars().take(100).collect();
        exec_err!("INVALID_CAST_ARGUMENT: Cannot cast to {}. Expected a JSON {} but got {shown}", shape.name(), expected(shape))
    };
    let nulls = || NullBuffer::from(values.iter().map(Option::is_some).collect::<Vec<_>>());
    match shape {
        Shape::Json => Ok(Arc::new(values.iter().map(|v| v.map(Value::to_string)).collect::<StringArray>())),
        Shape::Scalar(t) => json_scalars(values, t),
        Shape::Array(inner) => {
            let mut offsets = vec![0i32];
            let mut children: Vec<Option<&Value>> = vec![];
            for v in values {
                match v {
                    Some(Value::Array(items)) => children.extend(items.iter().map(|x| Some(x).filter(|x| !x.is_null()))),
                    Some(other) => return refuse(other),
                    None => {}
                }
                offsets.push(offset(children.len())?);
            }
            let child = from_json(&children, inner)?;
            let DataType::List(field) = shape.arrow() else { unreachable!("an array shape is a list") };
            Ok(Arc::new(ListArray::try_new(field, OffsetBuffer::new(offsets.into()), child, Some(nulls()))?))
        }
        Shape::Map(k, v) => {
            let mut offsets = vec![0i32];
            let mut keys: Vec<Value> = vec![];
            let mut items: Vec<Option<&Value>> = vec![];
            for value in values {
                match value {
                    Some(Value::Object(members)) => {
                        for (key, item) in members {
                            keys.push(Value::String(key.clone()));
                            items.push(Some(item).filter(|x| !x.is_null()));
                        }
                    }
                    Some(other) => return refuse(other),
                    None => {}
                }
                offsets.push(offset(keys.len())?);
            }
            let key_refs: Vec<Option<&Value>> = keys.iter().map(Some).collect();
            let keys = from_json(&key_refs, k)?;
            let items = from_json(&items, v)?;
            let ranges = (0..values.len()).map(|i| offsets[i] as usize..offsets[i + 1] as usize);
            super::maps::check_unique_keys(&keys, ranges)?;
            super::maps::build_map(&shape.arrow(), offsets, keys, items, Some(nulls()))
        }
        Shape::Row(fields) => {
            let mut columns: Vec<Vec<Option<&Value>>> = vec![Vec::with_capacity(values.len()); fields.len()];
            for v in values {
                match v {
                    Some(Value::Array(items)) if items.len() == fields.len() => {
                        for (c, x) in columns.iter_mut().zip(items) {
                            c.push(Some(x).filter(|x| !x.is_null()));
                        }
                    }
                    Some(Value::Object(members)) => {
                        for (c, (name, _)) in columns.iter_mut().zip(fields) {
                            let found = members.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, x)| x);
                            c.push(found.filter(|x| !x.is_null()));
                        }
                    }
                    Some(other) => return refuse(other),
                    None => columns.iter_mut().for_each(|c| c.push(None)),
                }
            }
            let arrays = columns.iter().zip(fields).map(|(c, (_, f))| from_json(c, f)).collect::<Result<Vec<_>>>()?;
            let DataType::Struct(out) = shape.arrow() else { unreachable!("a row shape is a struct") };
            Ok(Arc::new(StructArray::try_new(out, arrays, Some(nulls()))?))
        }
    }
}

fn expected(shape: &Shape) -> &'static str {
    match shape {
        Shape::Array(_) => "array",
        Shape::Map(..) => "object",
        Shape::Row(_) => "array or object",
        _ => "scalar",
    }
}

fn offset(n: usize) -> Result<i32> {
    i32::try_from(n).map_err(|_| DataFusionError::Execution("a cast result is too large".into()))
}

/// JSON scalars as `t`, as Trino casts them: a string is its text, read as
/// `t`; a number or boolean converted (a fractional number rounds to an
/// integer type); an array or object is an error.
fn json_scalars(values: &[Option<&Value>], t: &DataType) -> Result<ArrayRef> {
    let mut text: Vec<Option<String>> = Vec::with_capacity(values.len());
    for v in values {
        text.push(match v {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Bool(b)) if t.is_numeric() => Some(if *b { "1" } else { "0" }.to_owned()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(Value::Number(n)) if t.is_integer() => Some(match n.as_i64() {
                Some(k) => k.to_string(),
                None => format!("{}", n.as_f64().unwrap_or(f64::NAN).round()),
            }),
            Some(Value::Number(n)) if *t == DataType::Boolean => Some((n.as_f64() != Some(0.0)).to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                let shown: String = other.to_string().chars().take(100).collect();
                return exec_err!("INVALID_CAST_ARGUMENT: Cannot cast JSON {shown} to {}", trino_type(t));
            }
        });
    }
    let text: ArrayRef = Arc::new(StringArray::from(text));
    if *t == DataType::Utf8 {
        return Ok(text);
    }
    let opts = arrow::compute::CastOptions { safe: false, ..Default::default() };
    arrow::compute::cast_with_options(&text, t, &opts)
        .map_err(|e| DataFusionError::Execution(format!("INVALID_CAST_ARGUMENT: Cannot cast JSON value to {}: {e}", trino_type(t))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        for shape in [
            Shape::Map(Box::new(Shape::Scalar(DataType::Utf8)), Box::new(Shape::Array(Box::new(Shape::Scalar(DataType::Int32))))),
            Shape::Row(vec![("a b".into(), Shape::Json), ("x".into(), Shape::Scalar(DataType::Decimal128(10, 2)))]),
            Shape::Array(Box::new(Shape::Scalar(DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))))),
        ] {
            assert_eq!(Shape::parse(&shape.name()).unwrap(), shape, "{}", shape.name());
        }
    }

    #[test]
    fn json_objects_to_maps_and_rows() {
        let json: ArrayRef = Arc::new(StringArray::from(vec![Some(r#"{"a": 1.5, "b": null}"#), None]));
        let m = cast(&json, &Shape::Map(Box::new(Shape::Scalar(DataType::Utf8)), Box::new(Shape::Scalar(DataType::Int32)))).unwrap();
        assert_eq!(super::super::types::render_column(&m), vec![Some("{a=2, b=null}".to_owned()), None]);
        let r = cast(&json, &Shape::Row(vec![("B".into(), Shape::Scalar(DataType::Int64)), ("A".into(), Shape::Json)])).unwrap();
        assert_eq!(super::super::types::render_column(&r), vec![Some("{B=null, A=1.5}".to_owned()), None]);
    }
}
