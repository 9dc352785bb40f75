//! Every object key of the lake layout is built here, and only here.
//!
//! Keys are relative to the lake root (the `prefix` of a lake URL); the
//! [`crate::Lake`] joins them onto its store.

use chrono::NaiveDate;

/// Prefix of the raw zone.
pub const RAW_PREFIX: &str = "raw/events";
/// Prefix of quarantined records.
pub const QUARANTINE_PREFIX: &str = "quarantine";
/// Prefix of the curated Delta tables.
pub const TABLES_PREFIX: &str = "tables";
/// Prefix of coverage manifests (which raw files a curated day holds).
pub const MANIFESTS_PREFIX: &str = "_manifests";
/// Prefix of compaction run reports.
pub const REPORTS_PREFIX: &str = "_reports";
/// Prefix of Athena-style query results.
pub const RESULTS_PREFIX: &str = "_results";
/// Name of the curated events table.
pub const EVENTS_TABLE: &str = "events";

/// Prefix of the typed copies of curated days: per event type, the day's
/// rows with the payload's fields as typed columns (ADR 0018).
pub const TYPED_PREFIX: &str = "typed";

/// Root of a table's typed copies: `typed/<table>`.
pub fn typed_root(table: &str) -> String {
    format!("{TYPED_PREFIX}/{table}")
}

/// A typed file of one compaction run of one day, relative to
/// [`typed_root`]: `dt=YYYY-MM-DD/<run_id>/type-<nnnn>-part-<nnnnn>.zstd.parquet`
/// (event types are numbered: their names may hold any character; the
/// coverage manifest says which type a number is).
pub fn typed_file(dt: NaiveDate, run_id: &str, type_index: usize, part: usize) -> String {
    format!("dt={dt}/{run_id}/type-{type_index:04}-part-{part:05}.zstd.parquet")
}

/// The run id of a typed file's key made from [`typed_root`] and [`typed_file`].
pub fn run_id_of_typed_key(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(TYPED_PREFIX)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let (_table, _dt, run, _file) = (parts.next()?, parts.next()?.strip_prefix("dt=")?, parts.next()?, parts.next()?);
    (parts.next().is_none() && !run.is_empty()).then_some(run)
}

/// Where the compactor records what rebuilds of published derived days changed.
pub const RESTATEMENTS_PREFIX: &str = "_restatements";

/// The query table over the restatement files.
pub const RESTATEMENTS_TABLE: &str = "sediment_restatements";

/// The restatement file of one derived day's run.
pub fn restatement_key(table: &str, dt: NaiveDate, run_id: &str) -> String {
    format!("{RESTATEMENTS_PREFIX}/{table}/dt={dt}/{run_id}.parquet")
}

/// A raw Parquet file: `raw/events/dt=YYYY-MM-DD/hour=HH/<name>.parquet`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawFile {
    pub dt: NaiveDate,
    pub hour: u32,
    pub name: String,
}

impl RawFile {
    /// `name` is the deterministic batch name, without extension.
    pub fn new(dt: NaiveDate, hour: u32, name: impl Into<String>) -> Self {
        Self { dt, hour, name: name.into() }
    }

    pub fn key(&self) -> String {
        format!("{RAW_PREFIX}/dt={}/hour={:02}/{}.parquet", self.dt, self.hour, self.name)
    }

    /// Parses a key produced by [`RawFile::key`]; `None` for anything else.
    pub fn parse(key: &str) -> Option<Self> {
        let rest = key.strip_prefix(RAW_PREFIX)?.strip_prefix("/dt=")?;
        let (dt, rest) = rest.split_once("/hour=")?;
        let (hour, name) = rest.split_once('/')?;
        let name = name.strip_suffix(".parquet")?;
        if name.is_empty() || name.contains('/') || hour.len() != 2 {
            return None;
        }
        let hour: u32 = hour.parse().ok().filter(|h| *h < 24)?;
        Some(Self { dt: dt.parse().ok()?, hour, name: name.to_owned() })
    }
}

/// The listing prefix of one day of the raw zone.
pub fn raw_day_prefix(dt: NaiveDate) -> String {
    format!("{RAW_PREFIX}/dt={dt}/")
}

/// A quarantine file: `quarantine/dt=YYYY-MM-DD/<name>.json` (NDJSON error records).
/// `dt` is the arrival date: a bad record may carry no usable event time.
pub fn quarantine_key(dt: NaiveDate, name: &str) -> String {
    format!("{QUARANTINE_PREFIX}/dt={dt}/{name}.json")
}

/// Root of a curated Delta table: `tables/<name>`.
pub fn table_root(name: &str) -> String {
    format!("{TABLES_PREFIX}/{name}")
}

/// Coverage manifest of one compaction of one day of a table:
/// `_manifests/<table>/dt=YYYY-MM-DD/<run_id>.json`.
pub fn manifest_key(table: &str, dt: NaiveDate, run_id: &str) -> String {
    format!("{MANIFESTS_PREFIX}/{table}/dt={dt}/{run_id}.json")
}

/// A compaction run report: `_reports/compaction/<started>-<run>.json`.
pub fn report_key(started: &str, run: &str) -> String {
    format!("{REPORTS_PREFIX}/compaction/{started}-{run}.json")
}

/// Name of a curated data file inside a Delta table. The run id is part of
/// the name so a reader can find the day's coverage manifest from the
/// snapshot's file list alone (see `docs/adr/0002-exactly-once.md`).
pub fn curated_file(partition: &str, dt: NaiveDate, run_id: &str, part: usize) -> String {
    format!("{partition}={dt}/part-{part:05}-{run_id}.zstd.parquet")
}

/// The run id inside a curated file name made by [`curated_file`].
pub fn run_id_of_curated_file(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next()?;
    let rest = name.strip_prefix("part-")?.strip_suffix(".zstd.parquet")?;
    let (_, run) = rest.split_once('-')?;
    (!run.is_empty()).then_some(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn exact_strings() {
        let f = RawFile::new(d("2026-11-02"), 7, "sqs-00ff");
        assert_eq!(f.key(), "raw/events/dt=2026-11-02/hour=07/sqs-00ff.parquet");
        assert_eq!(RawFile::parse(&f.key()), Some(f));
        assert_eq!(raw_day_prefix(d("2026-11-02")), "raw/events/dt=2026-11-02/");
        assert_eq!(quarantine_key(d("2026-11-02"), "cli-ab"), "quarantine/dt=2026-11-02/cli-ab.json");
        assert_eq!(table_root("orders"), "tables/orders");
        assert_eq!(manifest_key("events", d("2026-11-02"), "r1"), "_manifests/events/dt=2026-11-02/r1.json");
        assert_eq!(curated_file("dt", d("2026-11-02"), "0123abcd", 3), "dt=2026-11-02/part-00003-0123abcd.zstd.parquet");
        assert_eq!(run_id_of_curated_file("dt=2026-11-02/part-00003-0123abcd.zstd.parquet"), Some("0123abcd"));
        let typed = format!("{}/{}", typed_root("events"), typed_file(d("2026-11-02"), "0123abcd", 2, 1));
        assert_eq!(typed, "typed/events/dt=2026-11-02/0123abcd/type-0002-part-00001.zstd.parquet");
        assert_eq!(run_id_of_typed_key(&typed), Some("0123abcd"));
        assert_eq!(run_id_of_typed_key("typed/events/dt=2026-11-02/x.parquet"), None);
    }

    #[test]
    fn foreign_keys_are_not_raw_files() {
        for key in [
            "raw/events/dt=2026-11-02/hour=7/x.parquet",
            "raw/events/dt=2026-13-02/hour=07/x.parquet",
            "raw/events/dt=2026-11-02/hour=24/x.parquet",
            "raw/events/dt=2026-11-02/hour=07/x.json",
            "raw/events/dt=2026-11-02/hour=07/.parquet",
            "raw/other/dt=2026-11-02/hour=07/x.parquet",
        ] {
            assert_eq!(RawFile::parse(key), None, "{key}");
        }
        assert_eq!(run_id_of_curated_file("dt=2026-11-02/part-00000.parquet"), None);
    }
}
