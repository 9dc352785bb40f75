//! Trino's varbinary and URL functions.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray, BinaryBuilder, Int64Builder, StringBuilder};
use arrow::datatypes::DataType;
use base64::Engine;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::ScalarUDF;

use super::json::strings;
use super::udf::{any, ret_i64, ret_utf8, udf};

fn binaries(a: &ArrayRef) -> Result<BinaryArray> {
    let c = arrow::compute::cast(a, &DataType::Binary)?;
    Ok(c.as_any().downcast_ref::<BinaryArray>().cloned().unwrap_or_else(|| BinaryArray::from(vec![None::<&[u8]>; a.len()])))
}

fn ret_binary(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Binary)
}

fn map_to_utf8(a: &ArrayRef, f: impl Fn(&[u8]) -> Result<String>) -> Result<ArrayRef> {
    let b = binaries(a)?;
    let mut out = StringBuilder::new();
    for v in b.iter() {
        match v {
            Some(v) => out.append_value(f(v)?),
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

fn map_to_binary(a: &ArrayRef, f: impl Fn(&str) -> Result<Vec<u8>>) -> Result<ArrayRef> {
    let s = strings(a)?;
    let mut out = BinaryBuilder::new();
    for v in s.iter() {
        match v {
            Some(v) => out.append_value(f(v)?),
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

fn to_utf8(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    map_to_binary(&args[0], |s| Ok(s.as_bytes().to_vec()))
}

/// Invalid UTF-8 becomes U+FFFD, as in Trino.
fn from_utf8(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    map_to_utf8(&args[0], |b| Ok(String::from_utf8_lossy(b).into_owned()))
}

fn to_base64(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    map_to_utf8(&args[0], |b| Ok(base64::engine::general_purpose::STANDARD.encode(b)))
}

fn from_base64(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    map_to_binary(&args[0], |s| match base64::engine::general_purpose::STANDARD.decode(s.trim_end()) {
        Ok(b) => Ok(b),
        Err(e) => exec_err!("INVALID_FUNCTION_ARGUMENT: invalid base64 input {s:?}: {e}"),
    })
}

fn to_hex(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    map_to_utf8(&args[0], |b| Ok(hex::encode_upper(b)))
}

fn from_hex(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    map_to_binary(&args[0], |s| match hex::decode(s) {
        Ok(b) => Ok(b),
        Err(e) => exec_err!("INVALID_FUNCTION_ARGUMENT: invalid hex input {s:?}: {e}"),
    })
}

/// A URL function: NULL where the text is not a URL or lacks the part.
fn url_part(args: &[ArrayRef], part: fn(&url::Url) -> Option<String>) -> Result<ArrayRef> {
    let s = strings(&args[0])?;
    let mut out = StringBuilder::new();
    for v in s.iter() {
        out.append_option(v.and_then(|v| url::Url::parse(v).ok()).and_then(|u| part(&u)));
    }
    Ok(Arc::new(out.finish()))
}

fn url_extract_host(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    url_part(args, |u| u.host_str().map(str::to_owned))
}

fn url_extract_path(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    url_part(args, |u| Some(u.path().to_owned()))
}

fn url_extract_protocol(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    url_part(args, |u| Some(u.scheme().to_owned()))
}

fn url_extract_query(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    url_part(args, |u| u.query().map(str::to_owned))
}

fn url_extract_fragment(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    url_part(args, |u| u.fragment().map(str::to_owned))
}

/// The port written in the URL (Trino does not supply the scheme's default).
fn url_extract_port(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let s = strings(&args[0])?;
    let mut out = Int64Builder::new();
    for v in s.iter() {
        out.append_option(v.and_then(|v| url::Url::parse(v).ok()).and_then(|u| u.port()).map(i64::from));
    }
    Ok(Arc::new(out.finish()))
}

/// The first value of a query parameter, percent-decoded.
fn url_extract_parameter(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let (s, names) = (strings(&args[0])?, strings(&args[1])?);
    let mut out = StringBuilder::new();
    for i in 0..s.len() {
        let n = if names.len() == 1 { 0 } else { i };
        if s.is_null(i) || names.is_null(n) {
            out.append_null();
            continue;
        }
        let value =
            url::Url::parse(s.value(i)).ok().and_then(|u| u.query_pairs().find(|(k, _)| k == names.value(n)).map(|(_, v)| v.into_owned()));
        out.append_option(value);
    }
    Ok(Arc::new(out.finish()))
}

/// `application/x-www-form-urlencoded`, as Java's URLEncoder (space as `+`).
fn url_encode(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let s = strings(&args[0])?;
    let mut out = StringBuilder::new();
    for v in s.iter() {
        out.append_option(v.map(|v| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()));
    }
    Ok(Arc::new(out.finish()))
}

fn url_decode(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let s = strings(&args[0])?;
    let mut out = StringBuilder::new();
    for v in s.iter() {
        out.append_option(v.map(|v| {
            let plus = v.replace('+', " ");
            percent_encoding::percent_decode_str(&plus).decode_utf8_lossy().into_owned()
        }));
    }
    Ok(Arc::new(out.finish()))
}

pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        udf("to_utf8", &[], any(1), ret_binary, to_utf8),
        udf("from_utf8", &[], any(1), ret_utf8, from_utf8),
        udf("to_base64", &[], any(1), ret_utf8, to_base64),
        udf("from_base64", &[], any(1), ret_binary, from_base64),
        udf("to_hex", &[], any(1), ret_utf8, to_hex),
        udf("from_hex", &[], any(1), ret_binary, from_hex),
        udf("url_extract_host", &[], any(1), ret_utf8, url_extract_host),
        udf("url_extract_path", &[], any(1), ret_utf8, url_extract_path),
        udf("url_extract_protocol", &[], any(1), ret_utf8, url_extract_protocol),
        udf("url_extract_query", &[], any(1), ret_utf8, url_extract_query),
        udf("url_extract_fragment", &[], any(1), ret_utf8, url_extract_fragment),
        udf("url_extract_port", &[], any(1), ret_i64, url_extract_port),
        udf("url_extract_parameter", &[], any(2), ret_utf8, url_extract_parameter),
        udf("url_encode", &[], any(1), ret_utf8, url_encode),
        udf("url_decode", &[], any(1), ret_utf8, url_decode),
    ]
}
