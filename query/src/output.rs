//! Result formats: Trino text, JSON, Athena's CSV, Arrow IPC, Parquet, and
//! the CLI's table.

use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array};
use arrow::datatypes::DataType;
use sediment_trino::types::{render_column, trino_type};
use serde_json::{Value, json};

use crate::service::QueryOutput;

/// Every cell as Trino text (`None` = NULL), row-major.
pub fn text_rows(out: &QueryOutput) -> Vec<Vec<Option<String>>> {
    text_rows_range(out, 0, usize::MAX)
}

/// Rows `start .. start + len` as Trino text: a page renders only itself.
pub fn text_rows_range(out: &QueryOutput, start: usize, len: usize) -> Vec<Vec<Option<String>>> {
    let mut rows = Vec::with_capacity(len.min(out.rows.saturating_sub(start)));
    let (mut skip, mut want) = (start, len);
    for b in &out.batches {
        if want == 0 {
            break;
        }
        if skip >= b.num_rows() {
            skip -= b.num_rows();
            continue;
        }
        let take = (b.num_rows() - skip).min(want);
        let slice = b.slice(skip, take);
        let cols: Vec<Vec<Option<String>>> = slice.columns().iter().map(render_column).collect();
        for i in 0..take {
            rows.push(cols.iter().map(|c| c[i].clone()).collect());
        }
        skip = 0;
        want -= take;
    }
    rows
}

fn json_column(a: &ArrayRef) -> Vec<Value> {
    match a.data_type() {
        DataType::Boolean => {
            let b = a.as_any().downcast_ref::<BooleanArray>();
            (0..a.len()).map(|i| b.filter(|b| b.is_valid(i)).map_or(Value::Null, |b| Value::Bool(b.value(i)))).collect()
        }
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => {
            let c = arrow::compute::cast(a, &DataType::Int64).ok();
            let c = c.as_ref().and_then(|c| c.as_any().downcast_ref::<Int64Array>());
            (0..a.len()).map(|i| c.filter(|c| c.is_valid(i)).map_or(Value::Null, |c| json!(c.value(i)))).collect()
        }
        DataType::Float32 | DataType::Float64 => {
            let c = arrow::compute::cast(a, &DataType::Float64).ok();
            let c = c.as_ref().and_then(|c| c.as_any().downcast_ref::<Float64Array>());
            (0..a.len())
                .map(|i| {
                    c.filter(|c| c.is_valid(i)).and_then(|c| serde_json::Number::from_f64(c.value(i))).map_or(Value::Null, Value::Number)
                })
                .collect()
        }
        _ => render_column(a).into_iter().map(|v| v.map_or(Value::Null, Value::String)).collect(),
    }
}

/// `{"columns": [{"name","type"}], "rows": [[…]], "stats": {…}}`.
pub fn to_json(out: &QueryOutput) -> Value {
    let columns: Vec<Value> = out.schema.fields().iter().map(|f| json!({"name": f.name(), "type": trino_type(f.data_type())})).collect();
    let mut rows: Vec<Value> = Vec::with_capacity(out.rows);
    for b in &out.batches {
        let cols: Vec<Vec<Value>> = b.columns().iter().map(json_column).collect();
        for i in 0..b.num_rows() {
            rows.push(Value::Array(cols.iter().map(|c| c[i].clone()).collect()));
        }
    }
    let mut body = json!({
        "columns": columns,
        "rows": rows,
        "stats": {
            "rows": out.rows,
            "bytes_scanned": out.bytes_scanned,
            "planning_ms": out.planning.as_millis() as u64,
            "execution_ms": out.execution.as_millis() as u64,
            "queued_ms": out.queued.as_millis() as u64,
        }
    });
    if let Some(nv) = &out.stale {
        body["stale"] = json!(true);
        body["not_visible"] = serde_json::to_value(nv.as_ref()).unwrap_or_default();
    }
    body
}

/// Athena's result CSV: a header, every value double-quoted, NULL as an empty unquoted field.
pub fn to_csv(out: &QueryOutput) -> String {
    let mut s = String::new();
    let header: Vec<String> = out.schema.fields().iter().map(|f| quote(f.name())).collect();
    s.push_str(&header.join(","));
    s.push('\n');
    for row in text_rows(out) {
        let cells: Vec<String> = row.iter().map(|v| v.as_deref().map(quote).unwrap_or_default()).collect();
        s.push_str(&cells.join(","));
        s.push('\n');
    }
    s
}

/// Reads back [`to_csv`]'s text: every value quoted, NULL an empty
/// unquoted field. Rows are returned header first.
pub fn parse_csv(bytes: &[u8]) -> Vec<Vec<Option<String>>> {
    let text = String::from_utf8_lossy(bytes);
    let mut rows = Vec::new();
    let mut row: Vec<Option<String>> = Vec::new();
    let mut chars = text.chars().peekable();
    let mut field_started = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut v = String::new();
                while let Some(c) = chars.next() {
                    if c == '"' {
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            v.push('"');
                        } else {
                            break;
                        }
                    } else {
                        v.push(c);
                    }
                }
                row.push(Some(v));
                field_started = true;
            }
            ',' => {
                if !field_started {
                    row.push(None);
                }
                field_started = false;
            }
            '\n' => {
                // A line holds at least one field: an empty one is a NULL.
                if !field_started {
                    row.push(None);
                }
                rows.push(std::mem::take(&mut row));
                field_started = false;
            }
            _ => {}
        }
    }
    if !row.is_empty() {
        rows.push(row);
    }
    rows
}

fn quote(v: &str) -> String {
    format!("\"{}\"", v.replace('"', "\"\""))
}

/// Arrow IPC stream bytes.
pub fn to_arrow_ipc(out: &QueryOutput) -> Result<Vec<u8>, arrow::error::ArrowError> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut buf, &out.schema)?;
        for b in &out.batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    Ok(buf)
}

/// Parquet bytes.
pub fn to_parquet(out: &QueryOutput) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let mut buf = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, out.schema.clone(), None)?;
    for b in &out.batches {
        w.write(b)?;
    }
    w.close()?;
    Ok(buf)
}

/// A boxed text table for terminals (NULL shown as `NULL`).
pub fn to_table(out: &QueryOutput) -> String {
    let names: Vec<String> = out.schema.fields().iter().map(|f| f.name().clone()).collect();
    let rows: Vec<Vec<String>> =
        text_rows(out).into_iter().map(|r| r.into_iter().map(|v| v.unwrap_or_else(|| "NULL".into())).collect()).collect();
    let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
    for r in &rows {
        for (w, v) in widths.iter_mut().zip(r) {
            *w = (*w).max(v.chars().count()).min(80);
        }
    }
    let line = |l: char, m: char, r: char| {
        let parts: Vec<String> = widths.iter().map(|w| "─".repeat(w + 2)).collect();
        format!("{l}{}{r}\n", parts.join(&m.to_string()))
    };
    let cell = |v: &str, w: usize| {
        let shown: String = if v.chars().count() > w { v.chars().take(w.saturating_sub(1)).chain(['…']).collect() } else { v.to_owned() };
        format!(" {shown}{} ", " ".repeat(w - shown.chars().count()))
    };
    let mut s = line('┌', '┬', '┐');
    s.push('│');
    for (n, w) in names.iter().zip(&widths) {
        s.push_str(&cell(n, *w));
        s.push('│');
    }
    s.push('\n');
    s.push_str(&line('├', '┼', '┤'));
    for r in &rows {
        s.push('│');
        for (v, w) in r.iter().zip(&widths) {
            s.push_str(&cell(v, *w));
            s.push('│');
        }
        s.push('\n');
    }
    s.push_str(&line('└', '┴', '┘'));
    s.push_str(&format!("({} row{})\n", out.rows, if out.rows == 1 { "" } else { "s" }));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{RecordBatch, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn athena_csv_quoting() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]));
        let b = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(vec![Some("a \"b\""), None])),
                Arc::new(TimestampMillisecondArray::from(vec![Some(1_793_624_709_123), None])),
            ],
        )
        .unwrap();
        let out = QueryOutput {
            schema,
            batches: vec![b],
            rows: 2,
            bytes_scanned: 0,
            planning: Duration::ZERO,
            execution: Duration::ZERO,
            queued: Duration::ZERO,
            stale: None,
        };
        assert_eq!(to_csv(&out), "\"name\",\"at\"\n\"a \"\"b\"\"\",\"2026-11-02 13:05:09.123\"\n,\n");
        let back = parse_csv(to_csv(&out).as_bytes());
        assert_eq!(back[1..], [vec![Some("a \"b\"".to_owned()), Some("2026-11-02 13:05:09.123".to_owned())], vec![None, None]]);
        assert_eq!(text_rows_range(&out, 1, 5), vec![vec![None, None]]);
        assert_eq!(to_json(&out)["rows"][0][1], "2026-11-02 13:05:09.123");
        assert_eq!(to_json(&out)["columns"][1]["type"], "timestamp(3)");
    }
}
