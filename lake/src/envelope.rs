//! The event envelope: one JSON object per event, validated once at ingest.
//!
//! Accepts snake_case and camelCase field names, `occurred_at` as RFC 3339 or
//! epoch milliseconds, and keeps `payload`/`metadata` as their original JSON
//! text (no re-serialisation, so ingest is fast and the bytes round-trip).

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Largest accepted event, in bytes of its JSON text.
pub const MAX_EVENT_BYTES: usize = 1 << 20;
/// Longest accepted `event_id`, in characters.
pub const MAX_EVENT_ID_CHARS: usize = 256;

/// Earliest and latest accepted `occurred_at` (keeps `dt` a four-digit year).
const MIN_MILLIS: i64 = -2_208_988_800_000; // 1900-01-01
const MAX_MILLIS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999

/// A validated event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub event_id: String,
    pub event_type: String,
    pub event_version: i32,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: Option<i64>,
    /// UTC, milliseconds since the epoch.
    pub occurred_at_ms: i64,
    /// The payload object as JSON text.
    pub payload: String,
    /// The metadata object as JSON text, if any.
    pub metadata: Option<String>,
}

/// Why a record is not a valid event. The text goes into the quarantine record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("event is {size} bytes, over the {MAX_EVENT_BYTES}-byte limit")]
    TooLarge { size: usize },
    #[error("malformed JSON: {0}")]
    Malformed(String),
    #[error("missing required field `{0}`")]
    Missing(&'static str),
    #[error("field `{field}`: {reason}")]
    Field { field: &'static str, reason: String },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Timestamp<'a> {
    Millis(i64),
    #[serde(borrow)]
    Text(Cow<'a, str>),
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, alias = "eventId")]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow, alias = "eventType")]
    event_type: Option<Cow<'a, str>>,
    #[serde(alias = "eventVersion")]
    event_version: Option<i64>,
    #[serde(borrow, alias = "aggregateType")]
    aggregate_type: Option<Cow<'a, str>>,
    #[serde(borrow, alias = "aggregateId")]
    aggregate_id: Option<Cow<'a, str>>,
    sequence: Option<i64>,
    #[serde(borrow, alias = "occurredAt")]
    occurred_at: Option<Timestamp<'a>>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
}

impl Envelope {
    /// Parses and validates one event from its JSON bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, Invalid> {
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(Invalid::TooLarge { size: bytes.len() });
        }
        let wire: Wire<'_> = serde_json::from_slice(bytes).map_err(|e| Invalid::Malformed(e.to_string()))?;
        let event_id = required_text(wire.event_id, "event_id")?;
        if event_id.chars().count() > MAX_EVENT_ID_CHARS {
            return Err(Invalid::Field { field: "event_id", reason: format!("longer than {MAX_EVENT_ID_CHARS} characters") });
        }
        let event_type = required_text(wire.event_type, "event_type")?;
        let aggregate_type = required_text(wire.aggregate_type, "aggregate_type")?;
        let aggregate_id = required_text(wire.aggregate_id, "aggregate_id")?;
        let event_version = match wire.event_version {
            None => 1,
            Some(v) if (1..=i32::MAX as i64).contains(&v) => v as i32,
            Some(v) => {
                return Err(Invalid::Field { field: "event_version", reason: format!("{v} is not an integer ≥ 1") });
            }
        };
        if let Some(s) = wire.sequence
            && s < 0
        {
            return Err(Invalid::Field { field: "sequence", reason: format!("{s} is negative") });
        }
        let occurred_at_ms = match wire.occurred_at {
            None => return Err(Invalid::Missing("occurred_at")),
            Some(Timestamp::Millis(ms)) => ms,
            Some(Timestamp::Text(text)) => parse_rfc3339_millis(&text)
                .ok_or_else(|| Invalid::Field { field: "occurred_at", reason: format!("{text:?} is not an RFC 3339 timestamp") })?,
        };
        if !(MIN_MILLIS..=MAX_MILLIS).contains(&occurred_at_ms) {
            return Err(Invalid::Field { field: "occurred_at", reason: format!("{occurred_at_ms} ms is outside years 1900–9999") });
        }
        let payload = match wire.payload {
            None => return Err(Invalid::Missing("payload")),
            Some(raw) => {
                object_text(raw, "payload")?.ok_or(Invalid::Field { field: "payload", reason: "is null, expected a JSON object".into() })?
            }
        };
        let metadata = match wire.metadata {
            None => None,
            Some(raw) => object_text(raw, "metadata")?,
        };
        Ok(Envelope {
            event_id: event_id.into_owned(),
            event_type: event_type.into_owned(),
            event_version,
            aggregate_type: aggregate_type.into_owned(),
            aggregate_id: aggregate_id.into_owned(),
            sequence: wire.sequence,
            occurred_at_ms,
            payload,
            metadata,
        })
    }

    /// The UTC date of `occurred_at`: the `dt` partition.
    pub fn dt(&self) -> NaiveDate {
        millis_to_datetime(self.occurred_at_ms).date_naive()
    }

    /// The UTC hour of `occurred_at`: the `hour` partition of the raw zone.
    pub fn hour(&self) -> u32 {
        millis_to_datetime(self.occurred_at_ms).hour()
    }
}

/// UTC date-time of epoch milliseconds (clamped into chrono's range, which
/// validated envelopes never leave).
pub fn millis_to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn parse_rfc3339_millis(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc).timestamp_millis())
}

fn required_text<'a>(value: Option<Cow<'a, str>>, field: &'static str) -> Result<Cow<'a, str>, Invalid> {
    match value {
        None => Err(Invalid::Missing(field)),
        Some(v) if v.is_empty() => Err(Invalid::Field { field, reason: "is empty".into() }),
        Some(v) => Ok(v),
    }
}

/// The JSON text of an object field; `Ok(None)` for an explicit `null`.
fn object_text(raw: &RawValue, field: &'static str) -> Result<Option<String>, Invalid> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'{') => Ok(Some(text.to_owned())),
        Some(b'n') => Ok(None),
        _ => Err(Invalid::Field { field, reason: format!("expected a JSON object, got {}", truncate(text, 40)) }),
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(json: &str) -> Envelope {
        Envelope::parse(json.as_bytes()).unwrap()
    }

    fn err(json: &str) -> String {
        Envelope::parse(json.as_bytes()).unwrap_err().to_string()
    }

    const BASE: &str = r#"{"event_id":"e1","event_type":"OrderPlaced","aggregate_type":"Order","aggregate_id":"o-1","sequence":3,"occurred_at":"2026-11-02T13:05:09.123456+01:00","payload":{"total":12.5}}"#;

    #[test]
    fn snake_case_rfc3339() {
        let e = ok(BASE);
        assert_eq!(e.event_id, "e1");
        assert_eq!(e.event_version, 1);
        assert_eq!(e.sequence, Some(3));
        // +01:00 converted to UTC, truncated to milliseconds
        assert_eq!(millis_to_datetime(e.occurred_at_ms).to_rfc3339(), "2026-11-02T12:05:09.123+00:00");
        assert_eq!(e.dt().to_string(), "2026-11-02");
        assert_eq!(e.hour(), 12);
        assert_eq!(e.payload, r#"{"total":12.5}"#);
        assert_eq!(e.metadata, None);
    }

    #[test]
    fn camel_case_epoch_millis() {
        let e = ok(
            r#"{"eventId":"e2","eventType":"T","eventVersion":2,"aggregateType":"A","aggregateId":"a","occurredAt":1793624709123,"payload":{},"metadata":{"correlation_id":"c"}}"#,
        );
        assert_eq!(e.event_version, 2);
        assert_eq!(e.occurred_at_ms, 1_793_624_709_123);
        assert_eq!(e.sequence, None);
        assert_eq!(e.metadata.as_deref(), Some(r#"{"correlation_id":"c"}"#));
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let e = ok(r#"{"event_id":"e\"3","event_type":"T","aggregate_type":"A","aggregate_id":"caf\u00e9","occurred_at":0,"payload":{}}"#);
        assert_eq!(e.event_id, "e\"3");
        assert_eq!(e.aggregate_id, "café");
    }

    #[test]
    fn rejections_name_the_field() {
        assert!(err("{not json").starts_with("malformed JSON"));
        assert_eq!(err(r#"{"event_type":"T"}"#), "missing required field `event_id`");
        assert!(err(&BASE.replace("\"sequence\":3", "\"sequence\":-1")).contains("`sequence`"));
        assert!(err(&BASE.replace("\"sequence\":3", "\"sequence\":\"3\"")).starts_with("malformed JSON"));
        assert!(err(&BASE.replace("\"o-1\"", "\"\"")).contains("`aggregate_id`: is empty"));
        assert!(err(&BASE.replace("{\"total\":12.5}", "[1]")).contains("`payload`: expected a JSON object"));
        assert!(err(&BASE.replace("{\"total\":12.5}", "null")).contains("`payload`"));
        assert!(err(&BASE.replace("2026-11-02T13:05:09.123456+01:00", "yesterday")).contains("`occurred_at`"));
        assert!(err(&BASE.replace("\"e1\"", &format!("\"{}\"", "x".repeat(257)))).contains("longer than 256"));
        assert!(err(&BASE.replace(",\"sequence\":3", ",\"event_version\":0")).contains("`event_version`"));
        assert!(err(r#"[1,2]"#).starts_with("malformed JSON"));
    }

    #[test]
    fn oversized_event_is_refused_before_parsing() {
        let big = BASE.replace("12.5", &format!("\"{}\"", "x".repeat(MAX_EVENT_BYTES)));
        assert!(matches!(Envelope::parse(big.as_bytes()), Err(Invalid::TooLarge { .. })));
    }
}
