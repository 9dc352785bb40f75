//! Trino's lambda functions DataFusion lacks: `reduce`, `zip_with`,
//! `transform_keys`, `transform_values`, `map_filter` and `map_zip_with`.
//!
//! Each is a DataFusion higher-order function: DataFusion plans the lambda
//! body (its parameters typed by [`HigherOrderUDFImpl::lambda_parameters`])
//! and this module evaluates it over the elements or entries of every row at
//! once, with the columns the body captures spread to the elements of their
//! row. `reduce` evaluates its step once per element position, over the rows
//! whose arrays reach that far; the state it carries is charged to the query
//! memory pool, and no row's state may outgrow [`MAX_VALUE_BYTES`].

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, ListArray, UInt32Array};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::{cast, interleave, nullif, take, take_arrays};
use arrow::datatypes::{DataType, Field, FieldRef};
use arrow::row::{RowConverter, SortField};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool};
use datafusion::logical_expr::{
    ColumnarValue, HigherOrderFunctionArgs, HigherOrderReturnFieldArgs, HigherOrderSignature, HigherOrderUDF, HigherOrderUDFImpl,
    LambdaArgument, LambdaParametersProgress, ValueOrLambda, Volatility,
};

use super::limits::{MAX_VALUE_BYTES, too_big};
use super::maps::{build_map, check_unique_keys, map_type};

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `reduce(array, initial, (s, x) -> s', s -> r)`
    Reduce,
    /// `zip_with(a, b, (x, y) -> z)`: the shorter array padded with NULLs.
    ZipWith,
    /// `transform_keys(map, (k, v) -> k')`
    TransformKeys,
    /// `transform_values(map, (k, v) -> v')`
    TransformValues,
    /// `map_filter(map, (k, v) -> boolean)`
    MapFilter,
    /// `map_zip_with(m1, m2, (k, v1, v2) -> v)`: over the union of the keys,
    /// NULL for a key a map lacks.
    MapZipWith,
}

#[derive(Debug)]
struct Lambda {
    name: &'static str,
    kind: Kind,
    signature: HigherOrderSignature,
    pool: Arc<dyn MemoryPool>,
}

super::udf::identity_by_name!(Lambda, |f| f.name);

/// Registers the functions, `reduce` charging its state to `pool`.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext, pool: Arc<dyn MemoryPool>) {
    use ValueOrLambda::{Lambda as L, Value as V};
    type Arguments = Vec<ValueOrLambda<(), ()>>;
    let all: [(&'static str, Kind, Arguments); 6] = [
        ("reduce", Kind::Reduce, vec![V(()), V(()), L(()), L(())]),
        ("zip_with", Kind::ZipWith, vec![V(()), V(()), L(())]),
        ("transform_keys", Kind::TransformKeys, vec![V(()), L(())]),
        ("transform_values", Kind::TransformValues, vec![V(()), L(())]),
        ("map_filter", Kind::MapFilter, vec![V(()), L(())]),
        ("map_zip_with", Kind::MapZipWith, vec![V(()), V(()), L(())]),
    ];
    for (name, kind, args) in all {
        let signature = HigherOrderSignature::exact(args, Volatility::Immutable);
        let f = Lambda { name, kind, signature, pool: Arc::clone(&pool) };
        ctx.register_higher_order_function(Arc::new(HigherOrderUDF::new_from_impl(f)));
    }
}

fn field(t: &DataType) -> FieldRef {
    Arc::new(Field::new("", t.clone(), true))
}

/// The element field of an array argument.
fn element(name: &str, f: &FieldRef) -> Result<FieldRef> {
    match f.data_type() {
        DataType::List(e) => Ok(Arc::clone(e)),
        DataType::Null => Ok(field(&DataType::Null)),
        other => plan_err!("{name} expects an array, got {other}"),
    }
}

/// The key and value fields of a map argument.
fn entries(name: &str, f: &FieldRef) -> Result<(FieldRef, FieldRef)> {
    match f.data_type() {
        DataType::Map(e, _) => match e.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => Ok((Arc::clone(&kv[0]), Arc::clone(&kv[1]))),
            other => plan_err!("{name}: unexpected map entries {other}"),
        },
        other => plan_err!("{name} expects a map, got {other}"),
    }
}

/// A lambda's parameters given as arrays, each evaluated once.
fn evaluate(lambda: &LambdaArgument, params: &[ArrayRef], rows: &UInt32Array, len: usize) -> Result<ArrayRef> {
    let getters: Vec<Box<dyn Fn() -> Result<ArrayRef>>> = params
        .iter()
        .map(|p| {
            let p = Arc::clone(p);
            Box::new(move || Ok(Arc::clone(&p))) as Box<dyn Fn() -> Result<ArrayRef>>
        })
        .collect();
    let refs: Vec<&dyn Fn() -> Result<ArrayRef>> = getters.iter().map(|g| g.as_ref()).collect();
    // Captured columns: one copy per element, of its row.
    let out = lambda.evaluate(&refs, |captured| Ok(take_arrays(captured, rows, None)?))?;
    if let ColumnarValue::Scalar(v) = &out
        && (v.size() as u64).saturating_mul(len as u64) > MAX_VALUE_BYTES
    {
        return Err(too_big("lambda", (v.size() as u64).saturating_mul(len as u64), "value", MAX_VALUE_BYTES));
    }
    out.into_array(len)
}

/// The row of each entry `offsets[0]..offsets[n]`, and the offsets rebased
/// to start at zero.
fn rows_of(offsets: &[i32]) -> (UInt32Array, OffsetBuffer<i32>) {
    let rows = (0..offsets.len().saturating_sub(1))
        .flat_map(|r| std::iter::repeat_n(r as u32, (offsets[r + 1] - offsets[r]) as usize))
        .collect::<Vec<_>>();
    let first = offsets.first().copied().unwrap_or(0);
    (UInt32Array::from(rows), OffsetBuffer::new(offsets.iter().map(|o| o - first).collect::<Vec<_>>().into()))
}

impl HigherOrderUDFImpl for Lambda {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &HigherOrderSignature {
        &self.signature
    }

    fn coerce_value_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let array = |t: &DataType| match t {
            DataType::List(_) | DataType::Null => Ok(t.clone()),
            DataType::LargeList(e) | DataType::FixedSizeList(e, _) => Ok(DataType::List(Arc::clone(e))),
            other => plan_err!("{} expects an array, got {other}", self.name),
        };
        let map = |t: &DataType| match t {
            DataType::Map(..) => Ok(t.clone()),
            other => plan_err!("{} expects a map, got {other}", self.name),
        };
        match (self.kind, arg_types) {
            (Kind::Reduce, [a, init]) => Ok(vec![array(a)?, init.clone()]),
            (Kind::ZipWith, [a, b]) => Ok(vec![array(a)?, array(b)?]),
            (Kind::TransformKeys | Kind::TransformValues | Kind::MapFilter, [m]) => Ok(vec![map(m)?]),
            (Kind::MapZipWith, [a, b]) => {
                let (ka, kb) = (entries(self.name, &field(&map(a)?))?.0, entries(self.name, &field(&map(b)?))?.0);
                if ka.data_type() != kb.data_type() {
                    return plan_err!("{}: the maps' keys differ in type ({} and {})", self.name, ka.data_type(), kb.data_type());
                }
                Ok(vec![a.clone(), b.clone()])
            }
            _ => plan_err!("{}: wrong number of arguments", self.name),
        }
    }

    fn lambda_parameters(&self, step: usize, fields: &[ValueOrLambda<FieldRef, Option<FieldRef>>]) -> Result<LambdaParametersProgress> {
        use LambdaParametersProgress::{Complete, Partial};
        use ValueOrLambda::{Lambda as L, Value as V};
        let name = self.name;
        Ok(match (self.kind, fields) {
            // The state takes the type of what the step returns, which
            // DataFusion learns by planning the step with the initial value's
            // type first; the initial value is then cast to it.
            (Kind::Reduce, [V(a), V(init), L(step_out), L(_)]) => {
                let x = element(name, a)?;
                match step_out {
                    Some(s) if step > 0 || s.data_type() != &DataType::Null => {
                        let s = field(s.data_type());
                        Complete(vec![vec![Arc::clone(&s), x], vec![s]])
                    }
                    _ => Partial(vec![Some(vec![field(init.data_type()), x]), None]),
                }
            }
            (Kind::ZipWith, [V(a), V(b), L(_)]) => {
                Complete(vec![vec![field(element(name, a)?.data_type()), field(element(name, b)?.data_type())]])
            }
            (Kind::TransformKeys | Kind::TransformValues | Kind::MapFilter, [V(m), L(_)]) => {
                let (k, v) = entries(name, m)?;
                Complete(vec![vec![k, v]])
            }
            (Kind::MapZipWith, [V(a), V(b), L(_)]) => {
                let ((k, v1), (_, v2)) = (entries(name, a)?, entries(name, b)?);
                Complete(vec![vec![k, field(v1.data_type()), field(v2.data_type())]])
            }
            _ => return plan_err!("{name}: wrong arguments"),
        })
    }

    fn coerce_values_for_lambdas(&self, fields: &[ValueOrLambda<DataType, DataType>]) -> Result<Option<Vec<DataType>>> {
        match (self.kind, fields) {
            (Kind::Reduce, [ValueOrLambda::Value(a), ValueOrLambda::Value(_), ValueOrLambda::Lambda(state), _]) => {
                Ok(Some(vec![a.clone(), state.clone()]))
            }
            _ => Ok(None),
        }
    }

    fn return_field_from_args(&self, args: HigherOrderReturnFieldArgs) -> Result<FieldRef> {
        use ValueOrLambda::{Lambda as L, Value as V};
        let name = self.name;
        let t = match (self.kind, args.arg_fields) {
            (Kind::Reduce, [_, _, _, L(out)]) => out.data_type().clone(),
            (Kind::ZipWith, [_, _, L(out)]) => DataType::new_list(out.data_type().clone(), true),
            (Kind::TransformKeys, [V(m), L(out)]) => map_type(out.data_type(), entries(name, m)?.1.data_type()),
            (Kind::TransformValues, [V(m), L(out)]) => map_type(entries(name, m)?.0.data_type(), out.data_type()),
            (Kind::MapFilter, [V(m), L(_)]) => m.data_type().clone(),
            (Kind::MapZipWith, [V(m), _, L(out)]) => map_type(entries(name, m)?.0.data_type(), out.data_type()),
            _ => return plan_err!("{name}: wrong arguments"),
        };
        Ok(field(&t))
    }

    fn invoke_with_args(&self, args: HigherOrderFunctionArgs) -> Result<ColumnarValue> {
        use ValueOrLambda::{Lambda as L, Value as V};
        let n = args.number_rows;
        let out_type = args.return_field.data_type();
        let out = match (self.kind, &args.args[..]) {
            (Kind::Reduce, [V(a), V(init), L(step), L(finish)]) => {
                let a = a.to_array(n)?;
                let init = init.to_array(n)?;
                self.reduce(&a, &init, step, finish, n)?
            }
            (Kind::ZipWith, [V(a), V(b), L(f)]) => zip_with(&a.to_array(n)?, &b.to_array(n)?, f, out_type)?,
            (kind @ (Kind::TransformKeys | Kind::TransformValues | Kind::MapFilter), [V(m), L(f)]) => {
                map_lambda(kind, &m.to_array(n)?, f, out_type)?
            }
            (Kind::MapZipWith, [V(a), V(b), L(f)]) => map_zip_with(&a.to_array(n)?, &b.to_array(n)?, f, out_type)?,
            _ => return exec_err!("{}: wrong arguments", self.name),
        };
        Ok(ColumnarValue::Array(out))
    }
}

impl Lambda {
    fn reduce(&self, a: &ArrayRef, init: &ArrayRef, step: &LambdaArgument, finish: &LambdaArgument, n: usize) -> Result<ArrayRef> {
        if a.data_type() == &DataType::Null {
            return Ok(arrow::array::new_null_array(&DataType::Null, n));
        }
        let list = a.as_list::<i32>();
        let mut state = Arc::clone(init);
        let state_type = state.data_type().clone();
        let longest = (0..n).filter(|r| list.is_valid(*r)).map(|r| list.value_length(r)).max().unwrap_or(0);
        let reservation = MemoryConsumer::new(self.name).register(&self.pool);
        for j in 0..longest {
            let active: Vec<u32> = (0..n).filter(|&r| list.is_valid(r) && list.value_length(r) > j).map(|r| r as u32).collect();
            let rows = UInt32Array::from(active.clone());
            let elements = UInt32Array::from(active.iter().map(|&r| (list.value_offsets()[r as usize] + j) as u32).collect::<Vec<_>>());
            let s = take(state.as_ref(), &rows, None)?;
            let x = take(list.values().as_ref(), &elements, None)?;
            let mut next = evaluate(step, &[s, x], &rows, active.len())?;
            if next.data_type() != &state_type {
                next = cast(&next, &state_type)?;
            }
            let bytes = next.get_array_memory_size() as u64;
            if bytes / active.len().max(1) as u64 > MAX_VALUE_BYTES {
                return Err(too_big(self.name, bytes / active.len().max(1) as u64, "value", MAX_VALUE_BYTES));
            }
            reservation.try_resize(bytes as usize + state.get_array_memory_size())?;
            let mut pick: Vec<(usize, usize)> = (0..n).map(|r| (0, r)).collect();
            for (k, &r) in active.iter().enumerate() {
                pick[r as usize] = (1, k);
            }
            state = interleave(&[state.as_ref(), next.as_ref()], &pick)?;
        }
        let all = UInt32Array::from((0..n as u32).collect::<Vec<_>>());
        let out = evaluate(finish, &[state], &all, n)?;
        if list.null_count() == 0 {
            return Ok(out);
        }
        Ok(nullif(&out, &BooleanArray::from((0..n).map(|r| list.is_null(r)).collect::<Vec<_>>()))?)
    }
}

fn zip_with(a: &ArrayRef, b: &ArrayRef, f: &LambdaArgument, out_type: &DataType) -> Result<ArrayRef> {
    let n = a.len();
    let DataType::List(item) = out_type else { return exec_err!("zip_with returns an array, not {out_type}") };
    if a.data_type() == &DataType::Null || b.data_type() == &DataType::Null {
        return Ok(arrow::array::new_null_array(out_type, n));
    }
    let (a, b) = (a.as_list::<i32>(), b.as_list::<i32>());
    let (mut xs, mut ys, mut rows, mut offsets, mut valid) = (vec![], vec![], vec![], vec![0i32], vec![]);
    for r in 0..n {
        let ok = a.is_valid(r) && b.is_valid(r);
        let (la, lb) = if ok { (a.value_length(r), b.value_length(r)) } else { (0, 0) };
        let (oa, ob) = (a.value_offsets()[r], b.value_offsets()[r]);
        for j in 0..la.max(lb) {
            xs.push((j < la).then(|| (oa + j) as u32));
            ys.push((j < lb).then(|| (ob + j) as u32));
            rows.push(r as u32);
        }
        offsets.push(offsets[r] + la.max(lb));
        valid.push(ok);
    }
    let x = take(a.values().as_ref(), &UInt32Array::from(xs), None)?;
    let y = take(b.values().as_ref(), &UInt32Array::from(ys), None)?;
    let len = x.len();
    let z = evaluate(f, &[x, y], &UInt32Array::from(rows), len)?;
    Ok(Arc::new(ListArray::try_new(Arc::clone(item), OffsetBuffer::new(offsets.into()), z, Some(NullBuffer::from(valid)))?))
}

fn map_lambda(kind: Kind, m: &ArrayRef, f: &LambdaArgument, out_type: &DataType) -> Result<ArrayRef> {
    let m = m.as_map();
    let (rows, offsets) = rows_of(m.value_offsets());
    let (first, len) = (m.value_offsets()[0] as usize, rows.len());
    let keys = m.keys().slice(first, len);
    let values = m.values().slice(first, len);
    let out = evaluate(f, &[Arc::clone(&keys), Arc::clone(&values)], &rows, len)?;
    let (keys, values, offsets) = match kind {
        Kind::TransformValues => (keys, out, offsets),
        Kind::TransformKeys => {
            if out.null_count() > 0 {
                return exec_err!("INVALID_FUNCTION_ARGUMENT: map key cannot be null");
            }
            check_unique_keys(&out, offsets.windows(2).map(|w| w[0] as usize..w[1] as usize))?;
            (out, values, offsets)
        }
        Kind::MapFilter => {
            let keep = out.as_boolean();
            let keep = BooleanArray::from((0..len).map(|i| keep.is_valid(i) && keep.value(i)).collect::<Vec<_>>());
            let mut kept = vec![0i32];
            for w in offsets.windows(2) {
                let here = (w[0] as usize..w[1] as usize).filter(|&i| keep.value(i)).count();
                kept.push(kept.last().copied().unwrap_or(0) + here as i32);
            }
            let keys = arrow::compute::filter(keys.as_ref(), &keep)?;
            let values = arrow::compute::filter(values.as_ref(), &keep)?;
            (keys, values, OffsetBuffer::new(kept.into()))
        }
        Kind::Reduce | Kind::ZipWith | Kind::MapZipWith => return exec_err!("not a one-map function"),
    };
    build_map(out_type, offsets.to_vec(), keys, values, m.nulls().cloned())
}

fn map_zip_with(a: &ArrayRef, b: &ArrayRef, f: &LambdaArgument, out_type: &DataType) -> Result<ArrayRef> {
    let (a, b) = (a.as_map(), b.as_map());
    let converter = RowConverter::new(vec![SortField::new(a.keys().data_type().clone())])?;
    let (ea, eb) = (converter.convert_columns(&[Arc::clone(a.keys())])?, converter.convert_columns(&[Arc::clone(b.keys())])?);
    let (mut keys, mut left, mut right, mut rows, mut offsets, mut valid) = (vec![], vec![], vec![], vec![], vec![0i32], vec![]);
    for r in 0..a.len() {
        let ok = a.is_valid(r) && b.is_valid(r);
        let before = keys.len();
        if ok {
            let (oa, ob) = (a.value_offsets(), b.value_offsets());
            let in_b: std::collections::HashMap<_, _> = (ob[r] as usize..ob[r + 1] as usize).map(|j| (eb.row(j), j)).collect();
            let mut in_a = HashSet::new();
            for i in oa[r] as usize..oa[r + 1] as usize {
                in_a.insert(ea.row(i));
                keys.push((0, i));
                left.push(Some(i as u32));
                right.push(in_b.get(&ea.row(i)).map(|&j| j as u32));
            }
            for j in ob[r] as usize..ob[r + 1] as usize {
                if !in_a.contains(&eb.row(j)) {
                    keys.push((1, j));
                    left.push(None);
                    right.push(Some(j as u32));
                }
            }
        }
        rows.extend(std::iter::repeat_n(r as u32, keys.len() - before));
        offsets.push(keys.len() as i32);
        valid.push(ok);
    }
    let k = interleave(&[a.keys().as_ref(), b.keys().as_ref()], &keys)?;
    let v1 = take(a.values().as_ref(), &UInt32Array::from(left), None)?;
    let v2 = take(b.values().as_ref(), &UInt32Array::from(right), None)?;
    let len = k.len();
    let v = evaluate(f, &[Arc::clone(&k), v1, v2], &UInt32Array::from(rows), len)?;
    build_map(out_type, offsets, k, v, Some(NullBuffer::from(valid)))
}
