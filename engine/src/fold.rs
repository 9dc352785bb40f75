//! Projection folds: the state of each aggregate after its events, in order.
//!
//! Shared by the compactor (daily snapshots: snapshot(D) = snapshot(D−1) ⊕
//! events(D)) and the query service (`<projection>_current`). Semantics, per
//! DESIGN.md: over an aggregate's events in order, restricted to `when`
//! types if given, `last`/`first` take the last/first non-null value;
//! `sum`/`min`/`max` ignore nulls and give NULL when nothing matched; `count`
//! counts matching events. A `delete_on` event removes the aggregate; later
//! events start it afresh. A value that does not cast to the column type is
//! NULL and counted.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Date32Array, Date32Builder, Decimal128Array, Decimal128Builder, Float64Array,
    Float64Builder, Int64Array, Int64Builder, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::NaiveDate;
use sediment_lake::config::{ColumnType, Fold, Projection};
use sediment_lake::jsonpath::JsonPath;
use serde_json::Value;

use crate::schema::delta_timestamp;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("projection {projection:?}: {message}")]
    Config { projection: String, message: String },
    #[error("projection {projection:?}: input column {column:?} is missing or mistyped")]
    Input { projection: String, column: String },
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A typed cell value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Microseconds since the epoch, UTC.
    Micros(i64),
    /// Days since the epoch.
    Days(i32),
    Decimal(i128),
}

impl Scalar {
    fn partial_cmp(&self, other: &Scalar) -> Option<Ordering> {
        use Scalar::*;
        match (self, other) {
            (Text(a), Text(b)) => a.partial_cmp(b),
            (Int(a), Int(b)) | (Micros(a), Micros(b)) => a.partial_cmp(b),
            (Float(a), Float(b)) => a.partial_cmp(b),
            (Bool(a), Bool(b)) => a.partial_cmp(b),
            (Days(a), Days(b)) => a.partial_cmp(b),
            (Decimal(a), Decimal(b)) => a.partial_cmp(b),
            _ => None,
        }
    }
}

/// Where a column's input value comes from.
#[derive(Debug, Clone)]
enum Input {
    Path(JsonPath),
    Field(String),
    None,
}

#[derive(Debug, Clone)]
struct ColumnSpec {
    name: String,
    fold: Fold,
    ty: ColumnType,
    input: Input,
    when: Option<HashSet<String>>,
}

/// A compiled projection.
#[derive(Debug, Clone)]
pub struct Folder {
    name: String,
    aggregate_type: String,
    delete_on: HashSet<String>,
    columns: Vec<ColumnSpec>,
    needs_payload: bool,
}

/// One event as the fold sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldEvent<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub event_version: i32,
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: Option<i64>,
    /// Microseconds since the epoch, UTC.
    pub occurred_at: i64,
    pub ingested_at: i64,
    pub source: &'a str,
    pub payload: &'a str,
}

/// Running state of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Acc {
    Value(Option<Scalar>),
    Count(i64),
}

/// State of one live aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct AggState {
    pub version: Option<i64>,
    pub first_event_at: i64,
    pub last_event_at: i64,
    pub columns: Vec<Acc>,
}

/// Live aggregates by id.
pub type States = BTreeMap<String, AggState>;

impl Folder {
    pub fn new(p: &Projection) -> Result<Self> {
        let err = |message: String| Error::Config { projection: p.name.clone(), message };
        let mut columns = Vec::new();
        for c in &p.columns {
            let ty = ColumnType::parse(&c.ty).ok_or_else(|| err(format!("column {}: unknown type {}", c.name, c.ty)))?;
            let input = match (&c.path, &c.field) {
                (Some(path), _) => Input::Path(JsonPath::parse(path).map_err(|e| err(e.to_string()))?),
                (None, Some(field)) => Input::Field(field.clone()),
                (None, None) => Input::None,
            };
            let when = (!c.when.is_empty()).then(|| c.when.iter().cloned().collect());
            columns.push(ColumnSpec { name: c.name.clone(), fold: c.fold, ty, input, when });
        }
        let needs_payload = columns.iter().any(|c| matches!(c.input, Input::Path(_)));
        Ok(Self {
            name: p.name.clone(),
            aggregate_type: p.aggregate_type.clone(),
            delete_on: p.delete_on.iter().cloned().collect(),
            columns,
            needs_payload,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn aggregate_type(&self) -> &str {
        &self.aggregate_type
    }

    /// Column names of the configured columns, in order.
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// Folds one event into `states`. Events must come in order per aggregate.
    /// Returns the number of values that did not cast.
    pub fn apply(&self, states: &mut States, e: &FoldEvent<'_>) -> u64 {
        if e.aggregate_type != self.aggregate_type {
            return 0;
        }
        if self.delete_on.contains(e.event_type) {
            states.remove(e.aggregate_id);
            return 0;
        }
        let payload: Option<Value> = if self.needs_payload { serde_json::from_str(e.payload).ok() } else { None };
        let state = states.entry(e.aggregate_id.to_owned()).or_insert_with(|| AggState {
            version: None,
            first_event_at: e.occurred_at,
            last_event_at: e.occurred_at,
            columns: self.columns.iter().map(|c| if c.fold == Fold::Count { Acc::Count(0) } else { Acc::Value(None) }).collect(),
        });
        if e.sequence.is_some() {
            state.version = e.sequence;
        }
        state.last_event_at = e.occurred_at;
        let mut cast_errors = 0;
        for (spec, acc) in self.columns.iter().zip(state.columns.iter_mut()) {
            if spec.when.as_ref().is_some_and(|w| !w.contains(e.event_type)) {
                continue;
            }
            if let Acc::Count(n) = acc {
                *n += 1;
                continue;
            }
            let raw = match &spec.input {
                Input::Path(p) => payload.as_ref().and_then(|v| p.find(v)).cloned(),
                Input::Field(f) => Some(field_value(e, f)),
                Input::None => None,
            };
            let value = match raw {
                None | Some(Value::Null) => None,
                Some(v) => match cast(&v, spec.ty) {
                    Some(s) => Some(s),
                    None => {
                        cast_errors += 1;
                        None
                    }
                },
            };
            let Some(value) = value else { continue };
            let Acc::Value(current) = acc else { continue };
            *current = match (spec.fold, current.take()) {
                (Fold::First, Some(old)) => Some(old),
                (Fold::First, None) | (Fold::Last, _) => Some(value),
                (Fold::Sum, None) => Some(value),
                (Fold::Sum, Some(old)) => add(&old, &value),
                (Fold::Min, Some(old)) => Some(if value.partial_cmp(&old) == Some(Ordering::Less) { value } else { old }),
                (Fold::Max, Some(old)) => Some(if value.partial_cmp(&old) == Some(Ordering::Greater) { value } else { old }),
                (Fold::Min | Fold::Max, None) => Some(value),
                (Fold::Count, c) => c,
            };
        }
        cast_errors
    }

    /// The schema of a snapshot row (with `snapshot_date` when `with_date`).
    pub fn schema(&self, with_date: bool) -> SchemaRef {
        let mut fields = Vec::new();
        if with_date {
            fields.push(Field::new("snapshot_date", DataType::Date32, false));
        }
        fields.push(Field::new("aggregate_id", DataType::Utf8, false));
        fields.push(Field::new("version", DataType::Int64, true));
        fields.push(Field::new("first_event_at", delta_timestamp(), false));
        fields.push(Field::new("last_event_at", delta_timestamp(), false));
        for c in &self.columns {
            let nullable = c.fold != Fold::Count;
            let ty = if c.fold == Fold::Count { DataType::Int64 } else { c.ty.arrow() };
            fields.push(Field::new(&c.name, ty, nullable));
        }
        Arc::new(Schema::new(fields))
    }

    /// Snapshot rows, sorted by aggregate id (the file schema: no `snapshot_date`).
    pub fn to_batch(&self, states: &States) -> Result<RecordBatch> {
        self.to_batch_with_date(states, None)
    }

    /// Like [`Folder::to_batch`], with a leading `snapshot_date` column when given.
    pub fn to_batch_with_date(&self, states: &States, date: Option<NaiveDate>) -> Result<RecordBatch> {
        let n = states.len();
        let mut ids = StringBuilder::with_capacity(n, n * 12);
        let mut versions = Int64Builder::with_capacity(n);
        let mut firsts = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut lasts = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        for (id, s) in states {
            ids.append_value(id);
            versions.append_option(s.version);
            firsts.append_value(s.first_event_at);
            lasts.append_value(s.last_event_at);
        }
        let mut columns: Vec<ArrayRef> = Vec::new();
        if let Some(d) = date {
            columns.push(Arc::new(Date32Array::from(vec![crate::events::date32(d); n])));
        }
        columns.push(Arc::new(ids.finish()));
        columns.push(Arc::new(versions.finish()));
        columns.push(Arc::new(firsts.finish()));
        columns.push(Arc::new(lasts.finish()));
        for (i, spec) in self.columns.iter().enumerate() {
            columns.push(build_column(spec, states.values().map(|s| &s.columns[i])));
        }
        Ok(RecordBatch::try_new(self.schema(date.is_some()), columns)?)
    }

    /// Reads snapshot rows (file schema) back into states.
    pub fn from_batch(&self, batch: &RecordBatch, states: &mut States) -> Result<()> {
        let input = |name: &str| Error::Input { projection: self.name.clone(), column: name.to_owned() };
        let get = |name: &str| batch.column_by_name(name).ok_or_else(|| input(name));
        let ids = get("aggregate_id")?.as_any().downcast_ref::<StringArray>().ok_or_else(|| input("aggregate_id"))?;
        let versions = get("version")?.as_any().downcast_ref::<Int64Array>().ok_or_else(|| input("version"))?;
        let firsts = micros(get("first_event_at")?).ok_or_else(|| input("first_event_at"))?;
        let lasts = micros(get("last_event_at")?).ok_or_else(|| input("last_event_at"))?;
        let cols: Vec<&ArrayRef> = self.columns.iter().map(|c| get(&c.name)).collect::<Result<_>>()?;
        for row in 0..batch.num_rows() {
            let columns = self
                .columns
                .iter()
                .zip(&cols)
                .map(|(spec, arr)| read_acc(spec, arr, row).ok_or_else(|| input(&spec.name)))
                .collect::<Result<Vec<_>>>()?;
            states.insert(
                ids.value(row).to_owned(),
                AggState {
                    version: versions.is_valid(row).then(|| versions.value(row)),
                    first_event_at: firsts.value(row),
                    last_event_at: lasts.value(row),
                    columns,
                },
            );
        }
        Ok(())
    }
}

fn micros(a: &ArrayRef) -> Option<&TimestampMicrosecondArray> {
    a.as_any().downcast_ref::<TimestampMicrosecondArray>()
}

fn field_value(e: &FoldEvent<'_>, field: &str) -> Value {
    match field {
        "event_id" => Value::from(e.event_id),
        "event_type" => Value::from(e.event_type),
        "event_version" => Value::from(e.event_version),
        "aggregate_type" => Value::from(e.aggregate_type),
        "aggregate_id" => Value::from(e.aggregate_id),
        "sequence" => e.sequence.map(Value::from).unwrap_or(Value::Null),
        "occurred_at" => Value::from(MicrosTag(e.occurred_at).to_string()),
        "ingested_at" => Value::from(MicrosTag(e.ingested_at).to_string()),
        "source" => Value::from(e.source),
        _ => Value::Null,
    }
}

/// Envelope timestamps travel through casts as RFC 3339 text.
struct MicrosTag(i64);

impl std::fmt::Display for MicrosTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = chrono::DateTime::from_timestamp_micros(self.0).unwrap_or_default();
        write!(f, "{}", t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }
}

/// Casts a JSON value to a column type; `None` when it does not cast.
pub fn cast(v: &Value, ty: ColumnType) -> Option<Scalar> {
    match ty {
        ColumnType::Varchar => Some(Scalar::Text(match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })),
        ColumnType::Bigint => match v {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18).map(|f| f as i64)),
            Value::String(s) => s.trim().parse().ok(),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
        .map(Scalar::Int),
        ColumnType::Double => match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .map(Scalar::Float),
        ColumnType::Boolean => match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            Value::Number(n) => n.as_i64().filter(|i| *i == 0 || *i == 1).map(|i| i == 1),
            _ => None,
        }
        .map(Scalar::Bool),
        ColumnType::Timestamp => match v {
            Value::String(s) => parse_timestamp(s),
            Value::Number(n) => n.as_i64().map(|ms| ms * 1000),
            _ => None,
        }
        .map(Scalar::Micros),
        ColumnType::Date => match v {
            Value::String(s) => s.trim().get(..10).and_then(|d| d.parse::<NaiveDate>().ok()).map(crate::events::date32),
            _ => None,
        }
        .map(Scalar::Days),
        ColumnType::Decimal(p, s) => {
            let text = match v {
                Value::Number(n) => n.to_string(),
                Value::String(t) => t.trim().to_owned(),
                _ => return None,
            };
            parse_decimal(&text, p, s).map(Scalar::Decimal)
        }
    }
}

fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    s.parse::<NaiveDate>().ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc().timestamp_micros())
}

/// Parses decimal text into an unscaled integer at scale `s`, rounding half
/// away from zero; `None` if it does not fit precision `p`.
pub fn parse_decimal(text: &str, p: u8, s: i8) -> Option<i128> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exp) = match digits.find(['e', 'E']) {
        Some(i) => (&digits[..i], digits[i + 1..].parse::<i32>().ok()?),
        None => (digits, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let all: String = format!("{int}{frac}");
    // value = all × 10^(exp − len(frac)); want value × 10^s
    let shift = exp - frac.len() as i32 + s as i32;
    let mut n: i128 = 0;
    for c in all.chars() {
        n = n.checked_mul(10)?.checked_add((c as u8 - b'0') as i128)?;
    }
    if shift >= 0 {
        for _ in 0..shift {
            n = n.checked_mul(10)?;
        }
    } else {
        let div = 10i128.checked_pow((-shift) as u32)?;
        let (q, r) = (n / div, n % div);
        n = if r * 2 >= div { q + 1 } else { q };
    }
    if n >= 10i128.pow(p as u32) {
        return None;
    }
    Some(if neg { -n } else { n })
}

fn add(a: &Scalar, b: &Scalar) -> Option<Scalar> {
    match (a, b) {
        (Scalar::Int(x), Scalar::Int(y)) => x.checked_add(*y).map(Scalar::Int),
        (Scalar::Float(x), Scalar::Float(y)) => Some(Scalar::Float(x + y)),
        (Scalar::Decimal(x), Scalar::Decimal(y)) => x.checked_add(*y).map(Scalar::Decimal),
        _ => None,
    }
}

fn build_column<'a>(spec: &ColumnSpec, accs: impl Iterator<Item = &'a Acc>) -> ArrayRef {
    let values: Vec<&Acc> = accs.collect();
    let n = values.len();
    let get = |a: &Acc| match a {
        Acc::Value(v) => v.clone(),
        Acc::Count(c) => Some(Scalar::Int(*c)),
    };
    if spec.fold == Fold::Count {
        let mut b = Int64Builder::with_capacity(n);
        for a in values {
            b.append_option(match get(a) {
                Some(Scalar::Int(i)) => Some(i),
                _ => None,
            });
        }
        return Arc::new(b.finish());
    }
    match spec.ty {
        ColumnType::Varchar => {
            let mut b = StringBuilder::with_capacity(n, n * 8);
            for a in values {
                b.append_option(match get(a) {
                    Some(Scalar::Text(s)) => Some(s),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnType::Bigint => {
            let mut b = Int64Builder::with_capacity(n);
            for a in values {
                b.append_option(match get(a) {
                    Some(Scalar::Int(i)) => Some(i),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnType::Double => {
            let mut b = Float64Builder::with_capacity(n);
            for a in values {
                b.append_option(match get(a) {
                    Some(Scalar::Float(f)) => Some(f),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(n);
            for a in values {
                b.append_option(match get(a) {
                    Some(Scalar::Bool(x)) => Some(x),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnType::Timestamp => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
            for a in values {
                b.append_option(match get(a) {
                    Some(Scalar::Micros(x)) => Some(x),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnType::Date => {
            let mut b = Date32Builder::with_capacity(n);
            for a in values {
                b.append_option(match get(a) {
                    Some(Scalar::Days(x)) => Some(x),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnType::Decimal(p, s) => {
            let mut b = Decimal128Builder::with_capacity(n);
            for a in values {
                b.append_option(match get(a) {
                    Some(Scalar::Decimal(x)) => Some(x),
                    _ => None,
                });
            }
            Arc::new(b.finish().with_precision_and_scale(p, s).unwrap_or_else(|_| Decimal128Array::from(vec![None::<i128>; n])))
        }
    }
}

fn read_acc(spec: &ColumnSpec, arr: &ArrayRef, row: usize) -> Option<Acc> {
    let any = arr.as_any();
    if spec.fold == Fold::Count {
        let a = any.downcast_ref::<Int64Array>()?;
        return Some(Acc::Count(if a.is_valid(row) { a.value(row) } else { 0 }));
    }
    if arr.is_null(row) {
        return Some(Acc::Value(None));
    }
    let v = match spec.ty {
        ColumnType::Varchar => Scalar::Text(any.downcast_ref::<StringArray>()?.value(row).to_owned()),
        ColumnType::Bigint => Scalar::Int(any.downcast_ref::<Int64Array>()?.value(row)),
        ColumnType::Double => Scalar::Float(any.downcast_ref::<Float64Array>()?.value(row)),
        ColumnType::Boolean => Scalar::Bool(any.downcast_ref::<BooleanArray>()?.value(row)),
        ColumnType::Timestamp => Scalar::Micros(any.downcast_ref::<TimestampMicrosecondArray>()?.value(row)),
        ColumnType::Date => Scalar::Days(any.downcast_ref::<Date32Array>()?.value(row)),
        ColumnType::Decimal(..) => Scalar::Decimal(any.downcast_ref::<Decimal128Array>()?.value(row)),
    };
    Some(Acc::Value(Some(v)))
}

/// Folds every row of an events batch (columns named as in `events`; any
/// timestamp unit). Rows must be in fold order. Returns cast errors per column.
pub fn fold_batch(folder: &Folder, states: &mut States, batch: &RecordBatch, cast_errors: &mut u64) -> Result<()> {
    use arrow::compute::cast as arrow_cast;
    let input = |name: &str| Error::Input { projection: folder.name.clone(), column: name.to_owned() };
    let text = |name: &str| -> Result<&StringArray> {
        batch.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<StringArray>()).ok_or_else(|| input(name))
    };
    let ts = |name: &str| -> Result<TimestampMicrosecondArray> {
        let c = batch.column_by_name(name).ok_or_else(|| input(name))?;
        let m = arrow_cast(c, &delta_timestamp())?;
        m.as_any().downcast_ref::<TimestampMicrosecondArray>().cloned().ok_or_else(|| input(name))
    };
    let (ids, types, agg_types, agg_ids, sources, payloads) =
        (text("event_id")?, text("event_type")?, text("aggregate_type")?, text("aggregate_id")?, text("source")?, text("payload")?);
    let versions = batch
        .column_by_name("event_version")
        .and_then(|c| c.as_any().downcast_ref::<arrow::array::Int32Array>())
        .ok_or_else(|| input("event_version"))?;
    let seqs = batch.column_by_name("sequence").and_then(|c| c.as_any().downcast_ref::<Int64Array>()).ok_or_else(|| input("sequence"))?;
    let (occurred, ingested) = (ts("occurred_at")?, ts("ingested_at")?);
    for i in 0..batch.num_rows() {
        let e = FoldEvent {
            event_id: ids.value(i),
            event_type: types.value(i),
            event_version: versions.value(i),
            aggregate_type: agg_types.value(i),
            aggregate_id: agg_ids.value(i),
            sequence: seqs.is_valid(i).then(|| seqs.value(i)),
            occurred_at: occurred.value(i),
            ingested_at: ingested.value(i),
            source: sources.value(i),
            payload: payloads.value(i),
        };
        *cast_errors += folder.apply(states, &e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sediment_lake::Config;

    fn folder() -> Folder {
        let c = Config::parse(
            r#"
[[projection]]
name = "orders"
aggregate_type = "Order"
delete_on = ["OrderDeleted"]
columns = [
  { name = "status", fn = "last", path = "$.status" },
  { name = "customer_id", fn = "first", path = "$.customer_id" },
  { name = "items", fn = "sum", path = "$.quantity", type = "bigint", when = ["ItemAdded"] },
  { name = "biggest", fn = "max", path = "$.quantity", type = "bigint" },
  { name = "amount", fn = "sum", path = "$.amount", type = "decimal(10,2)" },
  { name = "placed_at", fn = "first", field = "occurred_at", type = "timestamp", when = ["OrderPlaced"] },
  { name = "payments", fn = "count", when = ["PaymentReceived"] },
]
"#,
        )
        .unwrap();
        Folder::new(&c.projections[0]).unwrap()
    }

    fn ev<'a>(id: &'a str, ty: &'a str, agg: &'a str, seq: i64, payload: &'a str) -> FoldEvent<'a> {
        FoldEvent {
            event_id: id,
            event_type: ty,
            event_version: 1,
            aggregate_type: "Order",
            aggregate_id: agg,
            sequence: Some(seq),
            occurred_at: seq * 1_000_000,
            ingested_at: 0,
            source: "cli",
            payload,
        }
    }

    #[test]
    fn fold_semantics() {
        let f = folder();
        let mut s = States::new();
        let mut errors = 0;
        for e in [
            ev("1", "OrderPlaced", "o1", 1, r#"{"status":"placed","customer_id":"c1"}"#),
            ev("2", "ItemAdded", "o1", 2, r#"{"quantity":2}"#),
            ev("3", "ItemAdded", "o1", 3, r#"{"quantity":"x"}"#),
            ev("4", "ItemAdded", "o1", 4, r#"{"quantity":5,"customer_id":"c2"}"#),
            ev("5", "PaymentReceived", "o1", 5, r#"{"status":"paid","amount":"12.345"}"#),
            ev("6", "PaymentReceived", "o1", 6, r#"{"status":null,"amount":1}"#),
            ev("7", "OrderPlaced", "o2", 1, r#"{}"#),
        ] {
            errors += f.apply(&mut s, &e);
        }
        assert_eq!(errors, 2, "\"x\" fails bigint twice (sum, max)");
        let o1 = &s["o1"];
        assert_eq!(o1.version, Some(6));
        assert_eq!(o1.first_event_at, 1_000_000);
        assert_eq!(o1.last_event_at, 6_000_000);
        assert_eq!(
            o1.columns,
            vec![
                Acc::Value(Some(Scalar::Text("paid".into()))),
                Acc::Value(Some(Scalar::Text("c1".into()))),
                Acc::Value(Some(Scalar::Int(7))),
                Acc::Value(Some(Scalar::Int(5))),
                Acc::Value(Some(Scalar::Decimal(1335))),
                Acc::Value(Some(Scalar::Micros(1_000_000))),
                Acc::Count(2),
            ]
        );
        let o2 = &s["o2"];
        assert_eq!(o2.columns[2], Acc::Value(None), "sum of nothing is NULL");
        assert_eq!(o2.columns[6], Acc::Count(0));

        // delete resets; later events start afresh
        f.apply(&mut s, &ev("8", "OrderDeleted", "o1", 7, "{}"));
        assert!(!s.contains_key("o1"));
        f.apply(&mut s, &ev("9", "ItemAdded", "o1", 8, r#"{"quantity":1}"#));
        assert_eq!(s["o1"].columns[2], Acc::Value(Some(Scalar::Int(1))));
        assert_eq!(s["o1"].first_event_at, 8_000_000);
    }

    #[test]
    fn batches_round_trip() {
        let f = folder();
        let mut s = States::new();
        f.apply(&mut s, &ev("1", "OrderPlaced", "o1", 1, r#"{"status":"placed","amount":2.5}"#));
        f.apply(&mut s, &ev("2", "PaymentReceived", "o2", 1, r#"{"amount":-1.005}"#));
        let batch = f.to_batch(&s).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let mut back = States::new();
        f.from_batch(&batch, &mut back).unwrap();
        assert_eq!(back, s);
        assert_eq!(f.to_batch_with_date(&s, NaiveDate::from_ymd_opt(2026, 1, 2)).unwrap().num_columns(), batch.num_columns() + 1);
    }

    #[test]
    fn decimals_round_half_away_from_zero() {
        assert_eq!(parse_decimal("12.345", 10, 2), Some(1235));
        assert_eq!(parse_decimal("-1.005", 10, 2), Some(-101));
        assert_eq!(parse_decimal("1e3", 10, 2), Some(100_000));
        assert_eq!(parse_decimal("123456", 5, 0), None);
        assert_eq!(parse_decimal("abc", 5, 0), None);
        assert_eq!(parse_decimal(".5", 5, 0), Some(1));
    }
}
