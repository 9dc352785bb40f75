//! Typed event tables: one table per event type, the envelope columns of
//! `events` plus a column per top-level payload field, typed by the shape
//! the compactor inferred from the curated days (ADR 0017).
//!
//! A typed table is `events` filtered to its type, exactly once as `events`
//! is, with the payload's fields read into typed columns: `SELECT amount,
//! currency FROM payment_received WHERE dt = DATE '…'`. A column holds what
//! the JSON evaluation of the payload gives — `CAST(json_extract_scalar(
//! payload, '$.f') AS T)` for a scalar, `json_extract(payload, '$.f')` for a
//! field of mixed kinds (JSON text) — and nested objects and arrays become
//! `row(…)` and `array(…)`. The payload text stays a column and the source
//! of truth.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, StringArray, StructArray};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use async_trait::async_trait;
use chrono::NaiveDate;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, LogicalPlanBuilder, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TableProviderFilterPushDown, Volatility, cast, col, lit,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;
use sediment_lake::config::Config;
use sediment_lake::manifest::{TypedFileColumn, TypedFiles};
use sediment_lake::payload_schema::{RegistryV1, Shape};
use sediment_lake::schema::{DT, EVENT_TYPE, PAYLOAD};
use serde_json::Value;

use crate::events::{EventsTable, date32, empty, events_plan_of, exact_filters, finish_scan, load_for_scan, pushdown_by_partition};
use crate::files::{DataFile, FileListTable};
use crate::schema::{curated_events_file_schema, dt_field, events_schema};

/// An event type's name in snake case: `PaymentReceived` →
/// `payment_received`, `HTTPRequestSent` → `http_request_sent`,
/// `order.created` → `order_created`.
pub fn snake_case(event_type: &str) -> String {
    let chars: Vec<char> = event_type.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !out.ends_with('_') {
                out.push('_');
            }
            continue;
        }
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if (prev.is_ascii_lowercase() || prev.is_ascii_digit() || (prev.is_ascii_uppercase() && next_lower)) && !out.ends_with('_') {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    let out = out.trim_matches('_').to_owned();
    if out.starts_with(|c: char| c.is_ascii_digit()) { format!("_{out}") } else { out }
}

/// One payload field as a column.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedColumn {
    /// The column's name: the field's, lower-cased (SQL names are), with
    /// `payload_` before it where an envelope column has the name.
    pub name: String,
    /// The member name in the payload.
    pub field: String,
    /// What the column holds (integers as `bigint`, fields only ever null
    /// as JSON text).
    pub shape: Shape,
}

/// One typed event table.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedTableDef {
    pub name: String,
    pub event_type: String,
    pub columns: Vec<TypedColumn>,
}

/// What could not be served as asked, said in `status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TypedTableProblem {
    pub event_type: String,
    pub problem: String,
}

/// The shape a column holds: integers widen to `bigint` (a later day's
/// value past 32 bits then still fits), a field only ever null is JSON text.
pub fn column_shape(shape: &Shape) -> Shape {
    match shape {
        Shape::Integer => Shape::Bigint,
        Shape::Null => Shape::Json,
        Shape::Array { element } => Shape::Array { element: Box::new(column_shape(element)) },
        Shape::Object { fields } => Shape::Object { fields: fields.iter().map(|(k, s)| (k.clone(), column_shape(s))).collect() },
        other => other.clone(),
    }
}

/// The typed tables of the registries' event types, named by the config's
/// `[[event_table]]` entries or in snake case, none taking a name in
/// `taken`. Every version's shape is merged: a column stands for the field in
/// whichever version it was written.
pub fn definitions(config: &Config, registries: &[RegistryV1], taken: &HashSet<String>) -> (Vec<TypedTableDef>, Vec<TypedTableProblem>) {
    let envelope: HashSet<String> = events_schema().fields().iter().map(|f| f.name().clone()).collect();
    let mut defs = Vec::new();
    let mut problems = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for registry in registries {
        let event_type = &registry.event_type;
        let configured = config.event_tables.iter().find(|t| &t.event_type == event_type);
        if configured.is_some_and(|t| !t.served) {
            continue;
        }
        let name = configured.and_then(|t| t.name.clone()).unwrap_or_else(|| snake_case(event_type));
        let problem = |problem: String| TypedTableProblem { event_type: event_type.clone(), problem };
        if name.is_empty() {
            problems.push(problem("its name in snake case is empty: name its table with [[event_table]]".into()));
            continue;
        }
        if taken.contains(&name) || envelope.contains(&name) {
            problems.push(problem(format!("its table name {name:?} is taken by another table: name it with [[event_table]]")));
            continue;
        }
        if let Some(other) = names.insert(name.clone(), event_type.clone()) {
            problems.push(problem(format!("its table name {name:?} is also {other:?}'s: name one with [[event_table]]")));
            continue;
        }
        let merged = registry.versions.iter().fold(Shape::Null, |s, v| s.merge(&v.shape));
        let mut columns = Vec::new();
        match merged {
            Shape::Object { fields } => {
                let mut used: HashSet<String> = envelope.clone();
                // A field already in lower case keeps its name before one
                // that only lower-cases to it.
                let (lower, other): (Vec<_>, Vec<_>) = fields.into_iter().partition(|(f, _)| *f == f.to_lowercase());
                for (field, shape) in lower.into_iter().chain(other) {
                    let lower = field.to_lowercase();
                    let name = if used.contains(&lower) { format!("payload_{lower}") } else { lower };
                    if !used.insert(name.clone()) {
                        problems.push(problem(format!("payload field {field:?} has no column: its name {name:?} is another field's")));
                        continue;
                    }
                    columns.push(TypedColumn { name, field, shape: column_shape(&shape) });
                }
                columns.sort_by(|a, b| a.field.cmp(&b.field));
            }
            Shape::Null => {}
            other => problems.push(problem(format!("its payloads are {}, not objects: no typed columns", other.trino_type()))),
        }
        defs.push(TypedTableDef { name, event_type: event_type.clone(), columns });
    }
    defs.sort_by(|a, b| a.name.cmp(&b.name));
    (defs, problems)
}

impl TypedTableDef {
    /// `events`' columns, then the payload's.
    pub fn schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = events_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(self.columns.iter().map(|c| Field::new(&c.name, c.shape.arrow_type(), true)));
        Arc::new(Schema::new(fields))
    }
}

// --- the payload's columns ---------------------------------------------------

/// `payload_columns(payload)`: the wanted top-level members of a JSON
/// payload as a struct of typed fields, each payload read once. A value the
/// shape cannot hold (a hot day's, not yet in the curated shape) is an
/// error naming the field, never a silent NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PayloadColumns {
    /// (member name, shape), in the struct's order.
    members: Vec<(String, Shape)>,
    fields: Fields,
    signature: Signature,
}

impl PayloadColumns {
    pub fn new(columns: &[&TypedColumn]) -> Self {
        let members = columns.iter().map(|c| (c.field.clone(), c.shape.clone())).collect();
        let fields = columns.iter().map(|c| Field::new(&c.name, c.shape.arrow_type(), true)).collect();
        Self { members, fields, signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for PayloadColumns {
    fn name(&self) -> &str {
        "payload_columns"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(self.fields.clone()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let payloads = args.args[0].to_array(args.number_rows)?;
        let columns = payload_arrays(&self.members, payloads.as_string::<i32>()).map_err(|(member, e)| {
            datafusion::error::DataFusionError::Execution(format!(
                "payload field {member:?}: {e}; the typed table's schema comes from the compacted days, and widens when this day is \
                 compacted: read the field from `payload` until then"
            ))
        })?;
        Ok(ColumnarValue::Array(Arc::new(StructArray::try_new(self.fields.clone(), columns, None)?)))
    }
}

/// The `members` (name, shape) of JSON payloads as columns, each payload
/// read once: what `json_extract` and `CAST(json_extract_scalar(…) AS T)`
/// give for each. A value its shape cannot hold is an error naming the
/// member.
pub fn payload_arrays(members: &[(String, Shape)], payloads: &StringArray) -> std::result::Result<Vec<ArrayRef>, (String, String)> {
    let slots: HashMap<&str, usize> = members.iter().enumerate().map(|(i, (m, _))| (m.as_str(), i)).collect();
    let mut values: Vec<Vec<Option<Value>>> = vec![Vec::with_capacity(payloads.len()); members.len()];
    let mut found: Vec<Option<&str>> = vec![None; members.len()];
    for row in 0..payloads.len() {
        found.iter_mut().for_each(|f| *f = None);
        if payloads.is_valid(row) {
            sediment_trino::object_members(payloads.value(row), |k| slots.get(k).copied(), &mut found);
        }
        for (column, text) in values.iter_mut().zip(&found) {
            column.push(text.and_then(sediment_lake::payload_schema::parse).filter(|v| !v.is_null()));
        }
    }
    members
        .iter()
        .zip(&values)
        .map(|((member, shape), column)| {
            let refs: Vec<Option<&Value>> = column.iter().map(Option::as_ref).collect();
            build(shape, &refs).map_err(|e| (member.clone(), e))
        })
        .collect()
}

/// The name of a payload field's column in a typed file.
pub fn typed_file_column(field: &str) -> String {
    format!("payload.{field}")
}

/// The payload columns of a typed file for a day's merged shape of an event
/// type: a column per top-level scalar field with a value that day, typed
/// as the typed tables type it; and the fields with values it holds no
/// column of (objects, arrays, mixed kinds: read from the payload, which
/// the copy does not repeat). `None` when the payloads are not objects.
pub fn typed_file_columns(day: &Shape) -> Option<(Vec<TypedFileColumn>, Vec<String>)> {
    let Shape::Object { fields } = day else { return None };
    let mut columns = Vec::new();
    let mut parsed = Vec::new();
    for (field, shape) in fields.iter().filter(|(_, s)| **s != Shape::Null) {
        match column_shape(shape) {
            shape @ (Shape::Boolean | Shape::Bigint | Shape::Double | Shape::Varchar) => {
                columns.push(TypedFileColumn { field: field.clone(), column: typed_file_column(field), shape })
            }
            _ => parsed.push(field.clone()),
        }
    }
    Some((columns, parsed))
}

/// The schema of a typed file: the curated file's columns but the payload,
/// then the payload's fields.
pub fn typed_file_schema(columns: &[TypedFileColumn]) -> SchemaRef {
    let mut fields: Vec<Field> =
        curated_events_file_schema().fields().iter().filter(|f| f.name() != PAYLOAD).map(|f| f.as_ref().clone()).collect();
    fields.extend(columns.iter().map(|c| Field::new(&c.column, c.shape.arrow_type(), true)));
    Arc::new(Schema::new(fields))
}

/// Whether a day's typed copy holds `field` as a column of a shape `serves`
/// accepts, or the day has no value of it (NULL).
pub(crate) fn copy_serves(copy: &TypedFiles, field: &str, serves: impl Fn(&Shape) -> bool) -> bool {
    if copy.parsed.iter().any(|f| f == field) {
        return false;
    }
    match copy.columns.iter().find(|c| c.field == field) {
        None => true,
        Some(c) => c.column == typed_file_column(&c.field) && serves(&c.shape),
    }
}

/// A column of `shape` from JSON values (`None`: SQL NULL).
fn build(shape: &Shape, values: &[Option<&Value>]) -> std::result::Result<ArrayRef, String> {
    let misfit = |v: &Value| format!("the value {v} is not {}", shape.trino_type());
    Ok(match shape {
        Shape::Boolean => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    None => Ok(None),
                    Some(Value::Bool(b)) => Ok(Some(*b)),
                    Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
                    Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
                    Some(v) => Err(misfit(v)),
                })
                .collect::<std::result::Result<BooleanArray, String>>()?,
        ),
        Shape::Integer | Shape::Bigint => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    None => Ok(None),
                    Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| misfit(&Value::Number(n.clone()))),
                    Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| misfit(&Value::String(s.clone()))),
                    Some(v) => Err(misfit(v)),
                })
                .collect::<std::result::Result<Int64Array, String>>()?,
        ),
        Shape::Double => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    None => Ok(None),
                    Some(Value::Number(n)) => n.as_f64().map(Some).ok_or_else(|| misfit(&Value::Number(n.clone()))),
                    Some(Value::String(s)) => s.trim().parse::<f64>().map(Some).map_err(|_| misfit(&Value::String(s.clone()))),
                    Some(v) => Err(misfit(v)),
                })
                .collect::<std::result::Result<Float64Array, String>>()?,
        ),
        Shape::Varchar => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    None => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    // As json_extract_scalar gives a scalar's text.
                    Some(Value::Bool(b)) => Ok(Some(b.to_string())),
                    Some(Value::Number(n)) => Ok(Some(n.to_string())),
                    Some(v) => Err(misfit(v)),
                })
                .collect::<std::result::Result<StringArray, String>>()?,
        ),
        // JSON text, as json_extract renders it.
        Shape::Null | Shape::Json => Arc::new(values.iter().map(|v| v.map(Value::to_string)).collect::<StringArray>()),
        Shape::Array { element } => {
            let mut items: Vec<Option<&Value>> = Vec::new();
            let mut lengths: Vec<usize> = Vec::with_capacity(values.len());
            let mut valid: Vec<bool> = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    None => {
                        lengths.push(0);
                        valid.push(false);
                    }
                    Some(Value::Array(a)) => {
                        items.extend(a.iter().map(|x| Some(x).filter(|x| !x.is_null())));
                        lengths.push(a.len());
                        valid.push(true);
                    }
                    Some(v) => return Err(misfit(v)),
                }
            }
            let child = build(element, &items)?;
            let field = Arc::new(Field::new("item", element.arrow_type(), true));
            Arc::new(
                ListArray::try_new(field, OffsetBuffer::from_lengths(lengths), child, Some(NullBuffer::from(valid)))
                    .map_err(|e| e.to_string())?,
            )
        }
        Shape::Object { fields } => {
            let mut valid: Vec<bool> = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    None => valid.push(false),
                    Some(Value::Object(_)) => valid.push(true),
                    Some(v) => return Err(misfit(v)),
                }
            }
            let mut arrays = Vec::with_capacity(fields.len());
            for (name, s) in fields {
                let member: Vec<Option<&Value>> = values.iter().map(|v| v.and_then(|o| o.get(name)).filter(|x| !x.is_null())).collect();
                arrays.push(build(s, &member).map_err(|e| format!("{name}: {e}"))?);
            }
            let DataType::Struct(struct_fields) = shape.arrow_type() else { unreachable!("an object's type is a struct") };
            if struct_fields.is_empty() {
                return Ok(Arc::new(StructArray::new_empty_fields(values.len(), Some(NullBuffer::from(valid)))));
            }
            Arc::new(StructArray::try_new(struct_fields, arrays, Some(NullBuffer::from(valid))).map_err(|e| e.to_string())?)
        }
    })
}

// --- the table ---------------------------------------------------------------

/// The typed table of one event type.
#[derive(Debug)]
pub struct TypedEventsTable {
    events: EventsTable,
    def: TypedTableDef,
    schema: SchemaRef,
}

impl TypedEventsTable {
    pub fn new(events: EventsTable, def: TypedTableDef) -> Self {
        let schema = def.schema();
        Self { events, def, schema }
    }
}

#[async_trait]
impl TableProvider for TypedEventsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(pushdown_by_partition(filters, DT))
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = load_for_scan(&self.events, session, filters).await?;
        if state.curated.is_empty() && state.raw.is_empty() {
            return empty(&self.schema, projection);
        }
        let envelope = events_schema().fields().len();
        let wanted: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..self.schema.fields().len()).collect());
        let typed: Vec<&TypedColumn> = wanted.iter().filter(|&&i| i >= envelope).map(|&i| &self.def.columns[i - envelope]).collect();
        // Curated days without the type are left out; days whose typed copy
        // holds every wanted column as this table types it are read from it.
        let (copies, elsewhere) =
            days_of_type(&state, &self.def.event_type, &self.schema, &wanted, |copy| typed.iter().all(|c| serves(copy, c)));
        let mut parts = Vec::new();
        if !copies.is_empty() {
            let stored = |i: usize| typed_file_column(&self.def.columns[i - envelope].field);
            parts.push(copies_plan(session, &self.schema, &wanted, &stored, &copies, filters, limit).await?);
        }
        if let Some(plan) = events_plan_of(&state, &|d| !elsewhere.contains(&d))? {
            parts.push(self.scan_payloads(session, plan, &wanted, &typed, filters, limit).await?);
        }
        if parts.is_empty() {
            return empty(&self.schema, projection);
        }
        UnionExec::try_new(parts)
    }
}

/// Whether a day's typed copy serves `column` as its table types it: the
/// day's column has the table's type (or is `bigint` where the table's is
/// `double`, a widening cast), or the day has no value for the field.
fn serves(copy: &TypedFiles, column: &TypedColumn) -> bool {
    copy_serves(copy, &column.field, |s| *s == column.shape || (*s == Shape::Bigint && column.shape == Shape::Double))
}

/// The days' typed copies as the `wanted` columns of `schema` (`events`'
/// columns, then payload columns, each stored as `stored(index)` and cast
/// to the column's type), the filters on `dt` applied, `limit` when every
/// filter is on `dt`.
pub(crate) async fn copies_plan(
    session: &dyn Session,
    schema: &SchemaRef,
    wanted: &[usize],
    stored: &(dyn Fn(usize) -> String + Sync),
    copies: &[(NaiveDate, &TypedFiles)],
    filters: &[Expr],
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let envelope = events_schema().fields().len();
    let columns: Vec<(String, &Field)> = wanted
        .iter()
        .map(|&i| {
            let field = schema.field(i);
            (if i < envelope { field.name().clone() } else { stored(i) }, field)
        })
        .collect();
    let curated = curated_events_file_schema();
    // A copy holds no payload: none is asked of it.
    let mut fields: Vec<Field> = curated.fields().iter().filter(|f| f.name() != PAYLOAD).map(|f| f.as_ref().clone()).collect();
    fields.extend(
        columns
            .iter()
            .filter(|(stored, _)| stored != DT && curated.index_of(stored).is_err())
            .map(|(stored, f)| Field::new(stored, f.data_type().clone(), true)),
    );
    let files: Vec<DataFile> = copies
        .iter()
        .flat_map(|(dt, copy)| {
            copy.files.iter().map(|f| DataFile {
                key: f.key.clone(),
                size: f.size,
                num_rows: Some(f.rows as usize),
                partition_values: vec![ScalarValue::Date32(Some(date32(*dt)))],
            })
        })
        .collect();
    let table = FileListTable::new(Arc::new(Schema::new(fields)), vec![Arc::new(dt_field())], files);
    let mut plan = LogicalPlanBuilder::scan("typed", provider_as_source(Arc::new(table)), None)?;
    let (exact, all) = exact_filters(filters, DT);
    if let Some(predicate) = conjunction(exact) {
        plan = plan.filter(predicate)?;
    }
    plan = plan.project(columns.iter().map(|(stored, field)| {
        cast(Expr::Column(datafusion::common::Column::new_unqualified(stored)), field.data_type().clone()).alias(field.name())
    }))?;
    if let Some(n) = limit.filter(|_| all) {
        plan = plan.limit(0, Some(n))?;
    }
    session.create_physical_plan(&plan.build()?).await
}

/// The curated days `events` of `event_type` reads from typed copies, and
/// the days it need not read (their manifests record no row of the type).
/// A copy is used when the `wanted` columns of `schema` do not include the
/// payload (a copy does not repeat it) and `serves` accepts it.
pub(crate) fn days_of_type<'s>(
    state: &'s crate::state::EventsState,
    event_type: &str,
    schema: &Schema,
    wanted: &[usize],
    serves: impl Fn(&TypedFiles) -> bool,
) -> (Vec<(NaiveDate, &'s TypedFiles)>, HashSet<NaiveDate>) {
    let payload_wanted = wanted.iter().any(|&i| schema.field(i).name() == PAYLOAD);
    let mut copies = Vec::new();
    let mut elsewhere = HashSet::new();
    for (dt, day) in &state.curated {
        let manifest = &day.manifest;
        if manifest.shapes.as_ref().is_some_and(|shapes| !shapes.iter().any(|s| s.event_type == event_type)) {
            elsewhere.insert(*dt);
        } else if let Some(copy) = manifest.typed.iter().flatten().find(|t| t.event_type == event_type)
            && !payload_wanted
            && serves(copy)
        {
            copies.push((*dt, copy));
            elsewhere.insert(*dt);
        }
    }
    (copies, elsewhere)
}

impl TypedEventsTable {
    /// The wanted columns from `events` of the type, the payload parsed.
    async fn scan_payloads(
        &self,
        session: &dyn Session,
        events: LogicalPlan,
        wanted: &[usize],
        typed: &[&TypedColumn],
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let envelope = events_schema();
        // `events` of the type, its envelope columns the query reads (and the
        // payload, when typed columns are read from it).
        let payload = envelope.index_of(PAYLOAD)?;
        let mut read: Vec<usize> = wanted.iter().copied().filter(|&i| i < envelope.fields().len()).collect();
        if !typed.is_empty() && !read.contains(&payload) {
            read.push(payload);
        }
        let plan = LogicalPlanBuilder::from(events).filter(col(EVENT_TYPE).eq(lit(self.def.event_type.as_str())))?;
        let plan = finish_scan(plan, &envelope, filters, DT, Some(&read), limit)?;
        let input = session.create_physical_plan(&plan).await?;
        if typed.is_empty() {
            return Ok(input);
        }
        // The payload read once per row into a struct of the wanted columns,
        // then its fields as the columns — projections of the physical plan,
        // so the logical optimizer's field-access pushdown never moves them
        // into the union below.
        const STRUCT: &str = "__payload_columns";
        let udf = Arc::new(ScalarUDF::new_from_impl(PayloadColumns::new(typed)));
        let input_schema = DFSchema::try_from(input.schema())?;
        let mut first: Vec<(Arc<dyn PhysicalExpr>, String)> = input
            .schema()
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| (Arc::new(Column::new(f.name(), i)) as Arc<dyn PhysicalExpr>, f.name().clone()))
            .collect();
        first.push((session.create_physical_expr(udf.call(vec![col(PAYLOAD)]), &input_schema)?, STRUCT.to_owned()));
        let with_struct: Arc<dyn ExecutionPlan> = Arc::new(ProjectionExec::try_new(first, input)?);
        let struct_schema = DFSchema::try_from(with_struct.schema())?;
        let columns = wanted
            .iter()
            .map(|&i| {
                let name = self.schema.field(i).name();
                let expr = if i < envelope.fields().len() {
                    col(name.as_str())
                } else {
                    datafusion::functions::core::expr_fn::get_field(col(STRUCT), name.as_str())
                };
                Ok((session.create_physical_expr(expr, &struct_schema)?, name.clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(ProjectionExec::try_new(columns, with_struct)?))
    }
}

/// Typed tables by name, for the catalog.
pub type TypedTables = BTreeMap<String, TypedTableDef>;

#[cfg(test)]
mod tests {
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;
    use proptest::prelude::*;
    use sediment_lake::payload_schema::RegistryV1;

    use super::*;

    /// A JSON value as text, objects as member lists (names may repeat).
    #[derive(Debug, Clone)]
    enum J {
        Null,
        Bool(bool),
        Int(i64),
        Float(f64),
        Str(String),
        Arr(Vec<J>),
        Obj(Vec<(String, J)>),
    }

    impl J {
        fn text(&self) -> String {
            match self {
                J::Null => "null".into(),
                J::Bool(b) => b.to_string(),
                J::Int(i) => i.to_string(),
                J::Float(f) => serde_json::Number::from_f64(*f).map_or("0.5".into(), |n| n.to_string()),
                J::Str(s) => Value::String(s.clone()).to_string(),
                J::Arr(items) => format!("[{}]", items.iter().map(J::text).collect::<Vec<_>>().join(",")),
                J::Obj(members) => format!(
                    "{{{}}}",
                    members.iter().map(|(k, v)| format!("{}:{}", Value::String(k.clone()), v.text())).collect::<Vec<_>>().join(",")
                ),
            }
        }
    }

    fn leaf() -> impl Strategy<Value = J> {
        prop_oneof![
            Just(J::Null),
            any::<bool>().prop_map(J::Bool),
            (-1000i64..1000).prop_map(J::Int),
            prop_oneof![Just(i64::MAX), Just(i64::MIN), Just(1 << 40)].prop_map(J::Int),
            (-1e6f64..1e6).prop_map(J::Float),
            "[a-z é\\\"]{0,6}".prop_map(J::Str),
        ]
    }

    fn value() -> impl Strategy<Value = J> {
        leaf().prop_recursive(2, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(J::Arr),
                prop::collection::vec((prop_oneof![Just("x".to_owned()), Just("y".to_owned())], inner), 0..3).prop_map(J::Obj),
            ]
        })
    }

    /// Payloads: objects over a few member names (one differing only in
    /// case), sometimes repeating a name.
    fn payload() -> impl Strategy<Value = String> {
        let name = prop_oneof![Just("a"), Just("b"), Just("c"), Just("A"), Just("event_id")].prop_map(str::to_owned);
        prop::collection::vec((name, value()), 0..5).prop_map(|members| J::Obj(members).text())
    }

    /// (typed expression, its JSON evaluation) pairs for a column.
    fn pairs(typed: String, path: String, shape: &Shape, out: &mut Vec<(String, String)>) {
        let scalar = |t: &str| format!("CAST(json_extract_scalar(payload, '{path}') AS {t})");
        match shape {
            Shape::Boolean => out.push((typed, scalar("BOOLEAN"))),
            Shape::Integer | Shape::Bigint => out.push((typed, scalar("BIGINT"))),
            Shape::Double => out.push((typed, scalar("DOUBLE"))),
            Shape::Varchar => out.push((typed, scalar("VARCHAR"))),
            Shape::Null | Shape::Json => out.push((typed, format!("nullif(json_extract(payload, '{path}'), 'null')"))),
            Shape::Array { element } => {
                out.push((format!("array_length({typed})"), format!("json_array_length(json_extract(payload, '{path}'))")));
                for i in 0..3 {
                    pairs(format!("array_element({typed}, {})", i + 1), format!("{path}[{i}]"), element, out);
                }
            }
            Shape::Object { fields } => {
                for (name, s) in fields {
                    pairs(format!("get_field({typed}, '{name}')"), format!("{path}.{name}"), s, out);
                }
            }
        }
    }

    async fn typed_equals_json(payloads: Vec<String>) -> std::result::Result<(), TestCaseError> {
        let shape = payloads.iter().fold(Shape::Null, |s, p| s.merge(&Shape::of_text(p)));
        let mut registry = RegistryV1::new("PaymentReceived");
        registry.observe(1, chrono::NaiveDate::default(), &shape);
        let (defs, _) = definitions(&Config::default(), &[registry], &HashSet::new());
        let def = &defs[0];
        prop_assert_eq!(&def.name, "payment_received");
        let ctx = SessionContext::new();
        sediment_trino::register(&ctx);
        let columns: Vec<&TypedColumn> = def.columns.iter().collect();
        ctx.register_udf(ScalarUDF::new_from_impl(PayloadColumns::new(&columns)));
        let schema = Arc::new(Schema::new(vec![Field::new("payload", DataType::Utf8, true)]));
        let batch = arrow::array::RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(StringArray::from(payloads.clone()))]).unwrap();
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())).unwrap();
        let mut checks = Vec::new();
        for c in &def.columns {
            pairs(format!("get_field(payload_columns(payload), '{}')", c.name), format!("$.{}", c.field), &c.shape, &mut checks);
        }
        for (typed, json) in checks {
            let sql = format!("SELECT payload, {typed} AS typed, {json} AS json FROM t WHERE ({typed}) IS DISTINCT FROM ({json})");
            let rows = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            let shown = arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string();
            prop_assert!(rows.iter().all(|b| b.num_rows() == 0), "{typed} differs from {json}:\n{shown}");
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

        /// Every typed column, and every field and element inside one, holds
        /// what the JSON evaluation of the payload gives.
        #[test]
        fn typed_columns_equal_the_json_evaluation(payloads in prop::collection::vec(payload(), 1..12)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(typed_equals_json(payloads))?;
        }
    }

    #[test]
    fn columns_are_named_by_their_fields() {
        let shape = Shape::of_text(r#"{"amount": 1, "Amount": 2.5, "event_id": "x", "Nested": {"k": [1]}, "maybe": null}"#);
        let mut registry = RegistryV1::new("OrderPlaced");
        registry.observe(1, chrono::NaiveDate::default(), &shape);
        let mut other = RegistryV1::new("order_placed");
        other.observe(1, chrono::NaiveDate::default(), &Shape::of_text("[1]"));
        let taken = HashSet::from(["orders".to_owned()]);
        let (defs, problems) = definitions(&Config::default(), &[registry, other], &taken);
        assert_eq!(defs.len(), 1, "{defs:?}");
        let cols: Vec<(String, String, String)> =
            defs[0].columns.iter().map(|c| (c.name.clone(), c.field.clone(), c.shape.trino_type())).collect();
        let want = [
            ("payload_amount", "Amount", "double"),
            ("nested", "Nested", "row(k array(bigint))"),
            ("amount", "amount", "bigint"),
            ("payload_event_id", "event_id", "varchar"),
            ("maybe", "maybe", "json"),
        ];
        assert_eq!(cols, want.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned())));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].problem.contains("also \"OrderPlaced\"'s"), "{problems:?}");
    }

    #[test]
    fn event_types_in_snake_case() {
        for (t, want) in [
            ("PaymentReceived", "payment_received"),
            ("HTTPRequestSent", "http_request_sent"),
            ("order.created", "order_created"),
            ("order-created.v2", "order_created_v2"),
            ("OrderCreatedV2", "order_created_v2"),
            ("already_snake", "already_snake"),
            ("Step2Done", "step2_done"),
            ("3DSecureChecked", "_3_d_secure_checked"),
            ("ÜberfallGemeldet", "überfall_gemeldet"),
            ("a  b", "a_b"),
        ] {
            assert_eq!(snake_case(t), want, "{t}");
        }
    }
}
