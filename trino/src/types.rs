//! Trino type names and Trino's text form of values.

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// Timestamps as analysts see them: Trino `timestamp(3)`, zone-less UTC.
pub fn sql_timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

/// The Trino name of an Arrow type, as Athena reports it in `ColumnInfo.Type`.
pub fn trino_type(t: &DataType) -> String {
    match t {
        DataType::Null => "unknown".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => format!("decimal({p},{s})"),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "varchar".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => "varbinary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(unit, tz) => {
            let p = precision(unit);
            match tz {
                Some(_) => format!("timestamp({p}) with time zone"),
                None => format!("timestamp({p})"),
            }
        }
        DataType::Time32(u) => format!("time({})", precision(u)),
        DataType::Time64(u) => format!("time({})", precision(u)),
        DataType::Interval(_) | DataType::Duration(_) => "interval day to second".into(),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) | DataType::FixedSizeList(f, _) => {
            format!("array({})", trino_type(f.data_type()))
        }
        DataType::Map(f, _) => match f.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!("map({}, {})", trino_type(kv[0].data_type()), trino_type(kv[1].data_type()))
            }
            _ => "map(unknown, unknown)".into(),
        },
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields.iter().map(|f| format!("{} {}", f.name(), trino_type(f.data_type()))).collect();
            format!("row({})", inner.join(", "))
        }
        DataType::Dictionary(_, v) => trino_type(v),
        other => other.to_string().to_lowercase(),
    }
}

fn precision(unit: &TimeUnit) -> u8 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

/// A time zone of an Arrow timestamp type: a region (`America/New_York`) or
/// a fixed offset (`+05:30`, `UTC`).
#[derive(Debug, Clone, Copy)]
pub enum Zone {
    Region(chrono_tz::Tz),
    Fixed(chrono::FixedOffset),
}

impl Zone {
    /// The wall clock in this zone at a UTC instant.
    pub fn local(&self, t: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDateTime {
        match self {
            Zone::Region(z) => t.with_timezone(z).naive_local(),
            Zone::Fixed(o) => t.with_timezone(o).naive_local(),
        }
    }

    /// The instant a wall-clock time in this zone denotes (the earlier one
    /// in a repeated hour, the hour's end in a skipped one).
    pub fn instant(&self, t: chrono::NaiveDateTime) -> Option<chrono::DateTime<chrono::Utc>> {
        use chrono::TimeZone;
        match self {
            Zone::Region(z) => z
                .from_local_datetime(&t)
                .earliest()
                .or_else(|| z.from_local_datetime(&(t + chrono::Duration::hours(1))).earliest())
                .map(|t| t.with_timezone(&chrono::Utc)),
            Zone::Fixed(o) => o.from_local_datetime(&t).single().map(|t| t.with_timezone(&chrono::Utc)),
        }
    }
}

/// Parses an Arrow timestamp's zone.
pub fn zone(tz: &str) -> datafusion::common::Result<Zone> {
    if let Ok(z) = tz.parse::<chrono_tz::Tz>() {
        return Ok(Zone::Region(z));
    }
    let t = tz.trim();
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return datafusion::common::exec_err!("unknown time zone {tz:?}"),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    match (h.parse::<i32>(), m.parse::<i32>()) {
        (Ok(h), Ok(m)) if h <= 14 && m < 60 => chrono::FixedOffset::east_opt(sign * (h * 3600 + m * 60))
            .map(Zone::Fixed)
            .ok_or_else(|| datafusion::common::DataFusionError::Execution(format!("unknown time zone {tz:?}"))),
        _ => datafusion::common::exec_err!("unknown time zone {tz:?}"),
    }
}

/// A column as Athena's `ColumnInfo` describes it: the type's bare name
/// (`timestamp`, `decimal`, `array`, as clients such as PyAthena key their
/// converters on it) with its parameters in `Precision` and `Scale`. The
/// full Trino name (`timestamp(3)`, `decimal(10,2)`) is [`trino_type`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AthenaColumn {
    pub type_name: &'static str,
    pub precision: i32,
    pub scale: i32,
    pub case_sensitive: bool,
}

/// Athena's `ColumnInfo` for an Arrow type.
pub fn athena_column(t: &DataType) -> AthenaColumn {
    let c = |type_name, precision, scale| AthenaColumn { type_name, precision, scale, case_sensitive: false };
    match t {
        DataType::Null => c("unknown", 0, 0),
        DataType::Boolean => c("boolean", 0, 0),
        DataType::Int8 => c("tinyint", 3, 0),
        DataType::Int16 | DataType::UInt8 => c("smallint", 5, 0),
        DataType::Int32 | DataType::UInt16 => c("integer", 10, 0),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => c("bigint", 19, 0),
        DataType::Float16 | DataType::Float32 => c("real", 17, 0),
        DataType::Float64 => c("double", 17, 0),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            c("decimal", *p as i32, *s as i32)
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            AthenaColumn { type_name: "varchar", precision: 2147483647, scale: 0, case_sensitive: true }
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => c("varbinary", 1073741824, 0),
        DataType::Date32 | DataType::Date64 => c("date", 0, 0),
        DataType::Timestamp(unit, None) => c("timestamp", precision(unit) as i32, 0),
        DataType::Timestamp(unit, Some(_)) => c("timestamp with time zone", precision(unit) as i32, 0),
        DataType::Time32(u) => c("time", precision(u) as i32, 0),
        DataType::Time64(u) => c("time", precision(u) as i32, 0),
        DataType::Interval(_) | DataType::Duration(_) => c("interval day to second", 0, 0),
        DataType::List(_) | DataType::LargeList(_) | DataType::ListView(_) | DataType::FixedSizeList(_, _) => c("array", 0, 0),
        DataType::Map(_, _) => c("map", 0, 0),
        DataType::Struct(_) => c("row", 0, 0),
        DataType::Dictionary(_, v) => athena_column(v),
        _ => c("unknown", 0, 0),
    }
}

/// Renders one column in Trino's text form (timestamps `2026-11-02 13:05:09.123`,
/// zoned ones with their zone, arrays `[a, b]`, maps `{k=v}`); `None` for NULL.
pub fn render_column(a: &ArrayRef) -> Vec<Option<String>> {
    let n = a.len();
    match a.data_type() {
        DataType::Timestamp(unit, tz) => {
            let p = precision(unit) as usize;
            // Nanoseconds since the epoch (i64 spans 1677–2262); coarser
            // units through microseconds, which span any date.
            let nanos = *unit == TimeUnit::Nanosecond;
            let target = DataType::Timestamp(if nanos { TimeUnit::Nanosecond } else { TimeUnit::Microsecond }, tz.clone());
            let instants = arrow::compute::cast(a, &target)
                .and_then(|t| arrow::compute::cast(&t, &DataType::Int64))
                .ok()
                .and_then(|i| i.as_any().downcast_ref::<arrow::array::Int64Array>().cloned());
            let Some(m) = instants else { return vec![None; n] };
            let zone: Option<Zone> = tz.as_deref().and_then(|z| zone(z).ok());
            (0..n)
                .map(|i| {
                    if m.is_null(i) {
                        return None;
                    }
                    let t = if nanos {
                        chrono::DateTime::from_timestamp_nanos(m.value(i))
                    } else {
                        chrono::DateTime::from_timestamp_micros(m.value(i))?
                    };
                    let (wall, suffix) = match (&zone, tz.as_deref()) {
                        (Some(z), Some(name)) => (z.local(t), format!(" {name}")),
                        (None, Some(name)) => (t.naive_utc(), format!(" {name}")),
                        _ => (t.naive_utc(), String::new()),
                    };
                    let base = wall.format("%Y-%m-%d %H:%M:%S").to_string();
                    let frac = if p == 0 { String::new() } else { format!(".{:0width$}", fraction(&wall, p), width = p) };
                    Some(format!("{base}{frac}{suffix}"))
                })
                .collect()
        }
        DataType::Float32 => {
            use arrow::array::AsArray;
            let f = a.as_primitive::<arrow::datatypes::Float32Type>();
            (0..n).map(|i| f.is_valid(i).then(|| trino_real(f.value(i)))).collect()
        }
        DataType::Float64 => {
            let f = arrow::compute::cast(a, &DataType::Float64).ok();
            let f = f.as_ref().and_then(|f| f.as_any().downcast_ref::<arrow::array::Float64Array>());
            (0..n).map(|i| f.filter(|f| f.is_valid(i)).map(|f| trino_double(f.value(i)))).collect()
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::Map(_, _) | DataType::Struct(_) => {
            (0..n).map(|i| if a.is_null(i) { None } else { Some(render_nested(a, i)) }).collect()
        }
        DataType::Interval(_) | DataType::Duration(_) => render_intervals(a),
        _ => {
            let opts = FormatOptions::default().with_null("");
            match ArrayFormatter::try_new(a.as_ref(), &opts) {
                Ok(fmt) => {
                    // Logical nulls: a NullArray (`SELECT NULL`) has no null buffer.
                    let nulls = a.logical_nulls();
                    (0..n)
                        .map(|i| if nulls.as_ref().is_some_and(|b| b.is_null(i)) { None } else { Some(fmt.value(i).to_string()) })
                        .collect()
                }
                Err(_) => vec![None; n],
            }
        }
    }
}

/// Intervals as Trino prints them: year-to-month `3-5`, day-to-second
/// `2 03:00:00.000` (milliseconds, rounded half up). DataFusion's interval
/// literals carry months, days and nanoseconds; one with months only is a
/// year-to-month interval, as Trino's `INTERVAL '5' MONTH` is.
fn render_intervals(a: &ArrayRef) -> Vec<Option<String>> {
    use arrow::array::AsArray;
    use arrow::datatypes::{DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType, IntervalUnit};
    use arrow::datatypes::{IntervalDayTimeType, IntervalMonthDayNanoType, IntervalYearMonthType};
    let n = a.len();
    let day_second = |ms: i128| Some(day_to_second(ms));
    let nanos_to_ms = |ns: i128| if ns >= 0 { (ns + 500_000) / 1_000_000 } else { -((-ns + 500_000) / 1_000_000) };
    let each = |f: &dyn Fn(usize) -> Option<String>| (0..n).map(|i| if a.is_null(i) { None } else { f(i) }).collect();
    match a.data_type() {
        DataType::Interval(IntervalUnit::YearMonth) => each(&|i| Some(year_to_month(a.as_primitive::<IntervalYearMonthType>().value(i)))),
        DataType::Interval(IntervalUnit::DayTime) => each(&|i| {
            let v = a.as_primitive::<IntervalDayTimeType>().value(i);
            day_second(i128::from(v.days) * 86_400_000 + i128::from(v.milliseconds))
        }),
        DataType::Interval(IntervalUnit::MonthDayNano) => each(&|i| {
            let v = a.as_primitive::<IntervalMonthDayNanoType>().value(i);
            match (v.months, v.days, v.nanoseconds) {
                (m, 0, 0) if m != 0 => Some(year_to_month(m)),
                (0, d, ns) => day_second(i128::from(d) * 86_400_000 + nanos_to_ms(i128::from(ns))),
                (m, d, ns) => {
                    Some(format!("{} {}", year_to_month(m), day_to_second(i128::from(d) * 86_400_000 + nanos_to_ms(i128::from(ns)))))
                }
            }
        }),
        DataType::Duration(unit) => each(&|i| {
            let ms = match unit {
                TimeUnit::Second => i128::from(a.as_primitive::<DurationSecondType>().value(i)) * 1000,
                TimeUnit::Millisecond => i128::from(a.as_primitive::<DurationMillisecondType>().value(i)),
                TimeUnit::Microsecond => nanos_to_ms(i128::from(a.as_primitive::<DurationMicrosecondType>().value(i)) * 1000),
                TimeUnit::Nanosecond => nanos_to_ms(i128::from(a.as_primitive::<DurationNanosecondType>().value(i))),
            };
            day_second(ms)
        }),
        _ => vec![None; n],
    }
}

fn year_to_month(months: i32) -> String {
    let sign = if months < 0 { "-" } else { "" };
    let m = i64::from(months).abs();
    format!("{sign}{}-{}", m / 12, m % 12)
}

fn day_to_second(ms: i128) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.abs();
    let (days, rest) = (ms / 86_400_000, ms % 86_400_000);
    let (h, m, s, f) = (rest / 3_600_000, rest / 60_000 % 60, rest / 1000 % 60, rest % 1000);
    format!("{sign}{days} {h:02}:{m:02}:{s:02}.{f:03}")
}

fn fraction(t: &chrono::NaiveDateTime, p: usize) -> u32 {
    use chrono::Timelike;
    let nanos = t.nanosecond() % 1_000_000_000;
    nanos / 10u32.pow(9 - p as u32)
}

/// Trino prints doubles like Java: `1.0`, `2.5`, `1.0E10`.
pub fn trino_double(x: f64) -> String {
    java_float(x, format!("{x:E}"), format!("{x}"))
}

/// Trino prints reals like Java's `Float.toString`: the shortest digits
/// that read back as the same `real` (`3.3000002`, not the double's digits).
pub fn trino_real(x: f32) -> String {
    java_float(f64::from(x), format!("{x:E}"), format!("{x}"))
}

/// Java's text of a floating value, from Rust's shortest round-trip forms.
fn java_float(x: f64, scientific: String, plain: String) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let a = x.abs();
    if a != 0.0 && !(1e-3..1e7).contains(&a) {
        let s = scientific;
        // Rust: 1E10 / 1.5E-5; Java: 1.0E10 / 1.5E-5
        return match s.split_once('E') {
            Some((m, e)) if !m.contains('.') => format!("{m}.0E{e}"),
            _ => s,
        };
    }
    let s = plain;
    if s.contains('.') { s } else { format!("{s}.0") }
}

fn render_nested(a: &ArrayRef, i: usize) -> String {
    match a.data_type() {
        DataType::List(_) => {
            let l = a.as_any().downcast_ref::<arrow::array::ListArray>().map(|l| l.value(i));
            render_items(l)
        }
        DataType::LargeList(_) => {
            let l = a.as_any().downcast_ref::<arrow::array::LargeListArray>().map(|l| l.value(i));
            render_items(l)
        }
        DataType::Map(_, _) => {
            let Some(m) = a.as_any().downcast_ref::<arrow::array::MapArray>() else { return String::new() };
            let entries = m.value(i);
            let keys = render_column(entries.column(0));
            let vals = render_column(entries.column(1));
            let parts: Vec<String> = keys
                .into_iter()
                .zip(vals)
                .map(|(k, v)| format!("{}={}", k.unwrap_or_else(|| "null".into()), v.unwrap_or_else(|| "null".into())))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        DataType::Struct(fields) => {
            let Some(s) = a.as_any().downcast_ref::<arrow::array::StructArray>() else { return String::new() };
            let parts: Vec<String> = fields
                .iter()
                .enumerate()
                .map(|(k, f)| {
                    let v = render_column(&s.column(k).slice(i, 1)).pop().flatten();
                    format!("{}={}", f.name(), v.unwrap_or_else(|| "null".into()))
                })
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        _ => String::new(),
    }
}

fn render_items(items: Option<ArrayRef>) -> String {
    let Some(items) = items else { return "[]".into() };
    let parts: Vec<String> = render_column(&items).into_iter().map(|v| v.unwrap_or_else(|| "null".into())).collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn names_and_text() {
        assert_eq!(trino_type(&DataType::Timestamp(TimeUnit::Millisecond, None)), "timestamp(3)");
        assert_eq!(trino_type(&DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))), "timestamp(3) with time zone");
        assert_eq!(trino_type(&DataType::Decimal128(10, 2)), "decimal(10,2)");
        let ts3 = athena_column(&DataType::Timestamp(TimeUnit::Millisecond, None));
        assert_eq!((ts3.type_name, ts3.precision), ("timestamp", 3));
        let dec = athena_column(&DataType::Decimal128(10, 2));
        assert_eq!((dec.type_name, dec.precision, dec.scale), ("decimal", 10, 2));
        let ts: ArrayRef = Arc::new(arrow::array::TimestampMillisecondArray::from(vec![Some(1_793_624_709_123), None]));
        assert_eq!(render_column(&ts), vec![Some("2026-11-02 13:05:09.123".into()), None]);
        let zoned: ArrayRef =
            Arc::new(arrow::array::TimestampMillisecondArray::from(vec![Some(1_793_624_709_123)]).with_timezone("America/New_York"));
        assert_eq!(render_column(&zoned), vec![Some("2026-11-02 08:05:09.123 America/New_York".into())]);
        assert_eq!(trino_double(1.0), "1.0");
        assert_eq!(trino_double(2.5), "2.5");
        assert_eq!(trino_double(1e10), "1.0E10");
        assert_eq!(trino_real(1.1f32 + 2.2f32), "3.3000002");
        assert_eq!(trino_real(3.4e38), "3.4E38");
        assert_eq!(trino_real(1.5), "1.5");
        assert_eq!(year_to_month(41), "3-5");
        assert_eq!(year_to_month(-31), "-2-7");
        assert_eq!(day_to_second(2 * 86_400_000 + 3 * 3_600_000), "2 03:00:00.000");
        assert_eq!(day_to_second(-(86_400_000 + 21 * 3_600_000)), "-1 21:00:00.000");
    }
}
