//! `sediment.toml`: the lake, projections, views and tuning knobs.
//!
//! Every section is optional; an empty file (or none) is a valid
//! configuration on the embedded default lake.

use std::collections::HashSet;
use std::path::Path;

use arrow::datatypes::DataType;
use serde::{Deserialize, Serialize};

use crate::jsonpath::JsonPath;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid configuration {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a lake is when nothing else says: local files beside the caller.
pub const DEFAULT_LAKE: &str = "./sediment-data";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub lake: LakeSection,
    #[serde(default, rename = "projection")]
    pub projections: Vec<Projection>,
    #[serde(default, rename = "view")]
    pub views: Vec<View>,
    #[serde(default, rename = "event_table")]
    pub event_tables: Vec<EventTable>,
    #[serde(default)]
    pub ingest: IngestSection,
    #[serde(default)]
    pub compaction: CompactionSection,
    #[serde(default)]
    pub query: QuerySection,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeSection {
    pub url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSection {
    /// `sediment ingest`: events buffered before they are encoded into
    /// row groups of their partitions' files.
    #[serde(default = "default_cli_batch")]
    pub cli_batch_events: usize,
    /// `sediment ingest`: bytes of events buffered before they are encoded, in MiB.
    #[serde(default = "default_cli_buffer_mb")]
    pub cli_buffer_mb: u64,
    /// `sediment ingest`: a partition's raw file is finished at this size, in MiB.
    #[serde(default = "default_cli_target_file_mb")]
    pub cli_target_file_mb: u64,
    /// zstd level of raw Parquet files.
    #[serde(default = "default_zstd")]
    pub zstd_level: i32,
    /// How DynamoDB Streams images map onto envelope fields.
    #[serde(default)]
    pub dynamodb: DynamoDbMapping,
}

impl Default for IngestSection {
    fn default() -> Self {
        Self {
            cli_batch_events: default_cli_batch(),
            cli_buffer_mb: default_cli_buffer_mb(),
            cli_target_file_mb: default_cli_target_file_mb(),
            zstd_level: default_zstd(),
            dynamodb: DynamoDbMapping::default(),
        }
    }
}

/// Attribute names of an event-store table's items. Unset fields use the
/// envelope's own names (snake_case, or camelCase).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamoDbMapping {
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub event_version: Option<String>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub sequence: Option<String>,
    pub occurred_at: Option<String>,
    pub payload: Option<String>,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactionSection {
    /// Target size of a curated data file, in MiB.
    #[serde(default = "default_target_file_mb")]
    pub target_file_mb: u64,
    /// Rows per Parquet row group in curated files.
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// The compactor's peak resident memory, in MiB (at least
    /// [`MIN_COMPACTION_MEMORY_MB`]); a day larger than it spills its sorts
    /// to local disk.
    #[serde(default = "default_compaction_memory_mb")]
    pub memory_limit_mb: u64,
    /// How long after midnight UTC a day counts as closed for scheduled runs.
    #[serde(default = "default_grace", with = "humantime_serde_compat")]
    pub grace_period: std::time::Duration,
    /// zstd level of curated files.
    #[serde(default = "default_zstd")]
    pub zstd_level: i32,
    /// Whether a compaction also writes each event type's rows with the
    /// payload's fields as typed columns (`typed/events/`), which the typed
    /// tables read instead of parsing the payload. Off: they parse it.
    #[serde(default = "yes")]
    pub typed_copies: bool,
}

impl Default for CompactionSection {
    fn default() -> Self {
        Self {
            target_file_mb: default_target_file_mb(),
            row_group_rows: default_row_group_rows(),
            memory_limit_mb: default_compaction_memory_mb(),
            grace_period: default_grace(),
            zstd_level: default_zstd(),
            typed_copies: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySection {
    /// The database name analysts use (`default` always works too).
    #[serde(default = "default_database")]
    pub database: String,
    #[serde(default = "default_query_memory_mb")]
    pub memory_limit_mb: u64,
    /// Per-query timeout.
    #[serde(default = "default_timeout", with = "humantime_serde_compat")]
    pub timeout: std::time::Duration,
    /// Most rows a query may return.
    #[serde(default = "default_max_rows")]
    pub max_result_rows: usize,
    /// Bytes a query may scan before it is cancelled (0 = no limit; minimum 10 MB otherwise).
    #[serde(default)]
    pub bytes_scanned_cutoff: u64,
    /// Queries that run at once; more wait in QUEUED.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// How long the server reuses its listing of raw files for queries over
    /// many days (0s: list on every query). Bounds how late a new raw file
    /// can show; exactly-once holds either way (ADR 0006).
    #[serde(default = "default_raw_listing_ttl", with = "humantime_serde_compat")]
    pub raw_listing_ttl: std::time::Duration,
    /// API keys accepted by the server (Bearer for REST, access key id for the Athena API).
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Longest a query asked to run `after` a write waits for it to become
    /// visible (a request may ask for less); then it fails NOT_YET_VISIBLE.
    #[serde(default = "default_max_after_wait", with = "humantime_serde_compat")]
    pub max_after_wait: std::time::Duration,
    /// Address of the Postgres wire protocol (psql, JDBC/ODBC, BI tools);
    /// none: not served. `sediment serve --pg-listen` overrides it.
    #[serde(default)]
    pub pg_listen: Option<String>,
    /// PEM certificate chain and private key: with both, the Postgres door
    /// offers TLS (clients ask with `sslmode=require`).
    #[serde(default)]
    pub pg_tls_cert: Option<std::path::PathBuf>,
    #[serde(default)]
    pub pg_tls_key: Option<std::path::PathBuf>,
    /// Address of Arrow Flight SQL (ADBC, the Flight SQL JDBC driver);
    /// none: not served. `sediment serve --flight-listen` overrides it.
    #[serde(default)]
    pub flight_listen: Option<String>,
    /// PEM certificate chain and private key: with both, the Flight SQL
    /// door serves gRPC over TLS only (`grpc+tls://`).
    #[serde(default)]
    pub flight_tls_cert: Option<std::path::PathBuf>,
    #[serde(default)]
    pub flight_tls_key: Option<std::path::PathBuf>,
}

impl Default for QuerySection {
    fn default() -> Self {
        Self {
            database: default_database(),
            memory_limit_mb: default_query_memory_mb(),
            timeout: default_timeout(),
            max_result_rows: default_max_rows(),
            bytes_scanned_cutoff: 0,
            max_concurrency: default_concurrency(),
            raw_listing_ttl: default_raw_listing_ttl(),
            api_keys: Vec::new(),
            max_after_wait: default_max_after_wait(),
            pg_listen: None,
            pg_tls_cert: None,
            pg_tls_key: None,
            flight_listen: None,
            flight_tls_cert: None,
            flight_tls_key: None,
        }
    }
}

fn default_cli_batch() -> usize {
    2_000_000
}
fn default_cli_buffer_mb() -> u64 {
    512
}
fn default_cli_target_file_mb() -> u64 {
    128
}
fn default_zstd() -> i32 {
    1
}

fn default_target_file_mb() -> u64 {
    256
}
fn default_row_group_rows() -> usize {
    128 * 1024
}
/// The smallest `compaction.memory_limit_mb` a run accepts.
pub const MIN_COMPACTION_MEMORY_MB: u64 = 256;

fn default_compaction_memory_mb() -> u64 {
    1024
}
fn default_grace() -> std::time::Duration {
    std::time::Duration::from_secs(30 * 60)
}
fn default_database() -> String {
    "sediment".into()
}
fn default_query_memory_mb() -> u64 {
    2048
}
fn default_max_after_wait() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}
fn default_raw_listing_ttl() -> std::time::Duration {
    std::time::Duration::from_secs(1)
}
fn default_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(300)
}
fn default_max_rows() -> usize {
    1_000_000
}
fn default_concurrency() -> usize {
    4
}

/// Durations as humantime strings (`"30m"`, `"5 min"`).
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", d.as_secs()))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map_err(serde::de::Error::custom)
    }

    pub fn parse_duration(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (num, unit) = text.split_at(split);
        let n: u64 = num.parse().map_err(|_| format!("{text:?} is not a duration like \"30m\""))?;
        let secs = match unit.trim() {
            "ms" => return Ok(Duration::from_millis(n)),
            "" | "s" | "sec" | "secs" => n,
            "m" | "min" | "mins" => n * 60,
            "h" | "hour" | "hours" => n * 3600,
            "d" | "day" | "days" => n * 86_400,
            other => return Err(format!("unknown duration unit {other:?} in {text:?}")),
        };
        Ok(Duration::from_secs(secs))
    }
}

pub use humantime_serde_compat::parse_duration;

/// A daily snapshot table: one row per live aggregate per day.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Projection {
    pub name: String,
    pub aggregate_type: String,
    /// Event types that remove the aggregate and reset its state.
    #[serde(default)]
    pub delete_on: Vec<String>,
    pub columns: Vec<ProjectionColumn>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fold {
    First,
    Last,
    Sum,
    Min,
    Max,
    Count,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionColumn {
    pub name: String,
    #[serde(rename = "fn")]
    pub fold: Fold,
    /// JSONPath into the payload.
    pub path: Option<String>,
    /// An envelope field instead of a payload path.
    pub field: Option<String>,
    #[serde(rename = "type", default = "default_type")]
    pub ty: String,
    /// Only these event types feed the column.
    #[serde(default)]
    pub when: Vec<String>,
}

fn default_type() -> String {
    "varchar".into()
}

/// The SQL type of a projection column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Varchar,
    Bigint,
    Double,
    Boolean,
    Timestamp,
    Date,
    Decimal(u8, i8),
}

impl ColumnType {
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim().to_ascii_lowercase();
        Some(match t.as_str() {
            "varchar" | "string" => Self::Varchar,
            "bigint" => Self::Bigint,
            "double" => Self::Double,
            "boolean" => Self::Boolean,
            "timestamp" => Self::Timestamp,
            "date" => Self::Date,
            _ => {
                let inner = t.strip_prefix("decimal(")?.strip_suffix(')')?;
                let (p, s) = inner.split_once(',')?;
                let (p, s): (u8, i8) = (p.trim().parse().ok()?, s.trim().parse().ok()?);
                if !(1..=38).contains(&p) || s < 0 || s as u8 > p {
                    return None;
                }
                Self::Decimal(p, s)
            }
        })
    }

    /// The Arrow type the column is stored as (timestamps as UTC microseconds,
    /// the Delta Lake `timestamp` type).
    pub fn arrow(&self) -> DataType {
        match self {
            Self::Varchar => DataType::Utf8,
            Self::Bigint => DataType::Int64,
            Self::Double => DataType::Float64,
            Self::Boolean => DataType::Boolean,
            Self::Timestamp => DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
            Self::Date => DataType::Date32,
            Self::Decimal(p, s) => DataType::Decimal128(*p, *s),
        }
    }
}

/// Envelope fields a projection column may name with `field`.
pub const ENVELOPE_FIELDS: &[&str] =
    &["event_id", "event_type", "event_version", "aggregate_type", "aggregate_id", "sequence", "occurred_at", "ingested_at", "source"];

/// A per-day read model defined in SQL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct View {
    pub name: String,
    pub sql: String,
}

/// The typed table of one event type, where its default name (the
/// `event_type` in snake case) is not the one wanted; `served = false`
/// serves no typed table for the type.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTable {
    pub event_type: String,
    pub name: Option<String>,
    #[serde(default = "yes")]
    pub served: bool,
}

fn yes() -> bool {
    true
}

/// Columns every snapshot row carries besides the configured ones.
pub const SNAPSHOT_COLUMNS: &[&str] = &["snapshot_date", "aggregate_id", "version", "first_event_at", "last_event_at"];

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.display().to_string(), source })?;
        Self::parse(&text).map_err(|e| match e {
            Error::Parse { message, .. } => Error::Parse { path: path.display().to_string(), message },
            other => other,
        })
    }

    /// The config named by `explicit`, else `SEDIMENT_CONFIG` (handled by
    /// clap), else `./sediment.toml` if it exists, else the defaults.
    pub fn discover(explicit: Option<&Path>) -> Result<Self> {
        match explicit {
            Some(p) => Self::load(p),
            None => {
                let p = Path::new("sediment.toml");
                if p.exists() { Self::load(p) } else { Ok(Self::default()) }
            }
        }
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> Result<Self> {
        let config: Config = toml::from_str(text).map_err(|e| Error::Parse { path: "<text>".into(), message: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    /// The lake URL: explicit flag or `SEDIMENT_LAKE` (both resolved by the
    /// caller into `explicit`), then `lake.url`, then the embedded default.
    pub fn lake_url(&self, explicit: Option<&str>) -> String {
        explicit.map(str::to_owned).or_else(|| self.lake.url.clone()).unwrap_or_else(|| DEFAULT_LAKE.to_owned())
    }

    fn validate(&self) -> Result<()> {
        let mut names = HashSet::new();
        let reserved = ["events", "information_schema"];
        let mut check_name = |kind: &str, name: &str| -> Result<()> {
            if !is_identifier(name) {
                return Err(Error::Invalid(format!("{kind} name {name:?} must be a lower-case identifier ([a-z_][a-z0-9_]*)")));
            }
            if reserved.contains(&name) || name.ends_with("_current") {
                return Err(Error::Invalid(format!("{kind} name {name:?} is reserved")));
            }
            if !names.insert(name.to_owned()) {
                return Err(Error::Invalid(format!("{kind} name {name:?} is used twice")));
            }
            Ok(())
        };
        for p in &self.projections {
            check_name("projection", &p.name)?;
            let mut cols = HashSet::new();
            for c in &p.columns {
                let at = format!("projection {:?} column {:?}", p.name, c.name);
                if !is_identifier(&c.name) || SNAPSHOT_COLUMNS.contains(&c.name.as_str()) || !cols.insert(c.name.as_str()) {
                    return Err(Error::Invalid(format!("{at}: name must be a new lower-case identifier, not one of {SNAPSHOT_COLUMNS:?}")));
                }
                let ty = ColumnType::parse(&c.ty).ok_or_else(|| Error::Invalid(format!("{at}: unknown type {:?}", c.ty)))?;
                match (c.fold, &c.path, &c.field) {
                    (Fold::Count, None, None) => {}
                    (Fold::Count, _, _) => return Err(Error::Invalid(format!("{at}: `count` takes no `path` or `field`"))),
                    (_, Some(_), Some(_)) => return Err(Error::Invalid(format!("{at}: give `path` or `field`, not both"))),
                    (_, None, None) => return Err(Error::Invalid(format!("{at}: needs a `path` or a `field`"))),
                    (_, Some(path), None) => {
                        JsonPath::parse(path).map_err(|e| Error::Invalid(format!("{at}: {e}")))?;
                    }
                    (_, None, Some(field)) => {
                        if !ENVELOPE_FIELDS.contains(&field.as_str()) {
                            return Err(Error::Invalid(format!("{at}: unknown field {field:?}; one of {ENVELOPE_FIELDS:?}")));
                        }
                    }
                }
                if c.fold == Fold::Sum && !matches!(ty, ColumnType::Bigint | ColumnType::Double | ColumnType::Decimal(..)) {
                    return Err(Error::Invalid(format!("{at}: `sum` needs a numeric type")));
                }
            }
        }
        for v in &self.views {
            check_name("view", &v.name)?;
            if v.sql.trim().is_empty() {
                return Err(Error::Invalid(format!("view {:?} has no SQL", v.name)));
            }
        }
        let mut types = HashSet::new();
        for t in &self.event_tables {
            if !types.insert(t.event_type.as_str()) {
                return Err(Error::Invalid(format!("event_table for {:?} is given twice", t.event_type)));
            }
            if let Some(name) = &t.name {
                check_name("event_table", name)?;
            }
        }
        if self.compaction.memory_limit_mb < MIN_COMPACTION_MEMORY_MB {
            return Err(Error::Invalid(format!(
                "compaction.memory_limit_mb must be at least {MIN_COMPACTION_MEMORY_MB}: below that the process's fixed buffers leave the sorts too little to spill with"
            )));
        }
        if self.compaction.target_file_mb == 0 || self.compaction.row_group_rows == 0 {
            return Err(Error::Invalid("compaction.target_file_mb and row_group_rows must be positive".into()));
        }
        let cutoff = self.query.bytes_scanned_cutoff;
        if cutoff != 0 && cutoff < 10_000_000 {
            return Err(Error::Invalid("query.bytes_scanned_cutoff must be 0 (off) or at least 10 MB (10000000), as in Athena".into()));
        }
        Ok(())
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_')) && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[lake]
url = "s3://my-bucket/lake"

[[projection]]
name = "orders"
aggregate_type = "Order"
delete_on = ["OrderDeleted"]
columns = [
  { name = "status",      fn = "last",  path = "$.status" },
  { name = "customer_id", fn = "first", path = "$.customer_id" },
  { name = "total",       fn = "last",  path = "$.total", type = "double" },
  { name = "items",       fn = "sum",   path = "$.quantity", type = "bigint", when = ["ItemAdded"] },
  { name = "placed_at",   fn = "first", field = "occurred_at", when = ["OrderPlaced"] },
  { name = "payments",    fn = "count", when = ["PaymentReceived"] },
]

[[view]]
name = "daily_revenue"
sql = "SELECT dt, count(*) AS orders FROM events WHERE event_type = 'OrderPlaced' GROUP BY dt"
"#;

    #[test]
    fn design_sample_parses() {
        let c = Config::parse(SAMPLE).unwrap();
        assert_eq!(c.lake_url(None), "s3://my-bucket/lake");
        assert_eq!(c.lake_url(Some("memory://x")), "memory://x");
        assert_eq!(c.projections[0].columns.len(), 6);
        assert_eq!(c.projections[0].columns[5].fold, Fold::Count);
        assert_eq!(c.views[0].name, "daily_revenue");
        assert_eq!(Config::default().lake_url(None), DEFAULT_LAKE);
    }

    #[test]
    fn mistakes_are_named() {
        let bad = |from: &str, to: &str| Config::parse(&SAMPLE.replace(from, to)).unwrap_err().to_string();
        assert!(bad("name = \"orders\"", "name = \"Orders\"").contains("lower-case identifier"));
        assert!(bad("name = \"orders\"", "name = \"events\"").contains("reserved"));
        assert!(bad("type = \"double\"", "type = \"float\"").contains("unknown type"));
        assert!(bad("path = \"$.status\"", "path = \"status\"").contains("must start with `$`"));
        assert!(bad("fn = \"count\"", "fn = \"count\", path = \"$.x\"").contains("takes no"));
        assert!(bad("fn = \"first\", field = \"occurred_at\"", "fn = \"first\", field = \"nope\"").contains("unknown field"));
        assert!(bad("[lake]", "[lake]\nbogus = 1").contains("unknown field"));
        assert!(bad("name = \"daily_revenue\"", "name = \"orders\"").contains("used twice"));
    }

    #[test]
    fn types_and_durations() {
        assert_eq!(ColumnType::parse("decimal(12, 2)"), Some(ColumnType::Decimal(12, 2)));
        assert_eq!(ColumnType::parse("decimal(2,3)"), None);
        assert_eq!(parse_duration("30m").unwrap().as_secs(), 1800);
        assert_eq!(parse_duration("2 h").unwrap().as_secs(), 7200);
        assert!(parse_duration("soon").is_err());
    }
}
