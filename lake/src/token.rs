//! Consistency tokens: what ingest hands back so a client can read its writes.
//!
//! A token names the raw files a batch owns. Their keys are deterministic
//! (a retried batch lands on the same keys), and a raw file is visible to
//! `events` exactly once from the moment it is listed: shown from raw until a
//! compaction covers it, from the curated day after (coverage manifests are
//! cumulative, so vacuuming the raw file changes nothing). A token is
//! therefore satisfied once every file it names is listed or covered.
//!
//! The text form is `sdt1.` and the base64url (no padding) of a JSON object
//! grouping hour partitions by batch name, since the files of one batch
//! share their name: `{"f": {"kinesis-0a1b…": ["2026-11-02T13", …]}}`.
//! Tokens merge (a client that wrote several batches waits for all of them).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::paths::RawFile;

const PREFIX: &str = "sdt1.";

/// Most files one token may name: a bound on the work a wait does.
pub const MAX_FILES: usize = 100_000;

/// The raw files a write owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Token {
    files: BTreeSet<RawFile>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a Sediment consistency token: {0}")]
pub struct TokenError(String);

#[derive(Serialize, Deserialize)]
struct Wire {
    /// Batch name → hour partitions (`YYYY-MM-DDTHH`).
    f: BTreeMap<String, Vec<String>>,
}

impl Token {
    /// A token for the given raw keys; keys that are not raw files are ignored.
    pub fn of_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        Self { files: keys.into_iter().filter_map(RawFile::parse).collect() }
    }

    pub fn of_files(files: impl IntoIterator<Item = RawFile>) -> Self {
        Self { files: files.into_iter().collect() }
    }

    /// Everything `other` names, added to this token.
    pub fn merge(&mut self, other: Token) {
        self.files.extend(other.files);
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn files(&self) -> impl Iterator<Item = &RawFile> {
        self.files.iter()
    }

    /// The days the token's files belong to.
    pub fn days(&self) -> BTreeSet<NaiveDate> {
        self.files.iter().map(|f| f.dt).collect()
    }

    pub fn encode(&self) -> String {
        let mut f: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for file in &self.files {
            f.entry(file.name.clone()).or_default().push(format!("{}T{:02}", file.dt, file.hour));
        }
        let json = serde_json::to_vec(&Wire { f }).unwrap_or_default();
        format!("{PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
    }

    pub fn decode(text: &str) -> Result<Self, TokenError> {
        let body = text.trim().strip_prefix(PREFIX).ok_or_else(|| TokenError(format!("it does not start with {PREFIX:?}")))?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|e| TokenError(format!("its body is not base64url: {e}")))?;
        let wire: Wire = serde_json::from_slice(&json).map_err(|e| TokenError(format!("its body is not a token: {e}")))?;
        let mut files = BTreeSet::new();
        for (name, hours) in wire.f {
            for h in hours {
                let file = h
                    .split_once('T')
                    .and_then(|(dt, hour)| Some(RawFile::new(dt.parse().ok()?, hour.parse().ok().filter(|h| *h < 24)?, name.as_str())))
                    .filter(|f| RawFile::parse(&f.key()).as_ref() == Some(f))
                    .ok_or_else(|| TokenError(format!("{name:?} at {h:?} is not a raw file")))?;
                files.insert(file);
                if files.len() > MAX_FILES {
                    return Err(TokenError(format!("it names more than {MAX_FILES} files")));
                }
            }
        }
        Ok(Self { files })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_merges() {
        let a = Token::of_keys([
            "raw/events/dt=2026-11-02/hour=13/kinesis-0a1b.parquet",
            "raw/events/dt=2026-11-03/hour=00/kinesis-0a1b.parquet",
            "quarantine/dt=2026-11-02/kinesis-0a1b.json",
        ]);
        assert_eq!(a.len(), 2, "only raw files are named");
        let text = a.encode();
        assert!(text.starts_with("sdt1."), "{text}");
        assert_eq!(Token::decode(&text).unwrap(), a);
        let mut b = Token::of_keys(["raw/events/dt=2026-11-02/hour=14/sqs-ff.parquet"]);
        b.merge(a.clone());
        assert_eq!(b.len(), 3);
        assert_eq!(b.days().len(), 2);
        assert_eq!(Token::decode(&b.encode()).unwrap(), b);
        assert_eq!(Token::decode(&Token::default().encode()).unwrap(), Token::default());
    }

    #[test]
    fn refuses_what_is_not_a_token() {
        // `e30` is `{}`: no file map.
        for bad in ["", "abc", "sdt1.!!", "sdt1.e30", "sdt2.e30"] {
            assert!(Token::decode(bad).is_err(), "{bad}");
        }
        let wire = |v: serde_json::Value| format!("sdt1.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string()));
        assert!(Token::decode(&wire(serde_json::json!({"f": {"a/b": ["2026-11-02T01"]}}))).is_err(), "a name with a slash");
        assert!(Token::decode(&wire(serde_json::json!({"f": {"a": ["2026-11-02T24"]}}))).is_err(), "hour 24");
        assert!(Token::decode(&wire(serde_json::json!({"f": {"a": ["2026-13-02T01"]}}))).is_err(), "month 13");
        assert_eq!(Token::decode(&wire(serde_json::json!({"f": {"a": ["2026-11-02T01"]}}))).unwrap().len(), 1);
    }
}
