//! Read your writes: a query that runs once the writes it names are visible.
//!
//! A client names its writes by the consistency token ingest returned, by
//! event ids, or by source positions (a Kinesis shard and sequence number as
//! `PutRecord` returns them, a DynamoDB Streams sequence number, an SQS
//! message id, a Kafka `topic-partition@offset`). The service checks, waits
//! (bounded), and then runs the query; when the wait runs out the query fails
//! `NOT_YET_VISIBLE`, or runs and is marked stale if the client asked for
//! that. The wire form is the same in REST's body (`"after": {…}`), the
//! Athena API's `X-Sediment-After` header and `sediment query --after`.

use std::collections::BTreeSet;
use std::time::Duration;

use sediment_engine::lag::SourceLag;
use sediment_lake::paths::RawFile;
use sediment_lake::token::Token;
use serde::{Deserialize, Deserializer, Serialize};

/// Most event ids, and most positions, one request may name.
pub const MAX_NAMED: usize = 10_000;

/// What a client sends.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AfterSpec {
    /// One token or a list of them (ingest reports one per batch).
    #[serde(default, deserialize_with = "one_or_many")]
    pub token: Vec<String>,
    #[serde(default)]
    pub event_ids: Vec<String>,
    #[serde(default)]
    pub positions: Vec<SourcePosition>,
    /// Longest wait (`"2s"`, `"500ms"`); at most, and by default,
    /// `query.max_after_wait`.
    #[serde(default)]
    pub wait: Option<String>,
    /// `error` (default): fail NOT_YET_VISIBLE when the wait runs out;
    /// `stale`: run anyway and mark the answer stale.
    #[serde(default)]
    pub on_timeout: OnTimeout,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    #[default]
    Error,
    Stale,
}

/// A record's place in its source.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcePosition {
    /// `kinesis`, `dynamodb`, `sqs`, `kafka`, `eventbridge` or `cli`.
    pub source: String,
    /// The `source_position` column's text, for any source.
    #[serde(default)]
    pub position: Option<String>,
    /// Kinesis: the `ShardId` `PutRecord` returned.
    #[serde(default)]
    pub shard: Option<String>,
    /// Kinesis (with `shard`) and DynamoDB Streams.
    #[serde(default)]
    pub sequence_number: Option<String>,
    /// SQS (and the EventBridge event id).
    #[serde(default)]
    pub message_id: Option<String>,
}

impl SourcePosition {
    /// `(source, source_position)` as the raw rows hold them.
    fn resolve(&self) -> Result<(String, String), String> {
        let source = self.source.to_ascii_lowercase();
        let text = match (source.as_str(), &self.position, &self.shard, &self.sequence_number, &self.message_id) {
            (_, Some(p), None, None, None) => p.clone(),
            ("kinesis", None, Some(shard), Some(seq), None) => format!("{shard}:{seq}"),
            ("dynamodb", None, None, Some(seq), None) => seq.clone(),
            ("sqs" | "eventbridge", None, None, None, Some(id)) => id.clone(),
            _ => {
                return Err(format!(
                    "position {:?}: give `position`, or for kinesis `shard` and `sequence_number`, for dynamodb \
                     `sequence_number`, for sqs and eventbridge `message_id`",
                    self.source
                ));
            }
        };
        const SOURCES: [&str; 6] = ["kinesis", "dynamodb", "sqs", "kafka", "eventbridge", "cli"];
        if !SOURCES.contains(&source.as_str()) {
            return Err(format!("position source {:?} is not one of {}", self.source, SOURCES.join(", ")));
        }
        Ok((source, text))
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// What a query waits for, checked and bounded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct After {
    pub token: Token,
    pub event_ids: BTreeSet<String>,
    /// `(source, source_position)`.
    pub positions: BTreeSet<(String, String)>,
    pub wait: Duration,
    pub on_timeout: OnTimeout,
}

impl After {
    /// Validates a spec; `max_wait` is `query.max_after_wait`.
    pub fn from_spec(spec: AfterSpec, max_wait: Duration) -> Result<Self, String> {
        let mut token = Token::default();
        for t in &spec.token {
            token.merge(Token::decode(t).map_err(|e| e.to_string())?);
        }
        if spec.event_ids.len() > MAX_NAMED || spec.positions.len() > MAX_NAMED {
            return Err(format!("`after` names at most {MAX_NAMED} event ids and {MAX_NAMED} positions"));
        }
        if let Some(id) = spec.event_ids.iter().find(|id| id.is_empty() || id.len() > 256) {
            return Err(format!("event id {id:?} is not 1 to 256 characters"));
        }
        let positions = spec.positions.iter().map(SourcePosition::resolve).collect::<Result<BTreeSet<_>, _>>()?;
        let wait = match &spec.wait {
            None => max_wait,
            Some(w) => humantime::parse_duration(w).map_err(|e| format!("`wait` {w:?}: {e}"))?.min(max_wait),
        };
        Ok(Self { token, event_ids: spec.event_ids.into_iter().collect(), positions, wait, on_timeout: spec.on_timeout })
    }

    /// Parses the text form (a header, the CLI): a JSON object, or a bare token.
    pub fn parse(text: &str, max_wait: Duration) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.starts_with('{') {
            let value = serde_json::from_str(trimmed).map_err(|e| format!("`after` is not valid JSON: {e}"))?;
            return Self::from_json(value, max_wait);
        }
        Self::from_json(serde_json::Value::String(trimmed.to_owned()), max_wait)
    }

    /// The JSON form: an object (see [`AfterSpec`]), or a token string.
    pub fn from_json(value: serde_json::Value, max_wait: Duration) -> Result<Self, String> {
        let spec = match value {
            serde_json::Value::String(token) => AfterSpec { token: vec![token], ..Default::default() },
            other => serde_json::from_value(other).map_err(|e| format!("`after` is not valid: {e}"))?,
        };
        Self::from_spec(spec, max_wait)
    }

    pub fn is_empty(&self) -> bool {
        self.token.is_empty() && self.event_ids.is_empty() && self.positions.is_empty()
    }
}

/// What was still not visible when the wait ran out.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NotVisible {
    /// Raw files of the tokens not listed and not compacted.
    pub files: Vec<String>,
    pub event_ids: Vec<String>,
    pub positions: Vec<String>,
    pub waited_ms: u64,
    /// The lake's newest visible position per source, at the end of the wait.
    pub lag: Vec<SourceLag>,
}

impl NotVisible {
    pub fn new(files: &[RawFile], event_ids: &BTreeSet<String>, positions: &BTreeSet<(String, String)>, waited: Duration) -> Self {
        Self {
            files: files.iter().map(RawFile::key).collect(),
            event_ids: event_ids.iter().cloned().collect(),
            positions: positions.iter().map(|(s, p)| format!("{s}:{p}")).collect(),
            waited_ms: waited.as_millis() as u64,
            lag: Vec::new(),
        }
    }

    /// The error text: what is missing and how far behind the lake is.
    pub fn message(&self) -> String {
        let mut parts = Vec::new();
        let list = |v: &[String]| {
            let shown: Vec<&str> = v.iter().take(3).map(String::as_str).collect();
            format!("{}{}", shown.join(", "), if v.len() > 3 { ", …" } else { "" })
        };
        if !self.files.is_empty() {
            parts.push(format!("{} raw file(s) of the token ({})", self.files.len(), list(&self.files)));
        }
        if !self.event_ids.is_empty() {
            parts.push(format!("{} event id(s) ({})", self.event_ids.len(), list(&self.event_ids)));
        }
        if !self.positions.is_empty() {
            parts.push(format!("{} position(s) ({})", self.positions.len(), list(&self.positions)));
        }
        let lag = match self.lag.iter().max_by_key(|l| l.newest_arrival) {
            Some(l) => format!(
                "; the newest visible record arrived {} ms ago ({}{} at {})",
                l.age_ms,
                l.source,
                l.shard.as_deref().map(|s| format!("/{s}")).unwrap_or_default(),
                l.newest_position
            ),
            None => "; nothing recent is visible".to_owned(),
        };
        format!("NOT_YET_VISIBLE: after waiting {} ms, not visible: {}{lag}", self.waited_ms, parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(10);

    #[test]
    fn specs_parse_and_are_bounded() {
        let token = Token::of_keys(["raw/events/dt=2026-11-02/hour=13/kinesis-0a.parquet"]).encode();
        let a = After::parse(&token, MAX).unwrap();
        assert_eq!(a.token.len(), 1);
        assert_eq!(a.wait, MAX);
        let body = serde_json::json!({
            "token": [token],
            "event_ids": ["e1", "e2"],
            "positions": [
                {"source": "kinesis", "shard": "shardId-000000000001", "sequence_number": "4954"},
                {"source": "sqs", "message_id": "m-1"},
                {"source": "dynamodb", "sequence_number": "100"},
                {"source": "kafka", "position": "orders-2@17"}
            ],
            "wait": "250ms",
            "on_timeout": "stale"
        });
        let a = After::parse(&body.to_string(), MAX).unwrap();
        assert_eq!(a.event_ids.len(), 2);
        assert!(a.positions.contains(&("kinesis".to_owned(), "shardId-000000000001:4954".to_owned())));
        assert!(a.positions.contains(&("sqs".to_owned(), "m-1".to_owned())));
        assert!(a.positions.contains(&("kafka".to_owned(), "orders-2@17".to_owned())));
        assert_eq!(a.wait, Duration::from_millis(250));
        assert_eq!(a.on_timeout, OnTimeout::Stale);
        assert_eq!(After::parse(r#"{"wait": "1h"}"#, MAX).unwrap().wait, MAX, "capped by the server");
        for bad in [
            r#"{"tokens": []}"#,
            r#"{"token": "x"}"#,
            r#"{"wait": "soon"}"#,
            r#"{"event_ids": [""]}"#,
            r#"{"positions": [{"source": "kinesis", "sequence_number": "1"}]}"#,
            r#"{"positions": [{"source": "pigeon", "position": "1"}]}"#,
            r#"{"on_timeout": "ignore"}"#,
        ] {
            assert!(After::parse(bad, MAX).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..=MAX_NAMED).map(|i| i.to_string()).collect();
        assert!(After::parse(&serde_json::json!({"event_ids": many}).to_string(), MAX).is_err());
    }

    #[test]
    fn the_message_names_what_is_missing() {
        let ids: BTreeSet<String> = ["a", "b", "c", "d"].map(str::to_owned).into();
        let m = NotVisible::new(&[], &ids, &BTreeSet::new(), Duration::from_millis(1500)).message();
        assert!(m.starts_with("NOT_YET_VISIBLE: after waiting 1500 ms"), "{m}");
        assert!(m.contains("4 event id(s) (a, b, c, …)"), "{m}");
        assert!(m.contains("nothing recent is visible"), "{m}");
    }
}
