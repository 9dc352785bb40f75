//! Run reports: versioned JSON in `_reports/` and a summary on stdout.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::derived::DerivedDayReport;
use crate::events::DayReport;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "version")]
pub enum RunReport {
    #[serde(rename = "1")]
    V1(RunReportV1),
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReportV1 {
    pub run: String,
    pub lake: String,
    pub started_at: Option<DateTime<Utc>>,
    pub duration_ms: u64,
    pub rebuild: bool,
    pub days: Vec<DayReport>,
    pub derived: Vec<DerivedDayReport>,
    /// Changes to payload schemas that began on a day this run committed:
    /// a field appeared, widened, became mixed or went absent, a version or
    /// type seen for the first time. Each lands; none stops the run.
    pub schema_drift: Vec<SchemaDrift>,
}

/// One change of an event type's payload schema, under the day it began.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaDrift {
    pub dt: chrono::NaiveDate,
    pub event_type: String,
    pub event_version: i32,
    #[serde(flatten)]
    pub change: sediment_lake::payload_schema::Change,
}

impl std::fmt::Display for SchemaDrift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use sediment_lake::payload_schema::What;
        write!(f, "{}  payload of {} v{}: ", self.dt, self.event_type, self.event_version)?;
        match &self.change.what {
            What::Appeared { shape } if self.change.path == "$" => write!(f, "first events of this version, {}", shape.trino_type()),
            _ => write!(f, "{}", self.change),
        }
    }
}

/// The fields of a report that `status` reads back.
#[derive(Debug, Clone, Deserialize)]
pub struct ReportHead {
    pub run: String,
    pub started_at: Option<DateTime<Utc>>,
    pub duration_ms: u64,
}

impl RunReportV1 {
    /// Days committed in this run.
    pub fn committed_days(&self) -> usize {
        self.days.iter().filter(|d| d.committed).count()
    }

    /// One line per committed day plus a total.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for d in self.days.iter().filter(|d| d.committed) {
            out.push_str(&format!(
                "{}  raw files {:>4}  rows in {:>9}  duplicates {:>7}  rows out {:>9}  files {:>2}  {:>10}  typed {:>10}  {:>6} ms\n",
                d.dt,
                d.raw_files_read,
                d.rows_in,
                d.duplicates,
                d.rows_out,
                d.files_written,
                indicatif_bytes(d.bytes_written),
                indicatif_bytes(d.typed_bytes_written),
                d.duration_ms
            ));
        }
        for d in &self.derived {
            let errors: u64 = d.cast_errors.values().sum();
            out.push_str(&format!(
                "{}  {:<20} rows {:>9}  cast errors {:>5}  restated {:>6}  {:>6} ms\n",
                d.dt, d.table, d.rows, errors, d.restated_rows, d.duration_ms
            ));
        }
        for d in &self.schema_drift {
            out.push_str(&format!("{d}\n"));
        }
        let restated: u64 = self.derived.iter().map(|d| d.restated_rows).sum();
        let skipped = self.days.len() - self.committed_days();
        out.push_str(&format!(
            "compacted {} day(s) ({} unchanged), rebuilt {} derived day(s), restated {} published row(s) in {:.1}s",
            self.committed_days(),
            skipped,
            self.derived.len(),
            restated,
            self.duration_ms as f64 / 1000.0
        ));
        out
    }
}

fn indicatif_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}
