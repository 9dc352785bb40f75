//! Trino string and regular-expression functions whose names DataFusion
//! lacks or answers differently: `substr` from the end, `concat` with NULL,
//! `split_part` out of range, `regexp_replace` of every match, `regexp_extract*`,
//! `regexp_split`, `split` with a limit, `format`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Int32Array, Int64Array, ListBuilder, StringArray, StringBuilder};
use arrow::buffer::NullBuffer;
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::ScalarUDF;
use regex::Regex;

use super::json::strings;
use super::maps::{build_map, map_type};
use super::udf::{any, ret_bool, ret_i64, ret_utf8, ret_utf8_list, udf, variadic_any};

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

/// The rows of `regexp_extract` and `regexp_extract_all`: `f(builder,
/// text, pattern, group)` for each row whose text and pattern are not null
/// (`null(builder)` for the others), once the group is known to exist.
fn extract_rows<B>(args: &[ArrayRef], mut b: B, null: impl Fn(&mut B), mut f: impl FnMut(&mut B, &str, &Regex, usize)) -> Result<B> {
    let (s, p, g) = (strings(&args[0])?, strings(&args[1])?, group_arg(args)?);
    let mut pats = Patterns(None);
    for i in 0..s.len() {
        let pj = at(p.len(), i);
        if s.is_null(i) || p.is_null(pj) {
            null(&mut b);
            continue;
        }
        let re = pats.get(p.value(pj))?;
        let group = g.as_ref().map(|g| g.value(at(g.len(), i))).unwrap_or(0) as usize;
        if group >= re.captures_len() {
            return exec_err!("Pattern has {} groups. Cannot access group {group}", re.captures_len() - 1);
        }
        f(&mut b, s.value(i), re, group);
    }
    Ok(b)
}

fn regexp_extract(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let mut b = extract_rows(args, StringBuilder::new(), StringBuilder::append_null, |b, text, re, group| {
        b.append_option(re.captures(text).and_then(|c| c.get(group)).map(|m| m.as_str()))
    })?;
    Ok(Arc::new(b.finish()))
}

fn regexp_extract_all(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let mut b = extract_rows(
        args,
        ListBuilder::new(StringBuilder::new()),
        |b| b.append_null(),
        |b, text, re, group| {
            for c in re.captures_iter(text) {
                b.values().append_option(c.get(group).map(|m| m.as_str()));
            }
            b.append(true);
        },
    )?;
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
        udf("codepoint", &[], any(1), |_| Ok(DataType::Int32), codepoint),
        udf("hamming_distance", &[], any(2), ret_i64, hamming_distance),
        udf("luhn_check", &[], any(1), ret_bool, luhn_check),
        udf("soundex", &[], any(1), ret_utf8, soundex),
        udf("regexp_position", &[], variadic_any(), |_| Ok(DataType::Int32), regexp_position),
        udf("split_to_map", &[], any(3), |_| Ok(map_type(&DataType::Utf8, &DataType::Utf8)), |a, _| split_to_map(a, false)),
        udf(
            "split_to_multimap",
            &[],
            any(3),
            |_| Ok(map_type(&DataType::Utf8, &DataType::new_list(DataType::Utf8, true))),
            |a, _| split_to_map(a, true),
        ),
    ]
}

/// `f` over the non-NULL rows of one string argument.
fn each_string<T>(a: &ArrayRef, f: impl Fn(&str) -> Result<T>) -> Result<Vec<Option<T>>> {
    strings(a)?.iter().map(|v| v.map(&f).transpose()).collect()
}

fn codepoint(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let out = each_string(&args[0], |v| {
        let mut chars = v.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(c as i32),
            _ => exec_err!("INVALID_FUNCTION_ARGUMENT: Input string must be a single character string"),
        }
    })?;
    Ok(Arc::new(Int32Array::from(out)))
}

fn hamming_distance(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let (a, b) = (strings(&args[0])?, strings(&args[1])?);
    let mut out = Vec::with_capacity(a.len());
    for i in 0..a.len() {
        if a.is_null(i) || b.is_null(i) {
            out.push(None);
            continue;
        }
        let (x, y): (Vec<char>, Vec<char>) = (a.value(i).chars().collect(), b.value(i).chars().collect());
        if x.len() != y.len() {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: The input strings to hamming_distance function must have the same length");
        }
        out.push(Some(x.iter().zip(&y).filter(|(p, q)| p != q).count() as i64));
    }
    Ok(Arc::new(Int64Array::from(out)))
}

/// The Luhn (mod 10) checksum holds; anything but digits fails it.
fn luhn_check(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    let out = each_string(&args[0], |v| {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(false);
        }
        let sum: u32 = v
            .bytes()
            .rev()
            .enumerate()
            .map(|(k, b)| {
                let d = u32::from(b - b'0');
                if k % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d }
            })
            .sum();
        Ok(sum.is_multiple_of(10))
    })?;
    Ok(Arc::new(BooleanArray::from(out)))
}

/// American Soundex: the first letter, then the codes of the consonants
/// that follow, a code repeated across `H` or `W` written once, padded with
/// zeros to four; non-letters are skipped ('' when there is no letter).
fn soundex(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    fn code(c: char) -> char {
        match c {
            'B' | 'F' | 'P' | 'V' => '1',
            'C' | 'G' | 'J' | 'K' | 'Q' | 'S' | 'X' | 'Z' => '2',
            'D' | 'T' => '3',
            'L' => '4',
            'M' | 'N' => '5',
            'R' => '6',
            _ => '0',
        }
    }
    let out = each_string(&args[0], |v| {
        let mut letters = v.chars().filter(char::is_ascii_alphabetic).map(|c| c.to_ascii_uppercase());
        let Some(first) = letters.next() else { return Ok(String::new()) };
        let (mut out, mut last) = (first.to_string(), code(first));
        for c in letters {
            if out.len() == 4 {
                break;
            }
            if c == 'H' || c == 'W' {
                continue;
            }
            let k = code(c);
            if k != '0' && k != last {
                out.push(k);
            }
            last = k;
        }
        while out.len() < 4 {
            out.push('0');
        }
        Ok(out)
    })?;
    Ok(Arc::new(StringArray::from(out)))
}

/// `regexp_position(string, pattern [, start [, occurrence]])`: the 1-based
/// character position of the `occurrence`-th match at or after `start`, or -1.
fn regexp_position(args: &[ArrayRef], _: &[DataType]) -> Result<ArrayRef> {
    if !(2..=4).contains(&args.len()) {
        return exec_err!("regexp_position takes 2 to 4 arguments, got {}", args.len());
    }
    let (s, p) = (strings(&args[0])?, strings(&args[1])?);
    let start = args.get(2).map(ints).transpose()?;
    let occurrence = args.get(3).map(ints).transpose()?;
    let mut pats = Patterns(None);
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        let nth = |a: &Option<Int64Array>| a.as_ref().map(|a| a.is_valid(i).then(|| a.value(i))).unwrap_or(Some(1));
        let (Some(from), Some(occ)) = (nth(&start), nth(&occurrence)) else {
            out.push(None);
            continue;
        };
        if s.is_null(i) || p.is_null(i) {
            out.push(None);
            continue;
        }
        if from < 1 {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: start position cannot be smaller than 1");
        }
        if occ < 1 {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: occurrence cannot be smaller than 1");
        }
        let text = s.value(i);
        let re = pats.get(p.value(i))?;
        // The byte offset of character `from`; past the end finds nothing.
        let Some(byte) = text.char_indices().map(|(b, _)| b).chain([text.len()]).nth((from - 1) as usize) else {
            out.push(Some(-1));
            continue;
        };
        let found = re.find_iter(&text[byte..]).nth((occ - 1) as usize);
        out.push(Some(match found {
            Some(m) => (text[..byte + m.start()].chars().count() + 1) as i32,
            None => -1,
        }));
    }
    Ok(Arc::new(Int32Array::from(out)))
}

/// `split_to_map` / `split_to_multimap`: entries split on the first
/// delimiter, each into exactly one key and value on the second.
fn split_to_map(args: &[ArrayRef], multi: bool) -> Result<ArrayRef> {
    let (s, entry, kv) = (strings(&args[0])?, strings(&args[1])?, strings(&args[2])?);
    let (mut keys, mut values, mut offsets, mut valid) = (StringBuilder::new(), Vec::<Vec<String>>::new(), vec![0i32], vec![]);
    let mut total = 0usize;
    for i in 0..s.len() {
        if s.is_null(i) || entry.is_null(i) || kv.is_null(i) {
            offsets.push(total as i32);
            valid.push(false);
            continue;
        }
        let (text, ed, kd) = (s.value(i), entry.value(i), kv.value(i));
        if ed.is_empty() {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: entryDelimiter is empty");
        }
        if kd.is_empty() {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: keyValueDelimiter is empty");
        }
        if ed == kd {
            return exec_err!("INVALID_FUNCTION_ARGUMENT: entryDelimiter and keyValueDelimiter must not be the same");
        }
        let mut row: Vec<(String, Vec<String>)> = Vec::new();
        let entries: Vec<&str> = text.split(ed).collect();
        // A trailing delimiter ends the text; it does not start an empty entry.
        let n = if entries.last().is_some_and(|e| e.is_empty()) { entries.len() - 1 } else { entries.len() };
        for e in &entries[..n] {
            let parts: Vec<&str> = e.split(kd).collect();
            if parts.len() != 2 {
                return exec_err!(
                    "INVALID_FUNCTION_ARGUMENT: Key-value delimiter must appear exactly once in each entry. Bad input: '{text}'"
                );
            }
            match row.iter_mut().find(|(k, _)| k == parts[0]) {
                Some(_) if !multi => return exec_err!("INVALID_FUNCTION_ARGUMENT: Duplicate keys ({}) are not allowed", parts[0]),
                Some((_, vs)) => vs.push(parts[1].to_owned()),
                None => row.push((parts[0].to_owned(), vec![parts[1].to_owned()])),
            }
        }
        total += row.len();
        offsets.push(total as i32);
        valid.push(true);
        for (k, vs) in row {
            keys.append_value(k);
            values.push(vs);
        }
    }
    let value_array: ArrayRef = if multi {
        let mut b = ListBuilder::new(StringBuilder::new());
        for vs in &values {
            vs.iter().for_each(|v| b.values().append_value(v));
            b.append(true);
        }
        Arc::new(b.finish())
    } else {
        Arc::new(StringArray::from_iter_values(values.iter().map(|vs| vs[0].as_str())))
    };
    let value_type = if multi { DataType::new_list(DataType::Utf8, true) } else { DataType::Utf8 };
    build_map(&map_type(&DataType::Utf8, &value_type), offsets, Arc::new(keys.finish()), value_array, Some(NullBuffer::from(valid)))
}
