//! Trino's map aggregates and map functions DataFusion lacks: `histogram`,
//! `map_agg`, `multimap_agg`, `map_union` (aggregates) and `map_concat`,
//! `map_from_entries`, `multimap_from_entries` (scalars).
//!
//! The aggregates keep their keys in first-seen order and emit them sorted,
//! so the same rows give the same map whatever the partitioning. As in
//! Trino, rows with a NULL key are skipped and no rows give NULL; `map_agg`
//! keeps the first value of a repeated key.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray, MapArray, StructArray, new_empty_array};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use arrow::row::{RowConverter, SortField};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, ScalarUDF, Signature, Volatility};

use super::udf::{udf, variadic_any};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Histogram,
    MapAgg,
    MultimapAgg,
    /// `map_union(m)`: the union of the maps, a repeated key's first value.
    MapUnion,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct MapAggregate {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

pub(crate) fn aggregates() -> Vec<AggregateUDF> {
    [
        ("histogram", Kind::Histogram, 1),
        ("map_agg", Kind::MapAgg, 2),
        ("multimap_agg", Kind::MultimapAgg, 2),
        ("map_union", Kind::MapUnion, 1),
    ]
    .into_iter()
    .map(|(name, kind, n)| AggregateUDF::new_from_impl(MapAggregate { name, kind, signature: Signature::any(n, Volatility::Immutable) }))
    .collect()
}

pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        udf("map_concat", &[], variadic_any(), ret_map_concat, map_concat),
        udf("map_from_entries", &[], Signature::any(1, Volatility::Immutable), ret_from_entries, map_from_entries),
        udf("multimap_from_entries", &[], Signature::any(1, Volatility::Immutable), ret_multimap_from_entries, multimap_from_entries),
    ]
}

/// `map(key, value)` with Arrow's field names (`entries`, `key`, `value`).
pub(crate) fn map_type(key: &DataType, value: &DataType) -> DataType {
    let key = Arc::new(Field::new("key", key.clone(), false));
    let value = Arc::new(Field::new("value", value.clone(), true));
    DataType::Map(Arc::new(Field::new("entries", DataType::Struct(Fields::from(vec![key, value])), false)), false)
}

fn list_of(t: &DataType) -> DataType {
    DataType::new_list(t.clone(), true)
}

impl MapAggregate {
    /// The type of what each key maps to, and of the pairs' second column.
    fn value_types(&self, args: &[DataType]) -> Result<(DataType, DataType)> {
        match (self.kind, args) {
            (Kind::Histogram, [_]) => Ok((DataType::Int64, DataType::Int64)),
            (Kind::MapAgg, [_, v]) => Ok((v.clone(), v.clone())),
            (Kind::MultimapAgg, [_, v]) => Ok((list_of(v), v.clone())),
            (Kind::MapUnion, [m]) => {
                let (_, v) = key_value(self.name, m)?;
                Ok((v.clone(), v))
            }
            _ => plan_err!("{}: wrong number of arguments", self.name),
        }
    }

    /// The type of the keys.
    fn key_type(&self, args: &[DataType]) -> Result<DataType> {
        match (self.kind, args) {
            (Kind::MapUnion, [m]) => Ok(key_value(self.name, m)?.0),
            (_, [k, ..]) => Ok(k.clone()),
            _ => plan_err!("{}: wrong number of arguments", self.name),
        }
    }
}

impl AggregateUDFImpl for MapAggregate {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let (value, _) = self.value_types(args)?;
        Ok(map_type(&self.key_type(args)?, &value))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let types: Vec<DataType> = args.input_fields.iter().map(|f| f.data_type().clone()).collect();
        let (_, pair) = self.value_types(&types)?;
        Ok(vec![
            Arc::new(Field::new(format!("{}_keys", args.name), list_of(&self.key_type(&types)?), true)),
            Arc::new(Field::new(format!("{}_values", args.name), list_of(&pair), true)),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let types: Vec<DataType> = args.expr_fields.iter().map(|f| f.data_type().clone()).collect();
        let (_, pair) = self.value_types(&types)?;
        Ok(Box::new(Pairs {
            kind: self.kind,
            key_type: self.key_type(&types)?,
            pair_type: pair,
            index: HashMap::new(),
            keys: vec![],
            values: vec![],
        }))
    }
}

/// Per key (in first-seen order): a count, the first value, or every value.
#[derive(Debug)]
struct Pairs {
    kind: Kind,
    key_type: DataType,
    pair_type: DataType,
    index: HashMap<ScalarValue, usize>,
    keys: Vec<ScalarValue>,
    values: Vec<Vec<ScalarValue>>,
}

impl Pairs {
    fn add(&mut self, key: ScalarValue, value: ScalarValue) {
        if key.is_null() {
            return;
        }
        let slot = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                self.index.insert(key.clone(), self.keys.len());
                self.keys.push(key);
                self.values.push(vec![]);
                self.keys.len() - 1
            }
        };
        let here = &mut self.values[slot];
        match self.kind {
            Kind::Histogram => {
                let add = if let ScalarValue::Int64(Some(n)) = value { n } else { 1 };
                match here.first_mut() {
                    Some(ScalarValue::Int64(Some(total))) => *total += add,
                    _ => *here = vec![ScalarValue::Int64(Some(add))],
                }
            }
            Kind::MapAgg | Kind::MapUnion if !here.is_empty() => {}
            Kind::MapAgg | Kind::MapUnion | Kind::MultimapAgg => here.push(value),
        }
    }

    fn pair_arrays(&self) -> Result<(ArrayRef, ArrayRef)> {
        let keys = self.keys.iter().flat_map(|k| std::iter::repeat_n(k.clone(), self.values_of(k).len()));
        let keys = if self.keys.is_empty() { new_empty_array(&self.key_type) } else { ScalarValue::iter_to_array(keys)? };
        let values: Vec<ScalarValue> = self.values.iter().flatten().cloned().collect();
        let values = if values.is_empty() { new_empty_array(&self.pair_type) } else { ScalarValue::iter_to_array(values)? };
        Ok((keys, values))
    }

    fn values_of(&self, k: &ScalarValue) -> &[ScalarValue] {
        &self.values[self.index[k]]
    }
}

impl Accumulator for Pairs {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if self.kind == Kind::MapUnion {
            let maps = values[0].as_map();
            for row in 0..maps.len() {
                if maps.is_null(row) {
                    continue;
                }
                let entries = maps.value(row);
                for i in 0..entries.len() {
                    self.add(ScalarValue::try_from_array(entries.column(0), i)?, ScalarValue::try_from_array(entries.column(1), i)?);
                }
            }
            return Ok(());
        }
        let keys = &values[0];
        for i in 0..keys.len() {
            let key = ScalarValue::try_from_array(keys, i)?;
            let value = match values.get(1) {
                Some(v) => ScalarValue::try_from_array(v, i)?,
                None => ScalarValue::Int64(Some(1)),
            };
            self.add(key, value);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (keys, values) = (states[0].as_list::<i32>(), states[1].as_list::<i32>());
        for row in 0..keys.len() {
            if keys.is_null(row) {
                continue;
            }
            let (k, v) = (keys.value(row), values.value(row));
            for i in 0..k.len() {
                self.add(ScalarValue::try_from_array(&k, i)?, ScalarValue::try_from_array(&v, i)?);
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let (keys, values) = self.pair_arrays()?;
        let wrap = |a: ArrayRef| {
            let field = Arc::new(Field::new_list_field(a.data_type().clone(), true));
            ScalarValue::List(Arc::new(ListArray::new(field, OffsetBuffer::from_lengths([a.len()]), a, None)))
        };
        Ok(vec![wrap(keys), wrap(values)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let value_type = match self.kind {
            Kind::MultimapAgg => list_of(&self.pair_type),
            _ => self.pair_type.clone(),
        };
        let out_type = map_type(&self.key_type, &value_type);
        if self.keys.is_empty() {
            return ScalarValue::try_from(&out_type);
        }
        let mut order: Vec<usize> = (0..self.keys.len()).collect();
        order.sort_by(|&a, &b| self.keys[a].partial_cmp(&self.keys[b]).unwrap_or(std::cmp::Ordering::Equal));
        let keys = ScalarValue::iter_to_array(order.iter().map(|&i| self.keys[i].clone()))?;
        let flat: Vec<ScalarValue> = order.iter().flat_map(|&i| self.values[i].iter().cloned()).collect();
        let values: ArrayRef = match self.kind {
            Kind::MultimapAgg => {
                let items = if flat.is_empty() { new_empty_array(&self.pair_type) } else { ScalarValue::iter_to_array(flat)? };
                let lengths = order.iter().map(|&i| self.values[i].len());
                let field = Arc::new(Field::new_list_field(self.pair_type.clone(), true));
                Arc::new(ListArray::try_new(field, OffsetBuffer::from_lengths(lengths), items, None)?)
            }
            _ => ScalarValue::iter_to_array(flat)?,
        };
        let map = build_map(&out_type, vec![0, keys.len() as i32], keys, values, None)?;
        ScalarValue::try_from_array(&map, 0)
    }

    fn size(&self) -> usize {
        let scalars: usize = self.keys.iter().chain(self.values.iter().flatten()).map(ScalarValue::size).sum();
        std::mem::size_of_val(self) + 2 * scalars + self.index.capacity() * std::mem::size_of::<(ScalarValue, usize)>()
    }
}

/// A map array of `out_type` from its offsets, keys and values (cast to the
/// type's key and value types where they differ).
pub(crate) fn build_map(
    out_type: &DataType,
    offsets: Vec<i32>,
    keys: ArrayRef,
    values: ArrayRef,
    nulls: Option<NullBuffer>,
) -> Result<ArrayRef> {
    let DataType::Map(entries, _) = out_type else { return exec_err!("expected a map type, not {out_type}") };
    let DataType::Struct(kv) = entries.data_type() else { return exec_err!("unexpected map entries {entries}") };
    let keys = if keys.data_type() != kv[0].data_type() { arrow::compute::cast(&keys, kv[0].data_type())? } else { keys };
    let values = if values.data_type() != kv[1].data_type() { arrow::compute::cast(&values, kv[1].data_type())? } else { values };
    let struct_array = StructArray::try_new(kv.clone(), vec![keys, values], None)?;
    Ok(Arc::new(MapArray::try_new(Arc::clone(entries), OffsetBuffer::new(offsets.into()), struct_array, nulls, false)?))
}

/// Refuses keys that repeat within one map, `ranges` giving each map's
/// entries in `keys` (Trino's error).
pub(crate) fn check_unique_keys(keys: &ArrayRef, ranges: impl Iterator<Item = std::ops::Range<usize>>) -> Result<()> {
    let converter = RowConverter::new(vec![SortField::new(keys.data_type().clone())])?;
    let encoded = converter.convert_columns(&[Arc::clone(keys)])?;
    for range in ranges {
        let mut seen = std::collections::HashSet::new();
        for i in range {
            if !seen.insert(encoded.row(i)) {
                let shown = arrow::util::display::array_value_to_string(keys, i)?;
                return exec_err!("INVALID_FUNCTION_ARGUMENT: Duplicate map keys ({shown}) are not allowed");
            }
        }
    }
    Ok(())
}

/// The key and value types of a map type.
fn key_value(name: &str, t: &DataType) -> Result<(DataType, DataType)> {
    match t {
        DataType::Map(e, _) => match e.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => Ok((kv[0].data_type().clone(), kv[1].data_type().clone())),
            other => plan_err!("{name}: unexpected map entries {other}"),
        },
        other => plan_err!("{name} expects maps, got {other}"),
    }
}

fn ret_map_concat(args: &[DataType]) -> Result<DataType> {
    let Some(first) = args.first() else { return plan_err!("map_concat needs at least one map") };
    let (k, v) = key_value("map_concat", first)?;
    for t in &args[1..] {
        if key_value("map_concat", t)? != (k.clone(), v.clone()) {
            return plan_err!("map_concat: all maps must have the same key and value types, got {first} and {t}");
        }
    }
    Ok(map_type(&k, &v))
}

/// `map_concat(m1, m2, …)`: the union of the maps; a key in several takes
/// the value of the last. NULL if any map is NULL.
fn map_concat(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    let out_type = ret_map_concat(types)?;
    let n = args.first().map_or(0, |a| a.len());
    let maps: Vec<&MapArray> = args.iter().map(|a| a.as_map()).collect();
    let key_type = maps[0].keys().data_type().clone();
    let converter = RowConverter::new(vec![SortField::new(key_type)])?;
    let encoded = maps.iter().map(|m| converter.convert_columns(&[Arc::clone(m.keys())])).collect::<Result<Vec<_>, _>>()?;
    let (mut picks, mut offsets, mut valid) = (vec![], vec![0i32], vec![]);
    for r in 0..n {
        let ok = maps.iter().all(|m| m.is_valid(r));
        let mut row: Vec<(usize, usize)> = vec![];
        let mut at = HashMap::new();
        if ok {
            for (mi, m) in maps.iter().enumerate() {
                let o = m.value_offsets();
                for i in o[r] as usize..o[r + 1] as usize {
                    match at.get(&encoded[mi].row(i)) {
                        Some(&slot) => row[slot] = (mi, i),
                        None => {
                            at.insert(encoded[mi].row(i), row.len());
                            row.push((mi, i));
                        }
                    }
                }
            }
        }
        offsets.push(offsets[r] + row.len() as i32);
        picks.extend(row);
        valid.push(ok);
    }
    let keys: Vec<&dyn Array> = maps.iter().map(|m| m.keys().as_ref()).collect();
    let values: Vec<&dyn Array> = maps.iter().map(|m| m.values().as_ref()).collect();
    let keys = arrow::compute::interleave(&keys, &picks)?;
    let values = arrow::compute::interleave(&values, &picks)?;
    build_map(&out_type, offsets, keys, values, Some(NullBuffer::from(valid)))
}

/// The (key, value) types of an `array(row(K, V))`.
fn entry_types(name: &str, t: &DataType) -> Result<(DataType, DataType)> {
    match t {
        DataType::List(item) => match item.data_type() {
            DataType::Struct(f) if f.len() == 2 => Ok((f[0].data_type().clone(), f[1].data_type().clone())),
            other => plan_err!("{name} expects an array of rows with two fields, got array({other})"),
        },
        other => plan_err!("{name} expects an array of rows, got {other}"),
    }
}

fn ret_from_entries(args: &[DataType]) -> Result<DataType> {
    let (k, v) = entry_types("map_from_entries", args.first().unwrap_or(&DataType::Null))?;
    Ok(map_type(&k, &v))
}

fn ret_multimap_from_entries(args: &[DataType]) -> Result<DataType> {
    let (k, v) = entry_types("multimap_from_entries", args.first().unwrap_or(&DataType::Null))?;
    Ok(map_type(&k, &list_of(&v)))
}

/// The entries of each row of an `array(row(K, V))`, checked: no NULL entry
/// and no NULL key. Returns the entries' struct and, per row, the indexes
/// of its entries.
fn row_entries<'a>(name: &str, list: &'a ListArray) -> Result<(&'a StructArray, Vec<Option<Vec<usize>>>)> {
    let entries = list.values().as_struct();
    let keys = entries.column(0);
    let mut rows = vec![];
    for r in 0..list.len() {
        if list.is_null(r) {
            rows.push(None);
            continue;
        }
        let o = list.value_offsets();
        let here: Vec<usize> = (o[r] as usize..o[r + 1] as usize).collect();
        for &i in &here {
            if entries.is_null(i) {
                return exec_err!("INVALID_FUNCTION_ARGUMENT: {name} entry cannot be null");
            }
            if keys.is_null(i) {
                return exec_err!("INVALID_FUNCTION_ARGUMENT: map key cannot be null");
            }
        }
        rows.push(Some(here));
    }
    Ok((entries, rows))
}

/// `map_from_entries(array(row(k, v)))`; a repeated key is an error, as in Trino.
fn map_from_entries(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    let out_type = ret_from_entries(types)?;
    let list = args[0].as_list::<i32>();
    let (entries, rows) = row_entries("map_from_entries", list)?;
    let o = list.value_offsets();
    check_unique_keys(entries.column(0), (0..list.len()).filter(|&r| rows[r].is_some()).map(|r| o[r] as usize..o[r + 1] as usize))?;
    let (mut take, mut offsets, mut valid) = (vec![], vec![0i32], vec![]);
    for row in &rows {
        take.extend(row.iter().flatten().map(|&i| i as u32));
        offsets.push(take.len() as i32);
        valid.push(row.is_some());
    }
    let idx = arrow::array::UInt32Array::from(take);
    let keys = arrow::compute::take(entries.column(0), &idx, None)?;
    let values = arrow::compute::take(entries.column(1), &idx, None)?;
    build_map(&out_type, offsets, keys, values, Some(NullBuffer::from(valid)))
}

/// `multimap_from_entries(array(row(k, v)))`: each key to the array of its
/// values, keys in first-seen order.
fn multimap_from_entries(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    let out_type = ret_multimap_from_entries(types)?;
    let list = args[0].as_list::<i32>();
    let (entries, rows) = row_entries("multimap_from_entries", list)?;
    let converter = RowConverter::new(vec![SortField::new(entries.column(0).data_type().clone())])?;
    let encoded = converter.convert_columns(&[Arc::clone(entries.column(0))])?;
    let (mut key_take, mut value_take, mut value_lengths, mut offsets, mut valid) = (vec![], vec![], vec![], vec![0i32], vec![]);
    for row in &rows {
        let mut groups: Vec<Vec<u32>> = vec![];
        let mut at: HashMap<_, usize> = HashMap::new();
        for &i in row.iter().flatten() {
            match at.get(&encoded.row(i)) {
                Some(&g) => groups[g].push(i as u32),
                None => {
                    at.insert(encoded.row(i), groups.len());
                    key_take.push(i as u32);
                    groups.push(vec![i as u32]);
                }
            }
        }
        offsets.push(offsets.last().copied().unwrap_or(0) + groups.len() as i32);
        value_lengths.extend(groups.iter().map(Vec::len));
        value_take.extend(groups.into_iter().flatten());
        valid.push(row.is_some());
    }
    let keys = arrow::compute::take(entries.column(0), &arrow::array::UInt32Array::from(key_take), None)?;
    let items = arrow::compute::take(entries.column(1), &arrow::array::UInt32Array::from(value_take), None)?;
    let field = Arc::new(Field::new_list_field(items.data_type().clone(), true));
    let values = Arc::new(ListArray::try_new(field, OffsetBuffer::from_lengths(value_lengths), items, None)?);
    build_map(&out_type, offsets, keys, values, Some(NullBuffer::from(valid)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    #[test]
    fn histogram_merges_partial_counts() {
        let agg = MapAggregate { name: "histogram", kind: Kind::Histogram, signature: Signature::any(1, Volatility::Immutable) };
        let mk = || Pairs {
            kind: agg.kind,
            key_type: DataType::Utf8,
            pair_type: DataType::Int64,
            index: HashMap::new(),
            keys: vec![],
            values: vec![],
        };
        let (mut a, mut b) = (mk(), mk());
        a.update_batch(&[Arc::new(arrow::array::StringArray::from(vec![Some("x"), None, Some("y"), Some("x")]))]).unwrap();
        b.update_batch(&[Arc::new(arrow::array::StringArray::from(vec!["y"]))]).unwrap();
        let state: Vec<ArrayRef> = b.state().unwrap().iter().map(|s| s.to_array().unwrap()).collect();
        a.merge_batch(&state).unwrap();
        let out = a.evaluate().unwrap().to_array().unwrap();
        let map = out.as_map();
        assert_eq!(map.keys().as_string::<i32>().iter().collect::<Vec<_>>(), vec![Some("x"), Some("y")]);
        let counts: &Int64Array = map.values().as_primitive();
        assert_eq!(counts.values().to_vec(), vec![2, 2]);
    }
}
