//! Trino's date and time functions. Timestamps without a zone are UTC wall
//! clock (the session zone is UTC, as in Athena).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Date32Array, Date32Builder, Float64Array, Float64Builder, Int64Array, Int64Builder, StringBuilder,
    TimestampMicrosecondArray, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveDateTime, Timelike};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::ScalarUDF;

use super::json::strings;
use super::udf::{any, ret_date, ret_f64, ret_i64, ret_ts, ret_utf8, udf};

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

/// Timestamps (any unit, any zone: local wall clock of the zone) or dates as
/// naive date-times.
pub(crate) fn datetimes(a: &ArrayRef) -> Result<Vec<Option<NaiveDateTime>>> {
    let micros = match a.data_type() {
        DataType::Date32 | DataType::Date64 => {
            arrow::compute::cast(&arrow::compute::cast(a, &DataType::Date32)?, &DataType::Timestamp(TimeUnit::Microsecond, None))?
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let s = strings(a)?;
            return Ok((0..s.len()).map(|i| if s.is_null(i) { None } else { parse_loose(s.value(i)) }).collect());
        }
        // A zoned timestamp holds the UTC instant; its fields are those of
        // the wall clock in its zone (Trino's `hour(ts AT TIME ZONE z)`).
        DataType::Timestamp(_, Some(tz)) => {
            let zone = super::types::zone(tz)?;
            let m = arrow::compute::cast(a, &DataType::Timestamp(TimeUnit::Microsecond, Some(tz.clone())))?;
            let m = micros_of(&m);
            return Ok((0..m.len())
                .map(|i| if m.is_null(i) { None } else { DateTime::from_timestamp_micros(m.value(i)).map(|t| zone.local(t)) })
                .collect());
        }
        _ => arrow::compute::cast(a, &DataType::Timestamp(TimeUnit::Microsecond, None))?,
    };
    let m = micros_of(&micros);
    Ok((0..m.len()).map(|i| if m.is_null(i) { None } else { DateTime::from_timestamp_micros(m.value(i)).map(|t| t.naive_utc()) }).collect())
}

/// The instants (as UTC date-times) of date/time values: a zoned
/// timestamp's own instant, anything else read in the session zone (UTC).
pub(crate) fn instants(a: &ArrayRef) -> Result<Vec<Option<NaiveDateTime>>> {
    let DataType::Timestamp(_, Some(tz)) = a.data_type() else { return datetimes(a) };
    let m = micros_of(&arrow::compute::cast(a, &DataType::Timestamp(TimeUnit::Microsecond, Some(tz.clone())))?);
    Ok((0..m.len()).map(|i| if m.is_null(i) { None } else { DateTime::from_timestamp_micros(m.value(i)).map(|t| t.naive_utc()) }).collect())
}

/// Units that count elapsed time (Joda's precise fields): on a zoned
/// timestamp they add to and measure the instant, where the calendar units
/// (day and up) work on the zone's wall clock.
fn is_elapsed_unit(unit: &str) -> bool {
    matches!(unit, "millisecond" | "second" | "minute" | "hour")
}

fn micros_of(a: &ArrayRef) -> TimestampMicrosecondArray {
    a.as_any().downcast_ref::<TimestampMicrosecondArray>().cloned().unwrap_or_else(|| TimestampMicrosecondArray::from(vec![None; a.len()]))
}

fn parse_loose(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t);
        }
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.naive_utc());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0))
}

fn ts_array(values: impl Iterator<Item = Option<NaiveDateTime>>, tz: Option<&str>) -> ArrayRef {
    let mut b = TimestampMillisecondBuilder::new();
    for v in values {
        b.append_option(v.map(|t| t.and_utc().timestamp_millis()));
    }
    match tz {
        Some(z) => Arc::new(b.finish().with_timezone(z)),
        None => Arc::new(b.finish()),
    }
}

/// MySQL `date_format` specifiers → strftime.
fn mysql_to_strftime(fmt: &str) -> Result<String> {
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            if c == '%' {
                out.push_str("%%");
            } else {
                out.push(c);
            }
            continue;
        }
        let Some(spec) = chars.next() else { return exec_err!("date format ends with a lone %: {fmt:?}") };
        out.push_str(match spec {
            'a' => "%a",
            'b' => "%b",
            'c' => "%-m",
            'd' => "%d",
            'e' => "%-d",
            'f' => "%6f",
            'H' => "%H",
            'h' | 'I' => "%I",
            'i' => "%M",
            'j' => "%j",
            'k' => "%-H",
            'l' => "%-I",
            'M' => "%B",
            'm' => "%m",
            'p' => "%p",
            'r' => "%I:%M:%S %p",
            'S' | 's' => "%S",
            'T' => "%H:%M:%S",
            'v' => "%V",
            'W' => "%A",
            'x' => "%G",
            'Y' => "%Y",
            'y' => "%y",
            '%' => "%%",
            'D' => "\u{1}D",
            other => return exec_err!("date format specifier %{other} is not supported"),
        });
    }
    Ok(out)
}

fn ordinal(day: u32) -> String {
    let suffix = match (day % 10, day % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{day}{suffix}")
}

fn format_with(t: &NaiveDateTime, strftime: &str) -> String {
    let s = t.format(strftime).to_string();
    if s.contains('\u{1}') { s.replace("\u{1}D", &ordinal(t.day())) } else { s }
}

fn date_format(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    format_rows(args, mysql_to_strftime)
}

/// Each row's date/time formatted with its pattern, which `to_strftime`
/// translates (once per distinct pattern).
pub(crate) fn format_rows(args: &[ArrayRef], to_strftime: fn(&str) -> Result<String>) -> Result<ArrayRef> {
    let ts = datetimes(&args[0])?;
    let fmts = strings(&args[1])?;
    let mut b = StringBuilder::new();
    let mut cached: Option<(String, String)> = None;
    for (i, t) in ts.iter().enumerate() {
        match (t, fmts.is_null(i)) {
            (Some(t), false) => {
                let f = fmts.value(i);
                if cached.as_ref().is_none_or(|(k, _)| k != f) {
                    cached = Some((f.to_owned(), to_strftime(f)?));
                }
                b.append_value(format_with(t, cached.as_ref().map(|c| c.1.as_str()).unwrap_or_default()));
            }
            _ => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

fn date_parse(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let s = strings(&args[0])?;
    let fmts = strings(&args[1])?;
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        if s.is_null(i) || fmts.is_null(i) {
            out.push(None);
            continue;
        }
        let f = mysql_to_strftime(fmts.value(i))?.replace("%6f", "%f").replace("%-", "%");
        let text = s.value(i);
        match parse_partial(text, &f) {
            Some(t) => out.push(Some(t)),
            None => return exec_err!("Invalid format: \"{text}\" does not match {:?}", fmts.value(i)),
        }
    }
    Ok(ts_array(out.into_iter(), None))
}

/// Parses with missing fields defaulted (time 00:00:00, day 1, January), as
/// MySQL-style `date_parse` does.
fn parse_partial(text: &str, fmt: &str) -> Option<NaiveDateTime> {
    let mut p = chrono::format::Parsed::new();
    chrono::format::parse(&mut p, text, chrono::format::StrftimeItems::new(fmt)).ok()?;
    if p.hour_div_12().is_none() {
        p.set_hour(0).ok()?;
    }
    if p.minute().is_none() {
        p.set_minute(0).ok()?;
    }
    if p.second().is_none() {
        p.set_second(0).ok()?;
    }
    if p.month().is_none() && p.ordinal().is_none() && p.isoweek().is_none() {
        p.set_month(1).ok()?;
    }
    if p.day().is_none() && p.ordinal().is_none() && p.weekday().is_none() {
        p.set_day(1).ok()?;
    }
    p.to_naive_datetime_with_offset(0).ok()
}

fn from_unixtime(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let secs = arrow::compute::cast(&args[0], &DataType::Float64)?;
    let secs = secs.as_any().downcast_ref::<Float64Array>().cloned().unwrap_or_else(|| Float64Array::from(vec![None; args[0].len()]));
    let vals = (0..secs.len()).map(|i| {
        if secs.is_null(i) { None } else { DateTime::from_timestamp_millis((secs.value(i) * 1000.0).round() as i64).map(|t| t.naive_utc()) }
    });
    Ok(ts_array(vals, Some("UTC")))
}

fn to_unixtime(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let mut b = Float64Builder::new();
    for t in instants(&args[0])? {
        b.append_option(t.map(|t| t.and_utc().timestamp_millis() as f64 / 1000.0));
    }
    Ok(Arc::new(b.finish()))
}

fn from_iso8601_timestamp(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let s = strings(&args[0])?;
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        if s.is_null(i) {
            out.push(None);
            continue;
        }
        let text = s.value(i);
        match DateTime::parse_from_rfc3339(text).map(|t| t.naive_utc()).ok().or_else(|| parse_loose(text)) {
            Some(t) => out.push(Some(t)),
            None => return exec_err!("Invalid format: \"{text}\" is not an ISO 8601 timestamp"),
        }
    }
    Ok(ts_array(out.into_iter(), Some("UTC")))
}

fn from_iso8601_date(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let s = strings(&args[0])?;
    let mut b = Date32Builder::new();
    for i in 0..s.len() {
        if s.is_null(i) {
            b.append_null();
            continue;
        }
        match NaiveDate::parse_from_str(s.value(i).trim(), "%Y-%m-%d") {
            Ok(d) => b.append_value((d - EPOCH).num_days() as i32),
            Err(_) => return exec_err!("Invalid format: \"{}\" is not an ISO 8601 date", s.value(i)),
        }
    }
    Ok(Arc::new(b.finish()))
}

/// ISO 8601 text: dates as `2026-11-02`, zone-less timestamps without an
/// offset, zoned ones with theirs (`Z` for UTC).
fn to_iso8601(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    let mut b = StringBuilder::new();
    let zone = match &types[0] {
        DataType::Timestamp(_, Some(z)) => Some(z.to_string()),
        _ => None,
    };
    let is_date = matches!(types[0], DataType::Date32 | DataType::Date64);
    for t in datetimes(&args[0])? {
        let Some(t) = t else {
            b.append_null();
            continue;
        };
        if is_date {
            b.append_value(t.format("%Y-%m-%d").to_string());
        } else {
            match zone.as_deref() {
                None => b.append_value(t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()),
                Some("UTC") | Some("+00:00") => b.append_value(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
                Some(z) => match z.parse::<chrono_tz::Tz>() {
                    // `t` is the zone's wall clock; name its offset.
                    Ok(tz) => match t.and_local_timezone(tz).earliest() {
                        Some(local) => b.append_value(local.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()),
                        None => b.append_null(),
                    },
                    Err(_) => b.append_value(format!("{}{z}", t.format("%Y-%m-%dT%H:%M:%S%.3f"))),
                },
            }
        }
    }
    Ok(Arc::new(b.finish()))
}

fn unit_arg(a: &ArrayRef) -> Result<String> {
    let s = strings(a)?;
    if s.is_empty() || s.is_null(0) {
        return exec_err!("the unit must be a string literal like 'day'");
    }
    Ok(s.value(0).to_ascii_lowercase())
}

fn add_unit(t: NaiveDateTime, unit: &str, n: i64) -> Result<Option<NaiveDateTime>> {
    Ok(match unit {
        "millisecond" => t.checked_add_signed(Duration::milliseconds(n)),
        "second" => t.checked_add_signed(Duration::seconds(n)),
        "minute" => t.checked_add_signed(Duration::minutes(n)),
        "hour" => t.checked_add_signed(Duration::hours(n)),
        "day" => t.checked_add_signed(Duration::days(n)),
        "week" => t.checked_add_signed(Duration::weeks(n)),
        "month" | "quarter" | "year" => {
            let months = n * match unit {
                "month" => 1,
                "quarter" => 3,
                _ => 12,
            };
            if months >= 0 { t.checked_add_months(Months::new(months as u32)) } else { t.checked_sub_months(Months::new((-months) as u32)) }
        }
        other => return exec_err!("'{other}' is not a valid time unit"),
    })
}

fn date_add(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    let unit = unit_arg(&args[0])?;
    let n = arrow::compute::cast(&args[1], &DataType::Int64)?;
    let n = n.as_any().downcast_ref::<Int64Array>().cloned().unwrap_or_else(|| Int64Array::from(vec![None; args[1].len()]));
    let elapsed = matches!(types[2], DataType::Timestamp(_, Some(_))) && is_elapsed_unit(&unit);
    let ts = if elapsed { instants(&args[2])? } else { datetimes(&args[2])? };
    let mut out = Vec::with_capacity(ts.len());
    for (i, t) in ts.into_iter().enumerate() {
        out.push(match t {
            Some(t) if n.is_valid(i) => add_unit(t, &unit, n.value(i))?,
            _ => None,
        });
    }
    match &types[2] {
        // Instants already: keep them, in the argument's zone and unit.
        DataType::Timestamp(unit, Some(tz)) if elapsed => {
            zoned_instants(out.into_iter().map(|t| t.map(|t| t.and_utc().timestamp_micros())), *unit, tz)
        }
        other => date_like(out, other),
    }
}

/// UTC instants (microseconds) as a timestamp array in zone `tz` and `unit`.
fn zoned_instants(utc: impl Iterator<Item = Option<i64>>, unit: TimeUnit, tz: &Arc<str>) -> Result<ArrayRef> {
    let utc: TimestampMicrosecondArray = utc.collect();
    Ok(arrow::compute::cast(&(Arc::new(utc.with_timezone(Arc::clone(tz))) as ArrayRef), &DataType::Timestamp(unit, Some(Arc::clone(tz))))?)
}

/// Returns values in the type of the date/time argument (for a zoned
/// timestamp, `values` are wall-clock times in its zone).
fn date_like(values: Vec<Option<NaiveDateTime>>, ty: &DataType) -> Result<ArrayRef> {
    match ty {
        DataType::Date32 | DataType::Date64 => {
            Ok(Arc::new(Date32Array::from(values.into_iter().map(|v| v.map(|t| (t.date() - EPOCH).num_days() as i32)).collect::<Vec<_>>())))
        }
        DataType::Timestamp(unit, Some(tz)) => {
            let zone = super::types::zone(tz)?;
            zoned_instants(values.into_iter().map(|t| t.and_then(|t| zone.instant(t)).map(|t| t.timestamp_micros())), *unit, tz)
        }
        DataType::Timestamp(unit, None) => {
            Ok(arrow::compute::cast(&ts_array(values.into_iter(), None), &DataType::Timestamp(*unit, None))?)
        }
        _ => Ok(ts_array(values.into_iter(), None)),
    }
}

/// Days in a month of the proleptic Gregorian calendar.
fn days_in_month(year: i32, month: u32) -> u32 {
    let first = NaiveDate::from_ymd_opt(year, month, 1);
    let next = first.and_then(|f| f.checked_add_months(Months::new(1)));
    match (first, next) {
        (Some(f), Some(n)) => (n - f).num_days() as u32,
        _ => 31,
    }
}

/// Whole months from `a` to `b`, as Joda (and so Trino) counts them: a month
/// is complete when the day and time of month are reached, and the last day
/// of a shorter month completes it (`2026-01-31` to `2026-02-28` is 1).
fn months_between(a: NaiveDateTime, b: NaiveDateTime) -> i64 {
    if b < a {
        return -months_between(b, a);
    }
    let mut m = (b.year() as i64 - a.year() as i64) * 12 + (b.month() as i64 - a.month() as i64);
    let last = days_in_month(b.year(), b.month());
    let a_day = if b.day() == last { a.day().min(last) } else { a.day() };
    if (b.day(), b.time()) < (a_day, a.time()) {
        m -= 1;
    }
    m
}

/// Whole years from `a` to `b`, as Joda counts them: February 29th and the
/// days after it are balanced between leap and common years.
fn years_between(a: NaiveDateTime, b: NaiveDateTime) -> i64 {
    if b < a {
        return -years_between(b, a);
    }
    const DAY: i64 = 86_400_000_000_000;
    const FEB_29: i64 = 59 * DAY;
    let into_year = |t: NaiveDateTime| {
        let start = NaiveDate::from_ymd_opt(t.year(), 1, 1).unwrap_or_default().and_hms_opt(0, 0, 0).unwrap_or_default();
        (t - start).num_nanoseconds().unwrap_or(0)
    };
    let leap = |y: i32| NaiveDate::from_ymd_opt(y, 2, 29).is_some();
    let (mut b_rem, mut a_rem) = (into_year(b), into_year(a));
    if a_rem >= FEB_29 {
        if leap(a.year()) {
            if !leap(b.year()) {
                a_rem -= DAY;
            }
        } else if b_rem >= FEB_29 && leap(b.year()) {
            b_rem -= DAY;
        }
    }
    let y = b.year() as i64 - a.year() as i64;
    if b_rem < a_rem { y - 1 } else { y }
}

fn date_diff(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    let unit = unit_arg(&args[0])?;
    let zoned = |t: &DataType| matches!(t, DataType::Timestamp(_, Some(_)));
    let elapsed = (zoned(&types[1]) || zoned(&types[2])) && is_elapsed_unit(&unit);
    let (a, b) = if elapsed { (instants(&args[1])?, instants(&args[2])?) } else { (datetimes(&args[1])?, datetimes(&args[2])?) };
    let mut out = Int64Builder::new();
    for (x, y) in a.into_iter().zip(b) {
        let (Some(x), Some(y)) = (x, y) else {
            out.append_null();
            continue;
        };
        let d = y - x;
        out.append_value(match unit.as_str() {
            "millisecond" => d.num_milliseconds(),
            "second" => d.num_seconds(),
            "minute" => d.num_minutes(),
            "hour" => d.num_hours(),
            "day" => d.num_days(),
            "week" => d.num_weeks(),
            "month" => months_between(x, y),
            "quarter" => months_between(x, y) / 3,
            "year" => years_between(x, y),
            other => return exec_err!("'{other}' is not a valid time unit"),
        });
    }
    Ok(Arc::new(out.finish()))
}

macro_rules! part {
    ($name:ident, $t:ident => $e:expr) => {
        fn $name(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
            let mut b = Int64Builder::new();
            for v in datetimes(&args[0])? {
                b.append_option(v.map(|$t| $e as i64));
            }
            Ok(Arc::new(b.finish()))
        }
    };
}

part!(year, t => t.year());
part!(quarter, t => (t.month() - 1) / 3 + 1);
part!(month, t => t.month());
part!(day, t => t.day());
part!(hour, t => t.hour());
part!(minute, t => t.minute());
part!(second, t => t.second());
part!(millisecond, t => t.and_utc().timestamp_subsec_millis());
part!(day_of_week, t => t.weekday().number_from_monday());
part!(day_of_year, t => t.ordinal());
part!(week, t => t.iso_week().week());
part!(year_of_week, t => t.iso_week().year());

fn last_day_of_month(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let mut b = Date32Builder::new();
    for v in datetimes(&args[0])? {
        b.append_option(v.and_then(|t| {
            let first = t.date().with_day(1)?;
            let last = first.checked_add_months(Months::new(1))?.pred_opt()?;
            Some((last - EPOCH).num_days() as i32)
        }));
    }
    Ok(Arc::new(b.finish()))
}

fn date(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let mut b = Date32Builder::new();
    for v in datetimes(&args[0])? {
        b.append_option(v.map(|t| (t.date() - EPOCH).num_days() as i32));
    }
    Ok(Arc::new(b.finish()))
}

/// `ts AT TIME ZONE zone`: the same instant, shown in `zone`.
fn at_timezone(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    let zone = strings(&args[1])?;
    if zone.is_empty() || zone.is_null(0) {
        return exec_err!("the time zone must be a string literal");
    }
    let z = zone.value(0);
    if z.parse::<chrono_tz::Tz>().is_err() && !z.starts_with('+') && !z.starts_with('-') && z != "UTC" {
        return exec_err!("'{z}' is not a valid time zone");
    }
    // Instants: zone-less values are UTC wall clock; zoned values keep their instant.
    let utc = match &types[0] {
        DataType::Timestamp(_, Some(_)) => arrow::compute::cast(&args[0], &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())))?,
        _ => {
            let naive = arrow::compute::cast(&args[0], &DataType::Timestamp(TimeUnit::Millisecond, None))?;
            arrow::compute::cast(&naive, &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())))?
        }
    };
    let data = utc.to_data().into_builder().data_type(DataType::Timestamp(TimeUnit::Millisecond, Some(z.into()))).build()?;
    Ok(arrow::array::make_array(data))
}

/// Trino's `date_trunc(unit, x)`: the type of `x` in, the same type out
/// (a DATE stays a DATE); a zoned timestamp is truncated on its zone's wall
/// clock and keeps its zone.
fn date_trunc(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    let units = strings(&args[0])?;
    let values = datetimes(&args[1])?;
    let trunc = |unit: &str, t: NaiveDateTime| -> Result<NaiveDateTime> {
        let d = t.date();
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight");
        Ok(match unit.to_ascii_lowercase().as_str() {
            "millisecond" => t.with_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(t),
            "second" => t.with_nanosecond(0).unwrap_or(t),
            "minute" => t.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(t),
            "hour" => t.with_minute(0).and_then(|t| t.with_second(0)).and_then(|t| t.with_nanosecond(0)).unwrap_or(t),
            "day" => midnight(d),
            "week" => midnight(d - Duration::days(d.weekday().num_days_from_monday() as i64)),
            "month" => midnight(d.with_day(1).expect("day 1")),
            "quarter" => midnight(NaiveDate::from_ymd_opt(d.year(), (d.month0() / 3) * 3 + 1, 1).expect("quarter start")),
            "year" => midnight(NaiveDate::from_ymd_opt(d.year(), 1, 1).expect("new year")),
            other => return exec_err!("'{other}' is not a valid TIMESTAMP field"),
        })
    };
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.into_iter().enumerate() {
        let unit = if units.len() == 1 { 0 } else { i };
        out.push(match v {
            Some(t) if !units.is_null(unit) => Some(trunc(units.value(unit), t)?),
            _ => None,
        });
    }
    match &types[1] {
        DataType::Date32 | DataType::Date64 => {
            if let Some((_, u)) = units
                .iter()
                .flatten()
                .map(|u| (u, u.to_ascii_lowercase()))
                .find(|(_, u)| !matches!(u.as_str(), "day" | "week" | "month" | "quarter" | "year"))
            {
                return exec_err!("'{u}' is not a valid DATE field");
            }
            let days: Date32Array = out.into_iter().map(|t| t.map(|t| (t.date() - EPOCH).num_days() as i32)).collect();
            Ok(arrow::compute::cast(&(Arc::new(days) as ArrayRef), &types[1])?)
        }
        DataType::Timestamp(_, Some(_)) => date_like(out, &types[1]),
        other => {
            let naive: TimestampMicrosecondArray = out.into_iter().map(|t| t.map(|t| t.and_utc().timestamp_micros())).collect();
            let target = match other {
                DataType::Timestamp(..) => other.clone(),
                _ => crate::types::sql_timestamp(),
            };
            Ok(arrow::compute::cast(&(Arc::new(naive) as ArrayRef), &target)?)
        }
    }
}

fn ret_date_trunc(t: &[DataType]) -> Result<DataType> {
    Ok(match t.get(1) {
        Some(d @ (DataType::Date32 | DataType::Date64 | DataType::Timestamp(..))) => d.clone(),
        _ => crate::types::sql_timestamp(),
    })
}

fn ret_ts_utc(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())))
}

/// `CAST(x AS TIMESTAMP WITH TIME ZONE)`, `now()`: a zoned timestamp keeps
/// its zone; anything else is read in the session zone (UTC), as
/// timestamp(3) with time zone.
fn ret_session_zoned(t: &[DataType]) -> Result<DataType> {
    Ok(match t.first() {
        Some(DataType::Timestamp(unit, Some(tz))) => DataType::Timestamp(*unit, Some(tz.clone())),
        _ => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
    })
}

fn zoned(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    if let Some(DataType::Timestamp(_, Some(_))) = types.first() {
        return Ok(Arc::clone(&args[0]));
    }
    let naive = match args[0].data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ts_array(datetimes(&args[0])?.into_iter(), None),
        _ => arrow::compute::cast(&args[0], &DataType::Timestamp(TimeUnit::Millisecond, None))?,
    };
    Ok(arrow::compute::cast(&naive, &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())))?)
}

fn ret_third(t: &[DataType]) -> Result<DataType> {
    Ok(match t.get(2) {
        Some(DataType::Date32 | DataType::Date64) => DataType::Date32,
        // Trino: the argument's type, precision and zone.
        Some(DataType::Timestamp(unit, tz)) => DataType::Timestamp(*unit, tz.clone()),
        _ => crate::types::sql_timestamp(),
    })
}

fn ret_zoned(_: &[DataType], values: &[Option<&datafusion::common::ScalarValue>]) -> Result<DataType> {
    let zone = values.get(1).and_then(|v| {
        v.and_then(|v| match v {
            datafusion::common::ScalarValue::Utf8(Some(s))
            | datafusion::common::ScalarValue::Utf8View(Some(s))
            | datafusion::common::ScalarValue::LargeUtf8(Some(s)) => Some(s.clone()),
            _ => None,
        })
    });
    match zone {
        Some(z) => Ok(DataType::Timestamp(TimeUnit::Millisecond, Some(z.into()))),
        None => exec_err!("AT TIME ZONE needs a constant zone name"),
    }
}

pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        udf("date_format", &[], any(2), ret_utf8, date_format),
        udf("date_trunc", &[], any(2), ret_date_trunc, date_trunc),
        udf("date_parse", &[], any(2), ret_ts, date_parse),
        udf("from_unixtime", &[], any(1), ret_ts_utc, from_unixtime),
        udf("to_unixtime", &[], any(1), ret_f64, to_unixtime),
        udf("__zoned", &[], any(1), ret_session_zoned, zoned),
        udf("from_iso8601_timestamp", &[], any(1), ret_ts_utc, from_iso8601_timestamp),
        udf("from_iso8601_date", &[], any(1), ret_date, from_iso8601_date),
        udf("to_iso8601", &[], any(1), ret_utf8, to_iso8601),
        udf("date_add", &[], any(3), ret_third, date_add),
        udf("date_diff", &[], any(3), ret_i64, date_diff),
        udf("year", &[], any(1), ret_i64, year),
        udf("quarter", &[], any(1), ret_i64, quarter),
        udf("month", &[], any(1), ret_i64, month),
        udf("day", &["day_of_month"], any(1), ret_i64, day),
        udf("hour", &[], any(1), ret_i64, hour),
        udf("minute", &[], any(1), ret_i64, minute),
        udf("second", &[], any(1), ret_i64, second),
        udf("millisecond", &[], any(1), ret_i64, millisecond),
        udf("day_of_week", &["dow"], any(1), ret_i64, day_of_week),
        udf("day_of_year", &["doy"], any(1), ret_i64, day_of_year),
        udf("week", &["week_of_year"], any(1), ret_i64, week),
        udf("year_of_week", &["yow"], any(1), ret_i64, year_of_week),
        udf("last_day_of_month", &[], any(1), ret_date, last_day_of_month),
        udf("date", &[], any(1), ret_date, date),
        super::udf::udf_valued("__at_timezone", any(2), ret_zoned, at_timezone),
    ]
}
