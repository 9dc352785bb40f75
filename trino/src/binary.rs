//! Trino's varbinary and URL functions: encodings (base64, base64url,
//! base32, hex, big-endian integers, IEEE 754), hashes and HMACs.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryBuilder, Float32Array, Float64Array, Int32Array, Int64Array, Int64Builder, StringBuilder,
};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type};
use base64::Engine;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::ScalarUDF;

use super::json::strings;
use super::udf::{any, ret_i64, ret_utf8, udf};
use crate::hashes;

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
    map_to_binary(&args[0], |s| match BASE64_LENIENT.decode(s.trim_end()) {
        Ok(b) => Ok(b),
        Err(e) => exec_err!("INVALID_FUNCTION_ARGUMENT: invalid base64 input {s:?}: {e}"),
    })
}

/// Base64 decoding that accepts the text padded or not (as Java's decoder).
const BASE64_LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Base64 with the URL-safe alphabet, padded; decoding accepts either.
const BASE64_URL: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn from_base64url(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    map_to_binary(&args[0], |s| match BASE64_URL.decode(s.trim_end()) {
        Ok(b) => Ok(b),
        Err(e) => exec_err!("INVALID_FUNCTION_ARGUMENT: invalid base64 input {s:?}: {e}"),
    })
}

fn from_base32(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    map_to_binary(&args[0], |s| match hashes::base32_decode(s) {
        Some(b) => Ok(b),
        None => exec_err!("INVALID_FUNCTION_ARGUMENT: invalid base32 input {s:?}"),
    })
}

fn map_binary(a: &ArrayRef, f: impl Fn(&[u8]) -> Vec<u8>) -> Result<ArrayRef> {
    let b = binaries(a)?;
    Ok(Arc::new(b.iter().map(|v| v.map(&f)).collect::<BinaryArray>()))
}

fn crc32(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let b = binaries(&args[0])?;
    Ok(Arc::new(b.iter().map(|v| v.map(|v| i64::from(crc32fast::hash(v)))).collect::<Int64Array>()))
}

fn hmac(args: &[ArrayRef], hash: hashes::Hash) -> Result<ArrayRef> {
    let (data, key) = (binaries(&args[0])?, binaries(&args[1])?);
    Ok(Arc::new(data.iter().zip(key.iter()).map(|(d, k)| Some(hashes::hmac(hash, k?, d?))).collect::<BinaryArray>()))
}

/// `to_big_endian_*` / `to_ieee754_*`: the value of type `t` as big-endian
/// bytes (a value outside `t`'s range is an error, not a NULL).
fn encode_ints(a: &ArrayRef, t: &DataType) -> Result<ArrayRef> {
    let options = arrow::compute::CastOptions { safe: false, ..Default::default() };
    let c = arrow::compute::cast_with_options(a, t, &options)?;
    let mut out = BinaryBuilder::new();
    for i in 0..c.len() {
        if c.is_null(i) {
            out.append_null();
            continue;
        }
        match t {
            DataType::Int32 => out.append_value(c.as_primitive::<Int32Type>().value(i).to_be_bytes()),
            DataType::Int64 => out.append_value(c.as_primitive::<Int64Type>().value(i).to_be_bytes()),
            DataType::Float32 => out.append_value(c.as_primitive::<Float32Type>().value(i).to_be_bytes()),
            _ => out.append_value(c.as_primitive::<Float64Type>().value(i).to_be_bytes()),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// `from_big_endian_*` / `from_ieee754_*`: exactly 4 or 8 big-endian bytes.
fn decode_ints(a: &ArrayRef, t: &DataType) -> Result<ArrayRef> {
    let b = binaries(a)?;
    let width = t.primitive_width().unwrap_or(8);
    let mut values = Vec::with_capacity(b.len());
    for v in b.iter() {
        let Some(v) = v else {
            values.push(None);
            continue;
        };
        if v.len() != width {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: expected {width}-byte input, but got instead: {}", v.len());
        }
        let mut bytes = [0u8; 8];
        bytes[..width].copy_from_slice(v);
        values.push(Some(bytes));
    }
    let four = |b: &[u8; 8]| [b[0], b[1], b[2], b[3]];
    Ok(match t {
        DataType::Int32 => Arc::new(values.iter().map(|v| v.map(|b| i32::from_be_bytes(four(&b)))).collect::<Int32Array>()),
        DataType::Float32 => Arc::new(values.iter().map(|v| v.map(|b| f32::from_be_bytes(four(&b)))).collect::<Float32Array>()),
        DataType::Int64 => Arc::new(values.iter().map(|v| v.map(i64::from_be_bytes)).collect::<Int64Array>()),
        _ => Arc::new(values.iter().map(|v| v.map(f64::from_be_bytes)).collect::<Float64Array>()),
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
        udf("to_base64url", &[], any(1), ret_utf8, |a, _| map_to_utf8(&a[0], |b| Ok(BASE64_URL.encode(b)))),
        udf("from_base64url", &[], any(1), ret_binary, from_base64url),
        udf("to_base32", &[], any(1), ret_utf8, |a, _| map_to_utf8(&a[0], |b| Ok(hashes::base32_encode(b)))),
        udf("from_base32", &[], any(1), ret_binary, from_base32),
        udf("to_big_endian_32", &[], any(1), ret_binary, |a, _| encode_ints(&a[0], &DataType::Int32)),
        udf("to_big_endian_64", &[], any(1), ret_binary, |a, _| encode_ints(&a[0], &DataType::Int64)),
        udf("to_ieee754_32", &[], any(1), ret_binary, |a, _| encode_ints(&a[0], &DataType::Float32)),
        udf("to_ieee754_64", &[], any(1), ret_binary, |a, _| encode_ints(&a[0], &DataType::Float64)),
        udf("from_big_endian_32", &[], any(1), |_| Ok(DataType::Int32), |a, _| decode_ints(&a[0], &DataType::Int32)),
        udf("from_big_endian_64", &[], any(1), ret_i64, |a, _| decode_ints(&a[0], &DataType::Int64)),
        udf("from_ieee754_32", &[], any(1), |_| Ok(DataType::Float32), |a, _| decode_ints(&a[0], &DataType::Float32)),
        udf("from_ieee754_64", &[], any(1), |_| Ok(DataType::Float64), |a, _| decode_ints(&a[0], &DataType::Float64)),
        udf("sha1", &[], any(1), ret_binary, |a, _| map_binary(&a[0], |b| hashes::sha1(b).to_vec())),
        udf("xxhash64", &[], any(1), ret_binary, |a, _| map_binary(&a[0], |b| hashes::xxhash64(b).to_be_bytes().to_vec())),
        udf("murmur3", &[], any(1), ret_binary, |a, _| map_binary(&a[0], |b| hashes::murmur3_x64_128(b).to_vec())),
        udf("crc32", &[], any(1), ret_i64, crc32),
        udf("hmac_md5", &[], any(2), ret_binary, |a, _| hmac(a, hashes::Hash::Md5)),
        udf("hmac_sha1", &[], any(2), ret_binary, |a, _| hmac(a, hashes::Hash::Sha1)),
        udf("hmac_sha256", &[], any(2), ret_binary, |a, _| hmac(a, hashes::Hash::Sha256)),
        udf("hmac_sha512", &[], any(2), ret_binary, |a, _| hmac(a, hashes::Hash::Sha512)),
    ]
}
