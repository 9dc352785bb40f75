//! Payload shapes inferred from the data, and their history per event type
//! and version: the base of typed event tables.
//!
//! A [`Shape`] is what the payloads seen so far have in common. Shapes form
//! a join-semilattice under [`Shape::merge`] — commutative, associative and
//! idempotent, `Null` its identity and `Json` its top — so a day's shape is
//! the same whatever order its events arrive in, recompacting a day changes
//! nothing, and the shape over many days is the merge of the days' shapes.
//! Numbers widen `Integer` → `Bigint` → `Double`; a field whose values are of
//! different kinds (a number here, a string there) becomes `Json`: kept as
//! JSON text, never dropped. The payload text stays the source of truth; a
//! shape only says which typed columns can stand for it.
//!
//! The [`Registry`] is one event type's history: per `event_version` the
//! merged shape and, per day, what changed on it (a field appeared, widened,
//! or became mixed). It is stored versioned, like the manifests, so old
//! registries stay readable.

use std::collections::BTreeMap;

use arrow::datatypes::{DataType, Field, Fields};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The inferred type of a JSON value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Shape {
    /// Only nulls so far (or nothing: an empty array's elements).
    Null,
    Boolean,
    /// Integers within 32 bits.
    Integer,
    /// Integers within 64 bits.
    Bigint,
    /// Numbers with a fraction or an exponent, integers beyond 64 bits, or
    /// integers mixed with those.
    Double,
    Varchar,
    Array {
        element: Box<Shape>,
    },
    Object {
        fields: BTreeMap<String, Shape>,
    },
    /// Values of different kinds: kept as JSON text.
    Json,
}

impl Shape {
    /// The shape of one value.
    pub fn of(value: &Value) -> Shape {
        match value {
            Value::Null => Shape::Null,
            Value::Bool(_) => Shape::Boolean,
            Value::Number(n) => match n.as_i64() {
                Some(i) if i32::try_from(i).is_ok() => Shape::Integer,
                Some(_) => Shape::Bigint,
                None => Shape::Double,
            },
            Value::String(_) => Shape::Varchar,
            Value::Array(items) => Shape::Array { element: Box::new(items.iter().fold(Shape::Null, |s, v| s.merge(&Shape::of(v)))) },
            Value::Object(map) => Shape::Object { fields: map.iter().map(|(k, v)| (k.clone(), Shape::of(v))).collect() },
        }
    }

    /// The shape of a payload's text, read as [`parse`] reads it; text that
    /// is not JSON is `Json` (kept as text, as every payload is).
    pub fn of_text(text: &str) -> Shape {
        parse(text).map_or(Shape::Json, |v| Shape::of(&v))
    }

    /// Merges `other` in place (the common case, a shape already covered,
    /// costs a comparison).
    pub fn absorb(&mut self, other: &Shape) {
        if self != other {
            *self = self.merge(other);
        }
    }

    /// The least shape both `self` and `other` fit.
    pub fn merge(&self, other: &Shape) -> Shape {
        use Shape::*;
        match (self, other) {
            (Null, s) | (s, Null) => s.clone(),
            (a, b) if a == b => a.clone(),
            (Integer | Bigint, Integer | Bigint) => Bigint,
            (Integer | Bigint | Double, Integer | Bigint | Double) => Double,
            (Array { element: a }, Array { element: b }) => Array { element: Box::new(a.merge(b)) },
            (Object { fields: a }, Object { fields: b }) => {
                let mut fields = a.clone();
                for (name, shape) in b {
                    let merged = fields.get(name).map_or_else(|| shape.clone(), |s| s.merge(shape));
                    fields.insert(name.clone(), merged);
                }
                Object { fields }
            }
            _ => Json,
        }
    }

    /// The Arrow type of a typed column holding values of this shape: JSON
    /// text for `Json` and for a field never seen with a value.
    pub fn arrow_type(&self) -> DataType {
        match self {
            Shape::Null | Shape::Json | Shape::Varchar => DataType::Utf8,
            Shape::Boolean => DataType::Boolean,
            Shape::Integer => DataType::Int32,
            Shape::Bigint => DataType::Int64,
            Shape::Double => DataType::Float64,
            Shape::Array { element } => DataType::new_list(element.arrow_type(), true),
            Shape::Object { fields } => {
                DataType::Struct(fields.iter().map(|(name, s)| Field::new(name, s.arrow_type(), true)).collect::<Fields>())
            }
        }
    }

    /// The type in Trino's words, as `information_schema` and the typed
    /// tables will name it (`row(a bigint, b varchar)`; `json` for mixed
    /// kinds, `unknown` for a field only ever null).
    pub fn trino_type(&self) -> String {
        match self {
            Shape::Null => "unknown".into(),
            Shape::Boolean => "boolean".into(),
            Shape::Integer => "integer".into(),
            Shape::Bigint => "bigint".into(),
            Shape::Double => "double".into(),
            Shape::Varchar => "varchar".into(),
            Shape::Json => "json".into(),
            Shape::Array { element } => format!("array({})", element.trino_type()),
            Shape::Object { fields } => format!(
                "row({})",
                fields.iter().map(|(n, s)| format!("{} {}", quoted_field(n), s.trino_type())).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// What changed from `self` to `after` (`after` being `self` merged with
    /// something), field by field, as JSON paths from `$`.
    pub fn changes_to(&self, after: &Shape) -> Vec<Change> {
        let mut out = Vec::new();
        diff("$", self, after, &mut out);
        out
    }

    /// Fields of `self` that `day` lacks (never present that day), as JSON
    /// paths: what "disappeared" on a day whose shape is `day`.
    pub fn absent_from(&self, day: &Shape) -> Vec<String> {
        let mut out = Vec::new();
        absent("$", self, day, &mut out);
        out
    }
}

fn quoted_field(name: &str) -> String {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.what {
            What::Appeared { shape } => write!(f, "{} appeared as {}", self.path, shape.trino_type()),
            What::Widened { from, to } => write!(f, "{} widened {} -> {}", self.path, from.trino_type(), to.trino_type()),
            What::Mixed { from } => write!(f, "{} was {}, now mixed kinds (json text)", self.path, from.trino_type()),
            What::Disappeared => write!(f, "{} absent from every event of the day", self.path),
        }
    }
}

fn child(path: &str, name: &str) -> String {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        format!("{path}.{name}")
    } else {
        format!("{path}[{}]", serde_json::Value::String(name.to_owned()))
    }
}

fn diff(path: &str, before: &Shape, after: &Shape, out: &mut Vec<Change>) {
    match (before, after) {
        (a, b) if a == b => {}
        (Shape::Object { fields: a }, Shape::Object { fields: b }) => {
            for (name, shape) in b {
                let p = child(path, name);
                match a.get(name) {
                    None => out.push(Change { path: p, what: What::Appeared { shape: shape.clone() } }),
                    Some(old) => diff(&p, old, shape, out),
                }
            }
        }
        (Shape::Array { element: a }, Shape::Array { element: b }) => diff(&format!("{path}[*]"), a, b, out),
        (Shape::Null, b) => out.push(Change { path: path.to_owned(), what: What::Appeared { shape: b.clone() } }),
        (a, Shape::Json) => out.push(Change { path: path.to_owned(), what: What::Mixed { from: a.clone() } }),
        (a, b) => out.push(Change { path: path.to_owned(), what: What::Widened { from: a.clone(), to: b.clone() } }),
    }
}

fn absent(path: &str, all: &Shape, day: &Shape, out: &mut Vec<String>) {
    if let (Shape::Object { fields: a }, Shape::Object { fields: d }) = (all, day) {
        for (name, shape) in a {
            let p = child(path, name);
            match d.get(name) {
                None => out.push(p),
                Some(ds) => absent(&p, shape, ds, out),
            }
        }
    }
}

/// One change of a shape, at a JSON path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub path: String,
    #[serde(flatten)]
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum What {
    /// A field (or an array's elements) first seen with a value.
    Appeared { shape: Shape },
    /// A number widened (`integer` → `bigint` → `double`).
    Widened { from: Shape, to: Shape },
    /// Values of another kind arrived: the field is JSON text from now on.
    Mixed { from: Shape },
    /// A field the previous day with events of this version had, absent from
    /// every event of this day (the merged shape keeps it: nothing is dropped).
    Disappeared,
}

/// A JSON text as a value, the first member of an object winning over later
/// ones of the same name — as `json_extract` finds members, so shapes and
/// typed columns agree with it; `None` when the text is not one JSON value.
pub fn parse(text: &str) -> Option<Value> {
    fn value(j: &mut jiter::Jiter<'_>, peek: jiter::Peek) -> Option<Value> {
        use jiter::Peek;
        Some(match peek {
            Peek::Null => {
                j.known_null().ok()?;
                Value::Null
            }
            Peek::True | Peek::False => Value::Bool(j.known_bool(peek).ok()?),
            Peek::String => Value::String(j.known_str().ok()?.to_owned()),
            Peek::Array => {
                let mut items = Vec::new();
                let mut next = j.known_array().ok()?;
                while let Some(p) = next {
                    items.push(value(j, p)?);
                    next = j.array_step().ok()?;
                }
                Value::Array(items)
            }
            Peek::Object => {
                let mut map = serde_json::Map::new();
                let mut key = j.known_object().ok()?.map(str::to_owned);
                while let Some(k) = key {
                    let p = j.peek().ok()?;
                    if map.contains_key(&k) {
                        j.known_skip(p).ok()?;
                    } else {
                        let v = value(j, p)?;
                        map.insert(k, v);
                    }
                    key = j.next_key().ok()?.map(str::to_owned);
                }
                Value::Object(map)
            }
            p if p.is_num() => Value::Number(serde_json::from_slice(j.known_number_bytes(p).ok()?).ok()?),
            _ => return None,
        })
    }
    let mut j = jiter::Jiter::new(text.as_bytes());
    let peek = j.peek().ok()?;
    let v = value(&mut j, peek)?;
    j.finish().ok()?;
    Some(v)
}

/// The merged payload shape of one (event type, event version) in one
/// curated day, as its coverage manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadShape {
    pub event_type: String,
    pub event_version: i32,
    pub shape: Shape,
}

/// Every event type's registry, built from the curated days' shapes in
/// day order: what the lake holds now, whatever order the days were
/// compacted or recompacted in.
pub fn registries<'a>(days: impl IntoIterator<Item = (NaiveDate, &'a [PayloadShape])>) -> Vec<RegistryV1> {
    let mut days: Vec<(NaiveDate, &[PayloadShape])> = days.into_iter().collect();
    days.sort_by_key(|(dt, _)| *dt);
    let mut by_type: BTreeMap<&str, RegistryV1> = BTreeMap::new();
    // The last day each (type, version) had events, for fields that stop.
    let mut last: BTreeMap<(&str, i32), &Shape> = BTreeMap::new();
    for (dt, shapes) in days {
        for s in shapes {
            let registry = by_type.entry(&s.event_type).or_insert_with(|| RegistryV1::new(&s.event_type));
            registry.observe(s.event_version, dt, &s.shape);
            if let Some(before) = last.insert((&s.event_type, s.event_version), &s.shape) {
                let gone = before.absent_from(&s.shape).into_iter().map(|path| Change { path, what: What::Disappeared });
                registry.record(s.event_version, dt, gone.collect());
            }
        }
    }
    by_type.into_values().collect()
}

/// One event type's payload shapes: versioned, like the manifests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum Registry {
    #[serde(rename = "1")]
    V1(RegistryV1),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryV1 {
    pub event_type: String,
    /// By `event_version`, ascending.
    pub versions: Vec<VersionShape>,
}

/// The merged shape of one `event_version` and how it came to be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionShape {
    pub event_version: i32,
    pub shape: Shape,
    /// What each day changed, by day ascending; a day appears once.
    pub history: Vec<DayChanges>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayChanges {
    pub dt: NaiveDate,
    pub changes: Vec<Change>,
}

impl RegistryV1 {
    pub fn new(event_type: impl Into<String>) -> Self {
        Self { event_type: event_type.into(), versions: Vec::new() }
    }

    /// Merges one day's shape of one version in; returns what it changed.
    /// Observing a day again (a recompaction) or a shape already covered
    /// changes nothing; a late day's changes are recorded under that day.
    pub fn observe(&mut self, event_version: i32, dt: NaiveDate, day: &Shape) -> Vec<Change> {
        let at = match self.versions.binary_search_by_key(&event_version, |v| v.event_version) {
            Ok(i) => i,
            Err(i) => {
                self.versions.insert(i, VersionShape { event_version, shape: Shape::Null, history: Vec::new() });
                i
            }
        };
        let version = &mut self.versions[at];
        let merged = version.shape.merge(day);
        let changes = version.shape.changes_to(&merged);
        version.shape = merged;
        self.record(event_version, dt, changes.clone());
        changes
    }

    /// Adds changes to a version's history under `dt` (none: nothing).
    pub fn record(&mut self, event_version: i32, dt: NaiveDate, changes: Vec<Change>) {
        let Some(version) = self.versions.iter_mut().find(|v| v.event_version == event_version) else { return };
        if changes.is_empty() {
            return;
        }
        match version.history.binary_search_by_key(&dt, |d| d.dt) {
            Ok(i) => version.history[i].changes.extend(changes),
            Err(i) => version.history.insert(i, DayChanges { dt, changes }),
        }
    }

    /// The merged shape of one version.
    pub fn shape(&self, event_version: i32) -> Option<&Shape> {
        self.versions.iter().find(|v| v.event_version == event_version).map(|v| &v.shape)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn the_first_of_repeated_member_names_wins() {
        let text = r#"{"a": 1, "b": {"c": [1, {"d": true, "d": 2}], "c": "x"}, "a": "one", "e": 1.50}"#;
        assert_eq!(parse(text), Some(json!({"a": 1, "b": {"c": [1, {"d": true}]}, "e": 1.5})));
        assert_eq!(Shape::of_text(r#"{"a": 1, "a": "x"}"#), Shape::of(&json!({"a": 1})));
        for bad in ["{\"a\": 1} x", "{\"a\": }", "", "[1,]"] {
            assert_eq!(parse(bad), None, "{bad}");
            assert_eq!(Shape::of_text(bad), Shape::Json, "{bad}");
        }
        assert_eq!(parse("18446744073709551616"), serde_json::from_str("18446744073709551616").ok());
    }

    fn shape(v: Value) -> Shape {
        Shape::of(&v)
    }

    #[test]
    fn numbers_widen_and_mixed_kinds_become_json() {
        let s = [json!({"n": 1, "m": 1, "k": "a"}), json!({"n": 5_000_000_000i64, "m": 1.5, "k": 2})]
            .iter()
            .fold(Shape::Null, |s, v| s.merge(&Shape::of(v)));
        let Shape::Object { fields } = &s else { panic!("{s:?}") };
        assert_eq!(fields["n"], Shape::Bigint);
        assert_eq!(fields["m"], Shape::Double);
        assert_eq!(fields["k"], Shape::Json);
        assert_eq!(s.trino_type(), "row(k json, m double, n bigint)");
        assert_eq!(shape(json!({"a b": [true]})).trino_type(), "row(\"a b\" array(boolean))");
        assert_eq!(shape(json!(18446744073709551615u64)), Shape::Double);
        assert_eq!(shape(json!([])), Shape::Array { element: Box::new(Shape::Null) });
        assert_eq!(shape(json!([1, null, 2])), Shape::Array { element: Box::new(Shape::Integer) });
        assert_eq!(
            s.arrow_type(),
            DataType::Struct(Fields::from(vec![
                Field::new("k", DataType::Utf8, true),
                Field::new("m", DataType::Float64, true),
                Field::new("n", DataType::Int64, true),
            ]))
        );
    }

    #[test]
    fn the_registry_records_each_change_on_the_day_it_began() {
        let d = |n: u32| NaiveDate::from_ymd_opt(2026, 12, n).unwrap();
        let mut r = RegistryV1::new("OrderPlaced");
        let first = r.observe(1, d(1), &shape(json!({"total": 10, "items": [{"sku": "a"}]})));
        assert_eq!(first, vec![Change { path: "$".into(), what: What::Appeared { shape: r.shape(1).unwrap().clone() } }]);
        assert!(r.observe(1, d(1), &shape(json!({"total": 10}))).is_empty(), "a day seen again changes nothing");
        let second = r.observe(1, d(3), &shape(json!({"total": 10.5, "items": [{"sku": "b", "qty": 2}], "coupon code": "X"})));
        assert_eq!(
            second,
            vec![
                Change { path: "$[\"coupon code\"]".into(), what: What::Appeared { shape: Shape::Varchar } },
                Change { path: "$.items[*].qty".into(), what: What::Appeared { shape: Shape::Integer } },
                Change { path: "$.total".into(), what: What::Widened { from: Shape::Integer, to: Shape::Double } },
            ]
        );
        // A late day's change lands under its own day, before the later one.
        let late = r.observe(1, d(2), &shape(json!({"total": "ten"})));
        assert_eq!(late, vec![Change { path: "$.total".into(), what: What::Mixed { from: Shape::Double } }]);
        let days: Vec<NaiveDate> = r.versions[0].history.iter().map(|h| h.dt).collect();
        assert_eq!(days, [d(1), d(2), d(3)]);
        // Another version has its own history; the file form reads back.
        r.observe(2, d(3), &shape(json!({"amount": 1})));
        assert_eq!(r.versions.iter().map(|v| v.event_version).collect::<Vec<_>>(), [1, 2]);
        let text = serde_json::to_string(&Registry::V1(r.clone())).unwrap();
        assert_eq!(serde_json::from_str::<Registry>(&text).unwrap(), Registry::V1(r.clone()));
        assert_eq!(r.shape(1).unwrap().absent_from(&shape(json!({"total": 1}))), ["$[\"coupon code\"]", "$.items"]);
    }

    #[test]
    fn registries_fold_days_in_order_and_report_fields_that_stop() {
        let d = |n: u32| NaiveDate::from_ymd_opt(2026, 12, n).unwrap();
        let ps = |v: Value| vec![PayloadShape { event_type: "T".into(), event_version: 1, shape: Shape::of(&v) }];
        let (a, b, c) = (ps(json!({"x": 1, "y": "s"})), ps(json!({"x": 2})), ps(json!({"x": 3, "y": "t"})));
        // Given out of order; day 2 lacks y, day 3 has it again (no change: it never left the shape).
        let r = registries([(d(3), c.as_slice()), (d(1), a.as_slice()), (d(2), b.as_slice())]);
        let history: Vec<(NaiveDate, Vec<String>)> =
            r[0].versions[0].history.iter().map(|h| (h.dt, h.changes.iter().map(ToString::to_string).collect())).collect();
        assert_eq!(
            history,
            [
                (d(1), vec!["$ appeared as row(x integer, y varchar)".to_owned()]),
                (d(2), vec!["$.y absent from every event of the day".to_owned()]),
            ]
        );
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|i| json!(i)),
            any::<i64>().prop_map(|i| json!(i)),
            (-1e9f64..1e9).prop_map(|f| json!(f)),
            "[a-c]{0,2}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-d]", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Merging is a join: the order events arrive in, repeats, and how
        /// days are grouped never change the shape.
        #[test]
        fn merge_is_commutative_associative_and_idempotent(a in json_value(), b in json_value(), c in json_value()) {
            let (a, b, c) = (Shape::of(&a), Shape::of(&b), Shape::of(&c));
            prop_assert_eq!(a.merge(&b), b.merge(&a));
            prop_assert_eq!(a.merge(&b).merge(&c), a.merge(&b.merge(&c)));
            prop_assert_eq!(a.merge(&a), a.clone());
            prop_assert_eq!(a.merge(&Shape::Null), a.clone());
            // The merge covers both: merging either in again changes nothing.
            let ab = a.merge(&b);
            prop_assert!(ab.changes_to(&ab.merge(&a)).is_empty());
        }

        /// A registry fed days in any order ends with the same shape.
        #[test]
        fn the_registry_shape_does_not_depend_on_day_order(days in prop::collection::vec(json_value(), 1..6)) {
            let d = |i: usize| NaiveDate::from_ymd_opt(2026, 1, 1 + i as u32).unwrap();
            let mut forward = RegistryV1::new("T");
            let mut backward = RegistryV1::new("T");
            for (i, v) in days.iter().enumerate() {
                forward.observe(1, d(i), &Shape::of(v));
            }
            for (i, v) in days.iter().enumerate().rev() {
                backward.observe(1, d(i), &Shape::of(v));
            }
            prop_assert_eq!(forward.shape(1), backward.shape(1));
        }
    }
}
