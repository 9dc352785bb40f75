//! `first_value(v ORDER BY o)` for one integer or temporal ordering key, as
//! a groups accumulator that compares native integers and copies each
//! group's value once.
//!
//! [`crate::top1::FirstRowPerKey`] plans "the latest row per key" as one
//! `first_value` per column, grouped by the key, over every row of the
//! table: most groups see a handful of rows. DataFusion's `first_value`
//! handles any ordering by building a `ScalarValue` of the ordering for
//! each row that may win and storing each group's ordering as a vector of
//! them; on the bench's `top1_per_aggregate` (1M rows, 185k keys) its
//! partial aggregate took 308 ms of CPU. Here a group keeps its best key as
//! an `i64` and a reference to the winning row in a batch it retains; the
//! retained batches are gathered into one array (`interleave`) whenever they
//! hold more than twice as many rows as there are groups, so memory stays
//! proportional to the groups and the copying to the input.
//!
//! Same answers as `first_value`: a row replaces a group's value only when
//! its key orders strictly before the group's, so the accumulators of one
//! aggregate (one per column) all keep the same row among ties. The state
//! (value, ordering, is-set) is `first_value`'s, and the row-at-a-time
//! accumulator (no grouping, or an ordering this does not cover) is
//! `first_value`'s own.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, new_null_array};
use arrow::compute::{SortOptions, cast, interleave};
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{Result, internal_err};
use datafusion::functions_aggregate::first_last::FirstValue;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::{AggregateOrderSensitivity, format_state_name};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility};

/// The aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FirstRow {
    signature: Signature,
}

impl Default for FirstRow {
    fn default() -> Self {
        Self { signature: Signature::any(1, Volatility::Immutable) }
    }
}

/// The function as DataFusion calls it.
pub fn first_row_udaf() -> Arc<AggregateUDF> {
    Arc::new(AggregateUDF::new_from_impl(FirstRow::default()))
}

/// Whether an ordering key of this type compares as an `i64`.
pub fn is_integer_key(t: &DataType) -> bool {
    use DataType::*;
    matches!(t, Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | Date32 | Date64 | Timestamp(_, _))
}

impl AggregateUDFImpl for FirstRow {
    fn name(&self) -> &str {
        "first_row"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] => Ok(t.clone()),
            _ => internal_err!("first_row takes one argument"),
        }
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        let [field] = arg_fields else { return internal_err!("first_row takes one argument") };
        Ok(Arc::new(Field::new(self.name(), field.data_type().clone(), true).with_metadata(field.metadata().clone())))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        FirstValue::new().accumulator(args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let mut fields: Vec<FieldRef> =
            vec![Arc::new(Field::new(format_state_name(args.name, "first_value"), args.return_type().clone(), true))];
        fields.extend(args.ordering_fields.iter().cloned());
        fields.push(Arc::new(Field::new(format_state_name(args.name, "first_value_is_set"), DataType::Boolean, true)));
        Ok(fields)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        match args.order_bys {
            [key] => !args.ignore_nulls && key.expr.data_type(args.schema).is_ok_and(|t| is_integer_key(&t)),
            _ => false,
        }
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        let [key] = args.order_bys else { return internal_err!("first_row's groups accumulator takes one ordering key") };
        let key_type = key.expr.data_type(args.schema)?;
        if args.ignore_nulls || !is_integer_key(&key_type) {
            return internal_err!("first_row's groups accumulator cannot order by {key_type}");
        }
        Ok(Box::new(FirstRowGroups::new(args.return_field.data_type().clone(), key_type, key.options)))
    }

    fn with_beneficial_ordering(self: Arc<Self>, _beneficial_ordering: bool) -> Result<Option<Arc<dyn AggregateUDFImpl>>> {
        // Ordered input or not, the accumulators compare every row.
        Ok(Some(self))
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Beneficial
    }
}

/// Where a group's winning row is: (retained array, row).
type RowRef = (u32, u32);

/// The groups accumulator.
#[derive(Debug)]
struct FirstRowGroups {
    value_type: DataType,
    key_type: DataType,
    options: SortOptions,
    /// Per group: whether a row was seen, its key (`None` for NULL), and
    /// where its value is.
    set: Vec<bool>,
    keys: Vec<Option<i64>>,
    rows: Vec<RowRef>,
    /// Value arrays holding some group's winning row.
    retained: Vec<ArrayRef>,
    retained_rows: usize,
    retained_bytes: usize,
}

impl FirstRowGroups {
    fn new(value_type: DataType, key_type: DataType, options: SortOptions) -> Self {
        Self {
            value_type,
            key_type,
            options,
            set: Vec::new(),
            keys: Vec::new(),
            rows: Vec::new(),
            retained: Vec::new(),
            retained_rows: 0,
            retained_bytes: 0,
        }
    }

    /// Whether key `a` orders strictly before `b`.
    fn before(&self, a: Option<i64>, b: Option<i64>) -> bool {
        match (a, b) {
            (None, None) => false,
            (None, Some(_)) => self.options.nulls_first,
            (Some(_), None) => !self.options.nulls_first,
            (Some(a), Some(b)) => {
                if self.options.descending {
                    a > b
                } else {
                    a < b
                }
            }
        }
    }

    fn resize(&mut self, groups: usize) {
        self.set.resize(groups, false);
        self.keys.resize(groups, None);
        self.rows.resize(groups, (0, 0));
    }

    /// Takes each row of `values` whose key orders before its group's,
    /// among the rows `selected` allows.
    fn update(
        &mut self,
        values: &ArrayRef,
        keys: &ArrayRef,
        groups: &[usize],
        selected: Option<&BooleanArray>,
        total: usize,
    ) -> Result<()> {
        self.resize(total);
        let keys = cast(keys, &DataType::Int64)?;
        let keys = keys.as_primitive::<Int64Type>();
        let array =
            u32::try_from(self.retained.len()).map_err(|_| datafusion::error::DataFusionError::Internal("too many batches".into()))?;
        let mut used = false;
        for (row, &g) in groups.iter().enumerate() {
            if selected.is_some_and(|s| !(s.is_valid(row) && s.value(row))) {
                continue;
            }
            let key = keys.is_valid(row).then(|| keys.value(row));
            if self.set[g] && !self.before(key, self.keys[g]) {
                continue;
            }
            self.set[g] = true;
            self.keys[g] = key;
            self.rows[g] = (array, row as u32);
            used = true;
        }
        if used {
            self.retained_rows += values.len();
            self.retained_bytes += values.get_array_memory_size();
            self.retained.push(Arc::clone(values));
            if self.retained_rows > 2 * self.set.len() + 8192 {
                self.gather()?;
            }
        }
        Ok(())
    }

    /// Gathers every group's value into one array, in group order (NULL
    /// for a group without rows), and retains only that.
    fn gather(&mut self) -> Result<ArrayRef> {
        let none = new_null_array(&self.value_type, 1);
        let mut arrays: Vec<&dyn Array> = self.retained.iter().map(|a| a.as_ref()).collect();
        arrays.push(none.as_ref());
        let nulls = arrays.len() - 1;
        let indices: Vec<(usize, usize)> =
            self.rows.iter().zip(&self.set).map(|(&(a, r), &set)| if set { (a as usize, r as usize) } else { (nulls, 0) }).collect();
        let all = interleave(&arrays, &indices)?;
        self.retained = vec![Arc::clone(&all)];
        self.retained_rows = all.len();
        self.retained_bytes = all.get_array_memory_size();
        for (g, row) in self.rows.iter_mut().enumerate() {
            *row = (0, g as u32);
        }
        Ok(all)
    }

    /// The emitted groups' values, keys and whether each was set; the rest
    /// stay, renumbered from zero.
    fn take(&mut self, emit_to: EmitTo) -> Result<(ArrayRef, Vec<Option<i64>>, Vec<bool>)> {
        let all = self.gather()?;
        let n = match emit_to {
            EmitTo::All => self.set.len(),
            EmitTo::First(n) => n.min(self.set.len()),
        };
        let keys: Vec<Option<i64>> = self.keys.drain(..n).collect();
        let set: Vec<bool> = self.set.drain(..n).collect();
        self.rows.drain(..n);
        for row in &mut self.rows {
            row.1 -= n as u32;
        }
        let rest = all.slice(n, all.len() - n);
        self.retained_rows = rest.len();
        // A slice keeps the gathered array's buffers whole.
        self.retained_bytes = if rest.is_empty() { 0 } else { all.get_array_memory_size() };
        self.retained = if rest.is_empty() { Vec::new() } else { vec![rest] };
        Ok((all.slice(0, n), keys, set))
    }
}

impl GroupsAccumulator for FirstRowGroups {
    fn update_batch(&mut self, values: &[ArrayRef], groups: &[usize], filter: Option<&BooleanArray>, total: usize) -> Result<()> {
        let [value, key] = values else { return internal_err!("first_row takes a value and one ordering key") };
        self.update(value, key, groups, filter, total)
    }

    fn merge_batch(&mut self, values: &[ArrayRef], groups: &[usize], total: usize) -> Result<()> {
        let [value, key, set] = values else { return internal_err!("first_row's state is a value, a key and a flag") };
        self.update(value, key, groups, Some(set.as_boolean()), total)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(self.take(emit_to)?.0)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (values, keys, set) = self.take(emit_to)?;
        let keys = cast(&(Arc::new(Int64Array::from(keys)) as ArrayRef), &self.key_type)?;
        Ok(vec![values, keys, Arc::new(BooleanArray::from(set))])
    }

    fn convert_to_state(&self, values: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let [value, key] = values else { return internal_err!("first_row takes a value and one ordering key") };
        let set = match filter {
            // A row whose filter is NULL is not taken.
            Some(f) => BooleanArray::from_iter(f.iter().map(|v| Some(v == Some(true)))),
            None => BooleanArray::from(vec![true; value.len()]),
        };
        Ok(vec![Arc::clone(value), Arc::clone(key), Arc::new(set)])
    }

    fn size(&self) -> usize {
        self.set.capacity()
            + self.keys.capacity() * size_of::<Option<i64>>()
            + self.rows.capacity() * size_of::<RowRef>()
            + self.retained_bytes
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Date32Array, Int32Array, StringArray, TimestampMillisecondArray};

    use super::*;

    fn strings(v: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(v.to_vec()))
    }

    fn text(a: &ArrayRef) -> Vec<Option<String>> {
        a.as_string::<i32>().iter().map(|v| v.map(str::to_owned)).collect()
    }

    /// Newest first (descending, NULL keys last): a later, larger key wins,
    /// a tie keeps the row seen first, a NULL key only wins an empty group.
    #[test]
    fn keeps_the_row_whose_key_orders_first() {
        let desc = SortOptions { descending: true, nulls_first: false };
        let mut acc = FirstRowGroups::new(DataType::Utf8, DataType::Int64, desc);
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(3), None, Some(3), None]));
        acc.update_batch(&[strings(&[Some("a1"), Some("a3"), Some("b-null"), Some("a3-tie"), Some("c")]), keys], &[0, 0, 1, 0, 2], None, 3)
            .unwrap();
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![Some(2), Some(0)]));
        acc.update_batch(&[strings(&[Some("a2"), None]), keys], &[0, 1], None, 4).unwrap();
        let out = acc.evaluate(EmitTo::All).unwrap();
        assert_eq!(text(&out), vec![Some("a3".into()), None, Some("c".into()), None]);
        assert_eq!(acc.retained_bytes, 0);
    }

    /// Partial states merged give the same answer as one pass, with the
    /// ordering key in its own type (timestamps, dates, 32-bit integers).
    #[test]
    fn states_merge_in_the_key_type() {
        let asc = SortOptions { descending: false, nulls_first: true };
        for key_type in
            [DataType::Int32, DataType::Date32, DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, Some("UTC".into()))]
        {
            let keys = |v: Vec<Option<i32>>| -> ArrayRef {
                match &key_type {
                    DataType::Int32 => Arc::new(Int32Array::from(v)),
                    DataType::Date32 => Arc::new(Date32Array::from(v)),
                    _ => Arc::new(
                        TimestampMillisecondArray::from(v.into_iter().map(|x| x.map(i64::from)).collect::<Vec<_>>()).with_timezone("UTC"),
                    ),
                }
            };
            let mut a = FirstRowGroups::new(DataType::Utf8, key_type.clone(), asc);
            a.update_batch(&[strings(&[Some("x5"), Some("y2")]), keys(vec![Some(5), Some(2)])], &[0, 1], None, 2).unwrap();
            let mut b = FirstRowGroups::new(DataType::Utf8, key_type.clone(), asc);
            b.update_batch(&[strings(&[Some("x4"), Some("y-null")]), keys(vec![Some(4), None])], &[0, 1], None, 2).unwrap();
            let mut fin = FirstRowGroups::new(DataType::Utf8, key_type.clone(), asc);
            for mut part in [a, b] {
                let state = part.state(EmitTo::All).unwrap();
                assert_eq!(state[1].data_type(), &key_type);
                fin.merge_batch(&state, &[0, 1], 2).unwrap();
            }
            // Ascending with NULLs first: the NULL key wins group 1.
            assert_eq!(text(&fin.evaluate(EmitTo::All).unwrap()), vec![Some("x4".into()), Some("y-null".into())]);
        }
    }

    /// Emitting the first groups keeps the others; gathering many batches
    /// keeps every group's row.
    #[test]
    fn emits_the_first_groups_and_gathers_retained_batches() {
        let asc = SortOptions { descending: false, nulls_first: false };
        let mut acc = FirstRowGroups::new(DataType::Utf8, DataType::Int64, asc);
        let groups = 100usize;
        for batch in (0..200).rev() {
            let values: Vec<String> = (0..groups).map(|g| format!("{g}@{batch}")).collect();
            let values: ArrayRef = Arc::new(StringArray::from(values));
            let keys: ArrayRef = Arc::new(Int64Array::from(vec![batch as i64; groups]));
            acc.update_batch(&[values, keys], &(0..groups).collect::<Vec<_>>(), None, groups).unwrap();
        }
        assert!(acc.retained.len() < 200, "retained batches are gathered");
        let first = acc.evaluate(EmitTo::First(10)).unwrap();
        assert_eq!(text(&first), (0..10).map(|g| Some(format!("{g}@0"))).collect::<Vec<_>>());
        let rest = acc.evaluate(EmitTo::All).unwrap();
        assert_eq!(text(&rest), (10..groups).map(|g| Some(format!("{g}@0"))).collect::<Vec<_>>());
    }

    /// A filter, and a row of a converted state whose filter was NULL, are
    /// not taken.
    #[test]
    fn filtered_rows_are_not_taken() {
        let asc = SortOptions { descending: false, nulls_first: false };
        let mut acc = FirstRowGroups::new(DataType::Utf8, DataType::Int64, asc);
        let values = strings(&[Some("a"), Some("b"), Some("c")]);
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
        let filter = BooleanArray::from(vec![Some(false), None, Some(true)]);
        let state = acc.convert_to_state(&[values, keys], Some(&filter)).unwrap();
        acc.merge_batch(&state, &[0, 0, 0], 1).unwrap();
        assert_eq!(text(&acc.evaluate(EmitTo::All).unwrap()), vec![Some("c".into())]);
    }
}
