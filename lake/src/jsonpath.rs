//! The JSONPath subset used by projections and by `json_extract`:
//! `$`, `.name`, `["name"]`/`['name']`, `[index]` — what Athena users write.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath(Vec<Step>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON path {path:?}: {reason}")]
pub struct Error {
    pub path: String,
    pub reason: String,
}

impl JsonPath {
    pub fn parse(path: &str) -> Result<Self, Error> {
        let err = |reason: &str| Error { path: path.to_owned(), reason: reason.to_owned() };
        let rest = path.trim();
        let mut rest = rest.strip_prefix('$').ok_or_else(|| err("must start with `$`"))?;
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let key = &r[..end];
                if key.is_empty() {
                    return Err(err("empty member name"));
                }
                steps.push(Step::Key(key.to_owned()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let close = r.find(']').ok_or_else(|| err("unclosed `[`"))?;
                let inner = r[..close].trim();
                let quoted = inner
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')));
                match quoted {
                    Some(key) => steps.push(Step::Key(key.to_owned())),
                    None => steps.push(Step::Index(inner.parse().map_err(|_| err("subscript is not an index or a quoted name"))?)),
                }
                rest = &r[close + 1..];
            } else {
                return Err(err("expected `.` or `[`"));
            }
        }
        Ok(Self(steps))
    }

    /// The value at the path, if present.
    pub fn find<'v>(&self, mut value: &'v Value) -> Option<&'v Value> {
        for step in &self.0 {
            value = match (step, value) {
                (Step::Key(k), Value::Object(map)) => map.get(k)?,
                (Step::Index(i), Value::Array(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(value)
    }

    pub fn steps(&self) -> &[Step] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths() {
        let v = json!({"a": {"b": [10, {"c": "x"}]}, "d.e": 1});
        let get = |p: &str| JsonPath::parse(p).unwrap().find(&v).cloned();
        assert_eq!(get("$.a.b[0]"), Some(json!(10)));
        assert_eq!(get("$.a.b[1].c"), Some(json!("x")));
        assert_eq!(get("$[\"d.e\"]"), Some(json!(1)));
        assert_eq!(get("$['a']['b'][1]['c']"), Some(json!("x")));
        assert_eq!(get("$"), Some(v.clone()));
        assert_eq!(get("$.a.z"), None);
        assert_eq!(get("$.a.b[5]"), None);
        assert_eq!(get("$.a[0]"), None);
        for bad in ["a.b", "$.", "$[x]", "$[0", "$..a", "$a"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }
}
