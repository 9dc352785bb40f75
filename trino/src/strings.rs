//! Trino string and regular-expression functions whose names DataFusion
//! lacks or answers differently: `substr` from the end, `concat` with NULL,
//! `split_part` out of range, `regexp_replace` of every match, `regexp_extract*`,
//! `regexp_split`, `split` with a limit, `format`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, ListBuilder, StringArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::ScalarUDF;
use regex::Regex;

use super::json::strings;
use super::udf::{any, ret_utf8, ret_utf8_list, udf, variadic_any};

fn ints(a: &ArrayRef) -> Result<Int64Array> {
    let c = arrow::compute::cast(a, &DataType::Int64)?;
    Ok(c.as_any().downcast_ref::<Int64Array>().cloned().unwrap_or_else(|| Int64Array::from(vec![None; a.len()])))
}

/// Row `i` of an array that may be a broadcast scalar (length 1).
fn at(len: usize, i: usize) -> usize {
    if len == 1 { 0 } else { i }
}

fn substr(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let s = strings(&args[0])?;
    let start = ints(&args[1])?;
    let len = if args.len() > 2 { Some(ints(&args[2])?) } else { None };
    let mut b = StringBuilder::new();
    for i in 0..s.len() {
        let (si, li) = (at(start.len(), i), len.as_ref().map(|l| at(l.len(), i)));
        if s.is_null(i) || start.is_null(si) || len.as_ref().zip(li).is_some_and(|(l, j)| l.is_null(j)) {
            b.append_null();
            continue;
        }
        let chars: Vec<char> = s.value(i).chars().collect();
        let n = chars.len() as i64;
        let st = start.value(si);
        // Trino: 1-based; negative counts from the end; 0 or beyond the end gives ''.
        let from = if st > 0 {
            st - 1
        } else if st < 0 {
            n + st
        } else {
            n
        };
        if from < 0 || from >= n {
            b.append_value("");
            continue;
        }
        let take = match len.as_ref().zip(li) {
            Some((l, j)) => l.value(j).max(0),
            None => n - from,
        };
        let end = (from + take).min(n);
        b.append_value(chars[from as usize..end as usize].iter().collect::<String>());
    }
    Ok(Arc::new(b.finish()))
}

fn concat(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let cols: Vec<StringArray> = args.iter().map(strings).collect::<Result<_>>()?;
    let n = cols.iter().map(Array::len).max().unwrap_or(0);
    let mut b = StringBuilder::new();
    for i in 0..n {
        let mut out = String::new();
        let mut null = false;
        for c in &cols {
            let j = at(c.len(), i);
            if c.is_null(j) {
                null = true;
                break;
            }
            out.push_str(c.value(j));
        }
        if null { b.append_null() } else { b.append_value(out) }
    }
    Ok(Arc::new(b.finish()))
}

fn split_part(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let (s, d, idx) = (strings(&args[0])?, strings(&args[1])?, ints(&args[2])?);
    let mut b = StringBuilder::new();
    for i in 0..s.len() {
        let (dj, ij) = (at(d.len(), i), at(idx.len(), i));
        if s.is_null(i) || d.is_null(dj) || idx.is_null(ij) {
            b.append_null();
            continue;
        }
        let k = idx.value(ij);
        if k < 1 {
            return exec_err!("Index must be greater than zero");
        }
        let delim = d.value(dj);
        let part = if delim.is_empty() { Some(s.value(i)).filter(|_| k == 1) } else { s.value(i).split(delim).nth(k as usize - 1) };
        b.append_option(part);
    }
    Ok(Arc::new(b.finish()))
}

/// Compiles each distinct pattern once.
struct Patterns(Option<(String, Regex)>);

impl Patterns {
    fn get(&mut self, p: &str) -> Result<&Regex> {
        if self.0.as_ref().is_none_or(|(k, _)| k != p) {
            match Regex::new(p) {
                Ok(r) => self.0 = Some((p.to_owned(), r)),
                Err(e) => return exec_err!("invalid regular expression {p:?}: {e}"),
            }
        }
        Ok(&self.0.as_ref().expect("just set").1)
    }
}

fn regexp_replace(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let (s, p) = (strings(&args[0])?, strings(&args[1])?);
    let r = if args.len() > 2 { Some(strings(&args[2])?) } else { None };
    let mut pats = Patterns(None);
    let mut b = StringBuilder::new();
    for i in 0..s.len() {
        let pj = at(p.len(), i);
        let rj = r.as_ref().map(|r| at(r.len(), i));
        if s.is_null(i) || p.is_null(pj) || r.as_ref().zip(rj).is_some_and(|(r, j)| r.is_null(j)) {
            b.append_null();
            continue;
        }
        let re = pats.get(p.value(pj))?;
        let rep = r.as_ref().zip(rj).map(|(r, j)| r.value(j)).unwrap_or("");
        b.append_value(re.replace_all(s.value(i), rep));
    }
    Ok(Arc::new(b.finish()))
}

fn group_arg(args: &[ArrayRef]) -> Result<Option<Int64Array>> {
    if args.len() > 2 { Ok(Some(ints(&args[2])?)) } else { Ok(None) }
}

fn regexp_extract(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let (s, p, g) = (strings(&args[0])?, strings(&args[1])?, group_arg(args)?);
    let mut pats = Patterns(None);
    let mut b = StringBuilder::new();
    for i in 0..s.len() {
        let pj = at(p.len(), i);
        if s.is_null(i) || p.is_null(pj) {
            b.append_null();
            continue;
        }
        let re = pats.get(p.value(pj))?;
        let group = g.as_ref().map(|g| g.value(at(g.len(), i))).unwrap_or(0) as usize;
        if group >= re.captures_len() {
            return exec_err!("Pattern has {} groups. Cannot access group {group}", re.captures_len() - 1);
        }
        b.append_option(re.captures(s.value(i)).and_then(|c| c.get(group)).map(|m| m.as_str()));
    }
    Ok(Arc::new(b.finish()))
}

fn regexp_extract_all(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let (s, p, g) = (strings(&args[0])?, strings(&args[1])?, group_arg(args)?);
    let mut pats = Patterns(None);
    let mut b = ListBuilder::new(StringBuilder::new());
    for i in 0..s.len() {
        let pj = at(p.len(), i);
        if s.is_null(i) || p.is_null(pj) {
            b.append_null();
            continue;
        }
        let re = pats.get(p.value(pj))?;
        let group = g.as_ref().map(|g| g.value(at(g.len(), i))).unwrap_or(0) as usize;
        if group >= re.captures_len() {
            return exec_err!("Pattern has {} groups. Cannot access group {group}", re.captures_len() - 1);
        }
        for c in re.captures_iter(s.value(i)) {
            b.values().append_option(c.get(group).map(|m| m.as_str()));
        }
        b.append(true);
    }
    Ok(Arc::new(b.finish()))
}

fn regexp_split(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let (s, p) = (strings(&args[0])?, strings(&args[1])?);
    let mut pats = Patterns(None);
    let mut b = ListBuilder::new(StringBuilder::new());
    for i in 0..s.len() {
        let pj = at(p.len(), i);
        if s.is_null(i) || p.is_null(pj) {
            b.append_null();
            continue;
        }
        for part in pats.get(p.value(pj))?.split(s.value(i)) {
            b.values().append_value(part);
        }
        b.append(true);
    }
    Ok(Arc::new(b.finish()))
}

fn split(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let (s, d) = (strings(&args[0])?, strings(&args[1])?);
    let limit = if args.len() > 2 { Some(ints(&args[2])?) } else { None };
    let mut b = ListBuilder::new(StringBuilder::new());
    for i in 0..s.len() {
        let dj = at(d.len(), i);
        if s.is_null(i) || d.is_null(dj) {
            b.append_null();
            continue;
        }
        let text = s.value(i);
        let delim = d.value(dj);
        let max = limit.as_ref().map(|l| l.value(at(l.len(), i))).filter(|l| *l > 0).map(|l| l as usize);
        if delim.is_empty() {
            for c in text.chars() {
                b.values().append_value(c.to_string());
            }
        } else {
            match max {
                Some(m) => text.splitn(m, delim).for_each(|p| b.values().append_value(p)),
                None => text.split(delim).for_each(|p| b.values().append_value(p)),
            }
        }
        b.append(true);
    }
    Ok(Arc::new(b.finish()))
}

/// `format(fmt, args…)`: Java-style `%s`, `%d`, `%.Nf`, `%,d`, `%%`.
fn format(args: &[ArrayRef], types: &[DataType]) -> Result<ArrayRef> {
    let fmt = strings(&args[0])?;
    let cols: Vec<StringArray> = args[1..].iter().map(strings).collect::<Result<_>>()?;
    let n = args.iter().map(|a| a.len()).max().unwrap_or(0);
    let mut b = StringBuilder::new();
    for i in 0..n {
        let f = fmt.value(at(fmt.len(), i));
        let mut out = String::new();
        let mut next = 0usize;
        let mut chars = f.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let mut spec = String::new();
            while let Some(&d) = chars.peek() {
                spec.push(d);
                chars.next();
                if d.is_ascii_alphabetic() || d == '%' {
                    break;
                }
            }
            if spec == "%" {
                out.push('%');
                continue;
            }
            let Some(col) = cols.get(next) else { return exec_err!("format: too few arguments for {f:?}") };
            let j = at(col.len(), i);
            let v = if col.is_null(j) { "null".to_owned() } else { col.value(j).to_owned() };
            next += 1;
            let conv = spec.chars().last().unwrap_or('s');
            let flags = &spec[..spec.len().saturating_sub(1)];
            // Java's `%[flags][width][.precision]conversion`.
            let flag_len = flags.find(|c: char| !"-#+ 0,(".contains(c)).unwrap_or(flags.len());
            let (flag_chars, rest) = flags.split_at(flag_len);
            let width: usize = rest.split('.').next().and_then(|w| w.parse().ok()).unwrap_or(0);
            let body = match conv {
                'd' => {
                    let Ok(x) = v.parse::<i64>() else { return exec_err!("format: %d needs an integer, got {v:?}") };
                    let digits = if flag_chars.contains(',') { group_thousands(x) } else { x.to_string() };
                    if flag_chars.contains('+') && x >= 0 { format!("+{digits}") } else { digits }
                }
                'f' => {
                    let x: f64 = v.parse().unwrap_or(0.0);
                    let prec = flags.split('.').nth(1).and_then(|p| p.parse().ok()).unwrap_or(6);
                    if flag_chars.contains('+') && x >= 0.0 { format!("+{x:.prec$}") } else { format!("{x:.prec$}") }
                }
                _ => v,
            };
            let pad = width.saturating_sub(body.chars().count());
            out.push_str(&if pad == 0 {
                body
            } else if flag_chars.contains('-') {
                format!("{body}{}", " ".repeat(pad))
            } else if flag_chars.contains('0') && matches!(conv, 'd' | 'f') {
                let (sign, digits) = body.split_at(if body.starts_with(['-', '+']) { 1 } else { 0 });
                format!("{sign}{}{digits}", "0".repeat(pad))
            } else {
                format!("{}{body}", " ".repeat(pad))
            });
        }
        let _ = types;
        b.append_value(out);
    }
    Ok(Arc::new(b.finish()))
}

fn group_thousands(x: i64) -> String {
    let digits = x.unsigned_abs().to_string();
    let mut out = String::new();
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0 { format!("-{out}") } else { out }
}

pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        udf("substr", &["substring"], variadic_any(), ret_utf8, substr),
        udf("concat", &[], variadic_any(), ret_utf8, concat),
        udf("split_part", &[], any(3), ret_utf8, split_part),
        udf("regexp_replace", &[], variadic_any(), ret_utf8, regexp_replace),
        udf("regexp_extract", &[], variadic_any(), ret_utf8, regexp_extract),
        udf("regexp_extract_all", &[], variadic_any(), ret_utf8_list, regexp_extract_all),
        udf("regexp_split", &[], any(2), ret_utf8_list, regexp_split),
        udf("split", &[], variadic_any(), ret_utf8_list, split),
        udf("format", &[], variadic_any(), ret_utf8, format),
    ]
}
