//! Trino's functions over quantities with units: `to_milliseconds` of a
//! day-to-second interval, `human_readable_seconds` (functions/datetime.md)
//! and `parse_data_size` (functions/conversion.md).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Float64Type, IntervalMonthDayNanoType, IntervalUnit};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::ScalarUDF;

use super::json::strings;
use super::udf::{any, ret_i64, ret_utf8, udf};

pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        udf("to_milliseconds", &[], any(1), ret_i64, to_milliseconds),
        udf("human_readable_seconds", &[], any(1), ret_utf8, human_readable_seconds),
        udf("parse_data_size", &[], any(1), |_| Ok(DataType::Decimal128(38, 0)), parse_data_size),
        udf("parse_duration", &[], any(1), |_| Ok(DataType::Interval(IntervalUnit::MonthDayNano)), parse_duration),
    ]
}

fn to_milliseconds(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let a = arrow::compute::cast(&args[0], &DataType::Interval(IntervalUnit::MonthDayNano))?;
    let a = a.as_primitive::<IntervalMonthDayNanoType>();
    let mut out = Vec::with_capacity(a.len());
    for v in a.iter() {
        out.push(match v {
            Some(v) if v.months != 0 => return exec_err!("to_milliseconds takes an interval day to second, not a year-to-month interval"),
            Some(v) => Some(i64::from(v.days) * 86_400_000 + v.nanoseconds / 1_000_000),
            None => None,
        });
    }
    Ok(Arc::new(Int64Array::from(out)))
}

/// `96` → `1 minute, 36 seconds`: weeks, days, hours, minutes and seconds,
/// the zero ones left out, of the seconds rounded to a whole number.
fn human_readable_seconds(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let s = arrow::compute::cast(&args[0], &DataType::Float64)?;
    let s: &Float64Array = s.as_primitive::<Float64Type>();
    let mut out = Vec::with_capacity(s.len());
    for v in s.iter() {
        let Some(v) = v else {
            out.push(None);
            continue;
        };
        if !v.is_finite() {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: Invalid argument found: {v}");
        }
        let mut rest = v.abs().round() as u64;
        let mut parts = Vec::new();
        for (unit, size) in [("week", 604_800), ("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)] {
            let n = rest / size;
            rest %= size;
            if n > 0 {
                parts.push(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }));
            }
        }
        out.push(Some(if parts.is_empty() { "0 seconds".to_owned() } else { parts.join(", ") }));
    }
    Ok(Arc::new(StringArray::from(out)))
}

/// `parse_duration('3.81 d')` → `3 19:26:24.000`: a number, optional
/// spaces and a unit (ns, us, ms, s, m, h, d), as a day-to-second interval
/// of whole milliseconds (rounded half up, as Trino's).
fn parse_duration(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    use arrow::datatypes::IntervalMonthDayNano;
    let s = strings(&args[0])?;
    let mut out = Vec::with_capacity(s.len());
    for v in s.iter() {
        out.push(match v {
            Some(v) => match duration_millis(v) {
                Some(ms) => Some(IntervalMonthDayNano::new(0, (ms / 86_400_000) as i32, (ms % 86_400_000) * 1_000_000)),
                None => return exec_err!("INVALID_FUNCTION_ARGUMENT: duration is not a valid data duration string: {v}"),
            },
            None => None,
        });
    }
    Ok(Arc::new(arrow::array::IntervalMonthDayNanoArray::from(out)))
}

fn duration_millis(text: &str) -> Option<i64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().ok()?;
    let millis_per = match unit.trim_start() {
        "ns" => 1e-6,
        "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        "h" => 3_600e3,
        "d" => 86_400e3,
        _ => return None,
    };
    let ms = (value * millis_per + 0.5).floor();
    (ms.is_finite() && ms < 1e15).then_some(ms as i64)
}

/// `parse_data_size('2.3MB')` → 2411724: a number and a unit (B, kB, MB, …
/// YB, powers of 1024), the bytes truncated to a whole number.
fn parse_data_size(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let s = strings(&args[0])?;
    let mut out = Vec::with_capacity(s.len());
    for v in s.iter() {
        out.push(match v {
            Some(v) => match data_size(v) {
                Some(n) => Some(n),
                None => return exec_err!("INVALID_FUNCTION_ARGUMENT: Invalid data size: '{v}'"),
            },
            None => None,
        });
    }
    Ok(Arc::new(Decimal128Array::from(out).with_precision_and_scale(38, 0)?))
}

fn data_size(text: &str) -> Option<i128> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let power = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"].iter().position(|u| *u == unit)?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || (number.contains('.') && fraction.is_empty()) {
        return None;
    }
    let digits: i128 = format!("{whole}{fraction}").parse().ok()?;
    let factor = 1024i128.checked_pow(power as u32)?;
    let scale = 10i128.checked_pow(fraction.len() as u32)?;
    digits.checked_mul(factor).map(|b| b / scale).filter(|b| *b < 10i128.pow(38))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_millis("42.8ms"), Some(43));
        assert_eq!(duration_millis("3.81 d"), Some(329_184_000));
        assert_eq!(duration_millis("5m"), Some(300_000));
        assert_eq!(duration_millis("5 years"), None);
        assert_eq!(duration_millis("m"), None);
    }

    #[test]
    fn data_sizes() {
        assert_eq!(data_size("1B"), Some(1));
        assert_eq!(data_size("1kB"), Some(1024));
        assert_eq!(data_size("2.3MB"), Some(2_411_724));
        assert_eq!(data_size("1YB"), Some(1_208_925_819_614_629_174_706_176));
        assert_eq!(data_size("1 kB"), None);
        assert_eq!(data_size("kB"), None);
        assert_eq!(data_size("1.kB"), None);
    }
}
