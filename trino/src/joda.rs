//! Trino's Java date functions (functions/datetime.md): `format_datetime`
//! and `parse_datetime` with JodaTime's pattern letters; the Teradata
//! functions `to_char`, `to_date`, `to_timestamp` (functions/teradata.md)
//! with Teradata's format tokens; each pattern translated into a chrono
//! format. And the zone fields `timezone_hour` / `timezone_minute`, and
//! `from_unixtime_nanos`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, StringBuilder, TimestampNanosecondArray};
use arrow::datatypes::{DataType, TimeUnit};
use chrono::{FixedOffset, NaiveDateTime, Offset, TimeZone};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::ScalarUDF;

use super::datetime::{datetimes, format_rows, instants};
use super::json::strings;
use super::types::{Zone, zone};
use super::udf::{any, ret_i64, ret_utf8, udf};

pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        udf("format_datetime", &[], any(2), ret_utf8, format_datetime),
        udf("parse_datetime", &[], any(2), |_| Ok(DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))), parse_datetime),
        udf("to_char", &[], any(2), ret_utf8, to_char),
        udf("to_timestamp", &[], any(2), |_| Ok(crate::types::sql_timestamp()), |a, _| teradata_parse(a, false)),
        udf("to_date", &[], any(2), |_| Ok(DataType::Date32), |a, _| teradata_parse(a, true)),
        udf("timezone_hour", &[], any(1), ret_i64, |a, t| offsets(a, t, |s| s / 3600)),
        udf("timezone_minute", &[], any(1), ret_i64, |a, t| offsets(a, t, |s| (s % 3600) / 60)),
        udf("from_unixtime_nanos", &[], any(1), |_| Ok(DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))), from_unixtime_nanos),
    ]
}

/// Stands for the zone's id (Joda's `ZZZ`) in a chrono format, replaced
/// after formatting.
const ZONE_ID: char = '\u{1}';

/// Stands for the zone's short name (Joda's `z`: `EST`, `UTC`).
const ZONE_ABBREVIATION: char = '\u{2}';

/// A Joda pattern as a chrono format string.
fn joda_to_strftime(pattern: &str) -> Result<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted text; '' is a literal quote, inside or outside quotes.
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        out.push('\'');
                        i += 2;
                        continue;
                    }
                    break;
                }
                push_literal(&mut out, chars[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut out, c);
            i += 1;
            continue;
        }
        let n = chars[i..].iter().take_while(|&&d| d == c).count();
        i += n;
        let item = match (c, n) {
            ('y' | 'Y' | 'u', 2) => "%y".to_owned(),
            ('y' | 'Y' | 'u', _) => "%Y".to_owned(),
            ('x', 2) => "%g".to_owned(),
            ('x', _) => "%G".to_owned(),
            ('C', _) => "%C".to_owned(),
            ('w', 1) => "%-V".to_owned(),
            ('w', _) => "%V".to_owned(),
            ('e', _) => "%u".to_owned(),
            ('E', 1..=3) => "%a".to_owned(),
            ('E', _) => "%A".to_owned(),
            ('M', 1) => "%-m".to_owned(),
            ('M', 2) => "%m".to_owned(),
            ('M', 3) => "%b".to_owned(),
            ('M', _) => "%B".to_owned(),
            ('d', 1) => "%-d".to_owned(),
            ('d', _) => "%d".to_owned(),
            ('D', 1) => "%-j".to_owned(),
            ('D', _) => "%j".to_owned(),
            ('a', _) => "%p".to_owned(),
            ('h', 1) => "%-I".to_owned(),
            ('h', _) => "%I".to_owned(),
            ('H', 1) => "%-H".to_owned(),
            ('H', _) => "%H".to_owned(),
            ('m', 1) => "%-M".to_owned(),
            ('m', _) => "%M".to_owned(),
            ('s', 1) => "%-S".to_owned(),
            ('s', _) => "%S".to_owned(),
            ('S', 3 | 6 | 9) => format!("%{n}f"),
            ('Z', 1) => "%z".to_owned(),
            ('Z', 2) => "%:z".to_owned(),
            ('Z', _) => ZONE_ID.to_string(),
            ('z', 1..=3) => ZONE_ABBREVIATION.to_string(),
            _ => return exec_err!("INVALID_FUNCTION_ARGUMENT: unsupported pattern letters {:?} in {pattern:?}", c.to_string().repeat(n)),
        };
        out.push_str(&item);
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

/// A Teradata format (`yyyy-mm-dd hh24:mi:ss`) as a chrono format: the
/// tokens `yyyy`, `yy`, `mm`, `dd`, `hh24`, `hh`, `mi`, `ss` (any case) and
/// the separators `- / , . ; :` and space.
fn teradata_to_strftime(format: &str) -> Result<String> {
    let lower = format.to_ascii_lowercase();
    let mut rest = lower.as_str();
    let mut out = String::new();
    'next: while !rest.is_empty() {
        for (token, item) in
            [("yyyy", "%Y"), ("yy", "%y"), ("mm", "%m"), ("dd", "%d"), ("hh24", "%H"), ("hh", "%I"), ("mi", "%M"), ("ss", "%S")]
        {
            if let Some(r) = rest.strip_prefix(token) {
                out.push_str(item);
                rest = r;
                continue 'next;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        if !matches!(c, '-' | '/' | ',' | '.' | ';' | ':' | ' ') {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: Failed to tokenize string [{c}] at offset [{}]", format.len() - rest.len());
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Ok(out)
}

fn to_char(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    format_rows(args, teradata_to_strftime)
}

/// `to_timestamp` / `to_date`: the text read with a Teradata format.
fn teradata_parse(args: &[ArrayRef], date: bool) -> Result<ArrayRef> {
    let out = parse_rows(args, teradata_to_strftime)?;
    if date {
        let epoch = chrono::DateTime::UNIX_EPOCH.date_naive();
        let days: Vec<Option<i32>> = out.iter().map(|t| t.map(|t| (t.date() - epoch).num_days() as i32)).collect();
        return Ok(Arc::new(arrow::array::Date32Array::from(days)));
    }
    Ok(Arc::new(arrow::array::TimestampMillisecondArray::from(
        out.iter().map(|t| t.map(|t| t.and_utc().timestamp_millis())).collect::<Vec<_>>(),
    )))
}

/// Each row's text read with its pattern, which `to_strftime` translates
/// (a pattern of a date alone reads midnight).
fn parse_rows(args: &[ArrayRef], to_strftime: fn(&str) -> Result<String>) -> Result<Vec<Option<NaiveDateTime>>> {
    let (s, fmts) = (strings(&args[0])?, strings(&args[1])?);
    let mut cached: Option<(String, String)> = None;
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        if s.is_null(i) || fmts.is_null(i) {
            out.push(None);
            continue;
        }
        let (text, f) = (s.value(i), fmts.value(i));
        if cached.as_ref().is_none_or(|(k, _)| k != f) {
            cached = Some((f.to_owned(), to_strftime(f)?.replace("%-", "%")));
        }
        let strftime = cached.as_ref().map(|c| c.1.as_str()).unwrap_or_default();
        let parsed = NaiveDateTime::parse_from_str(text, strftime)
            .or_else(|_| chrono::NaiveDate::parse_from_str(text, strftime).map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default()));
        match parsed {
            Ok(t) => out.push(Some(t)),
            Err(_) => return exec_err!("INVALID_FUNCTION_ARGUMENT: Invalid format: \"{text}\" for pattern {f:?}"),
        }
    }
    Ok(out)
}

/// The zone of a timestamp column (UTC, the session zone, for one without).
fn column_zone(t: &DataType) -> Result<(Zone, String)> {
    match t {
        DataType::Timestamp(_, Some(tz)) => Ok((zone(tz)?, tz.to_string())),
        _ => Ok((Zone::Fixed(FixedOffset::east_opt(0).expect("zero offset")), "UTC".to_owned())),
    }
}

/// The offset of `zone` at a UTC instant.
fn offset_at(zone: &Zone, t: NaiveDateTime) -> FixedOffset {
    match zone {
        Zone::Region(z) => z.offset_from_utc_datetime(&t).fix(),
        Zone::Fixed(o) => *o,
    }
}

fn format_datetime(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    let (zone, zone_name) = column_zone(&types[0])?;
    let utc = instants(&args[0])?;
    let local = datetimes(&args[0])?;
    let fmts = strings(&args[1])?;
    let mut cached: Option<(String, String)> = None;
    let mut b = StringBuilder::new();
    for i in 0..utc.len() {
        let (Some(t), Some(wall), false) = (utc[i], local[i], fmts.is_null(i)) else {
            b.append_null();
            continue;
        };
        let f = fmts.value(i);
        if cached.as_ref().is_none_or(|(k, _)| k != f) {
            cached = Some((f.to_owned(), joda_to_strftime(f)?));
        }
        let strftime = cached.as_ref().map(|c| c.1.as_str()).unwrap_or_default();
        let offset = offset_at(&zone, t);
        let Some(at) = offset.from_local_datetime(&wall).single() else {
            b.append_null();
            continue;
        };
        let mut text = String::new();
        if std::fmt::Write::write_fmt(&mut text, format_args!("{}", at.format(strftime))).is_err() {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: cannot format {wall} with {f:?}");
        }
        let text = text.replace(ZONE_ID, &zone_name);
        let text = if text.contains(ZONE_ABBREVIATION) {
            let short = match &zone {
                Zone::Region(z) => chrono_tz::OffsetName::abbreviation(&z.offset_from_utc_datetime(&t)).unwrap_or(&zone_name).to_owned(),
                Zone::Fixed(_) => zone_name.clone(),
            };
            text.replace(ZONE_ABBREVIATION, &short)
        } else {
            text
        };
        b.append_value(text);
    }
    Ok(Arc::new(b.finish()))
}

/// `parse_datetime(string, pattern)`: the wall-clock time the pattern reads,
/// in UTC (the session zone). Patterns naming a zone are refused rather
/// than answered in another zone than Trino's.
fn parse_datetime(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let out = parse_rows(args, |f| {
        let strftime = joda_to_strftime(f)?;
        if strftime.contains("%z") || strftime.contains("%:z") || strftime.contains(ZONE_ABBREVIATION) || strftime.contains(ZONE_ID) {
            return exec_err!("NOT_SUPPORTED: parse_datetime with a time zone in the pattern ({f:?})");
        }
        Ok(strftime)
    })?;
    let millis: Vec<Option<i64>> = out.iter().map(|t| t.map(|t| t.and_utc().timestamp_millis())).collect();
    Ok(Arc::new(arrow::array::TimestampMillisecondArray::from(millis).with_timezone("UTC")))
}

/// A part of the zone offset in seconds, at each timestamp's instant.
fn offsets(args: &[ArrayRef], types: &[DataType], part: fn(i64) -> i64) -> Result<ArrayRef> {
    let DataType::Timestamp(_, Some(_)) = &types[0] else {
        return exec_err!("timezone_hour and timezone_minute need a timestamp with time zone");
    };
    let (zone, _) = column_zone(&types[0])?;
    let out: Int64Array =
        instants(&args[0])?.into_iter().map(|t| t.map(|t| part(i64::from(offset_at(&zone, t).local_minus_utc())))).collect();
    Ok(Arc::new(out))
}

fn from_unixtime_nanos(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let nanos = match args[0].data_type() {
        DataType::Decimal128(_, s) => {
            let scale = 10i128.pow(u32::from(*s as u8));
            let d = args[0].as_any().downcast_ref::<arrow::array::Decimal128Array>();
            d.map(|d| d.iter().map(|v| v.map(|v| (v / scale) as i64)).collect::<Int64Array>())
                .unwrap_or_else(|| Int64Array::new_null(args[0].len()))
        }
        _ => {
            let c = arrow::compute::cast(&args[0], &DataType::Int64)?;
            c.as_any().downcast_ref::<Int64Array>().cloned().unwrap_or_else(|| Int64Array::new_null(args[0].len()))
        }
    };
    Ok(Arc::new(TimestampNanosecondArray::from(nanos.iter().collect::<Vec<_>>()).with_timezone("UTC")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joda_patterns() {
        assert_eq!(joda_to_strftime("yyyy-MM-dd HH:mm:ss.SSS").unwrap(), "%Y-%m-%d %H:%M:%S.%3f");
        assert_eq!(joda_to_strftime("EEE, d MMM yy 'at' h a").unwrap(), "%a, %-d %b %y at %-I %p");
        assert_eq!(joda_to_strftime("''yyyy'' 100%").unwrap(), "'%Y' 100%%");
        assert!(joda_to_strftime("q").is_err());
    }
}
