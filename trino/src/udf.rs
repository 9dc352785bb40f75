//! A compact way to define scalar functions: a name, a signature, a return
//! type rule and a kernel over arrays.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

pub(crate) type Kernel = fn(&[ArrayRef], &[DataType]) -> Result<ArrayRef>;
pub(crate) type ReturnRule = fn(&[DataType]) -> Result<DataType>;
/// A return type that depends on constant arguments (e.g. a zone or a type name).
pub(crate) type ValueReturnRule = fn(&[DataType], &[Option<&ScalarValue>]) -> Result<DataType>;

#[derive(Debug)]
pub(crate) struct Udf {
    name: &'static str,
    aliases: Vec<String>,
    signature: Signature,
    ret: ReturnRule,
    ret_values: Option<ValueReturnRule>,
    kernel: Kernel,
}

/// Function names are unique in a registry, so a function's identity
/// (`PartialEq`, `Eq`, `Hash`, which DataFusion's UDF traits require) is its
/// name: `identity_by_name!(Type, |f| name)`.
macro_rules! identity_by_name {
    ($t:ty, |$f:ident| $name:expr) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                let $f = self;
                let mine: &str = $name;
                let $f = other;
                let theirs: &str = $name;
                mine == theirs
            }
        }

        impl Eq for $t {}

        impl std::hash::Hash for $t {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                let $f = self;
                $name.hash(state);
            }
        }
    };
}
pub(crate) use identity_by_name;

identity_by_name!(Udf, |f| f.name);

impl ScalarUDFImpl for Udf {
    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        (self.ret)(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args.arg_fields.iter().map(|f| f.data_type().clone()).collect();
        let ty = match self.ret_values {
            Some(rule) => rule(&types, args.scalar_arguments)?,
            None => (self.ret)(&types)?,
        };
        Ok(Arc::new(Field::new(self.name, ty, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let types: Vec<DataType> = args.args.iter().map(|a| a.data_type()).collect();
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out = (self.kernel)(&arrays, &types)?;
        if scalar && out.len() == 1 {
            Ok(ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

/// A scalar UDF from its parts.
pub(crate) fn udf(name: &'static str, aliases: &[&str], signature: Signature, ret: ReturnRule, kernel: Kernel) -> ScalarUDF {
    ScalarUDF::new_from_impl(Udf {
        name,
        aliases: aliases.iter().map(|s| (*s).to_owned()).collect(),
        signature,
        ret,
        ret_values: None,
        kernel,
    })
}

/// Like [`udf`], with a return type computed from constant arguments.
pub(crate) fn udf_valued(name: &'static str, signature: Signature, ret: ValueReturnRule, kernel: Kernel) -> ScalarUDF {
    ScalarUDF::new_from_impl(Udf { name, aliases: vec![], signature, ret: ret_first, ret_values: Some(ret), kernel })
}

pub(crate) fn any(n: usize) -> Signature {
    Signature::any(n, Volatility::Immutable)
}

/// Any types, any of `counts` arguments.
pub(crate) fn one_of(counts: &[usize]) -> Signature {
    Signature::one_of(counts.iter().map(|n| datafusion::logical_expr::TypeSignature::Any(*n)).collect(), Volatility::Immutable)
}

pub(crate) fn variadic_any() -> Signature {
    Signature::variadic_any(Volatility::Immutable)
}

pub(crate) fn ret_utf8(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Utf8)
}
pub(crate) fn ret_i64(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Int64)
}
pub(crate) fn ret_f64(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Float64)
}
pub(crate) fn ret_bool(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Boolean)
}
pub(crate) fn ret_date(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Date32)
}
pub(crate) fn ret_ts(_: &[DataType]) -> Result<DataType> {
    Ok(crate::types::sql_timestamp())
}
/// The type of the second argument (a typed NULL carrying a cast's target).
pub(crate) fn ret_second(t: &[DataType]) -> Result<DataType> {
    Ok(t.get(1).cloned().unwrap_or(DataType::Null))
}
pub(crate) fn ret_first(t: &[DataType]) -> Result<DataType> {
    Ok(t.first().cloned().unwrap_or(DataType::Null))
}
pub(crate) fn ret_utf8_list(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::List(Arc::new(arrow::datatypes::Field::new_list_field(DataType::Utf8, true))))
}
