//! The compactor: raw events settle into curated Delta Lake tables.
//!
//! ```text
//!  raw/events/dt=D/…  ─┐
//!  tables/events dt=D ─┴▶ dedup by event_id, sort ─▶ tables/events dt=D   (one commit per day)
//!                                                        │
//!                    snapshot(D−1) ⊕ events(D) ──────────┼▶ tables/<projection> snapshot_date=D
//!                    view SQL over events(D) ────────────┴▶ tables/<view> dt=D
//! ```
//!
//! Concurrency rules: every commit is optimistic against the snapshot it was
//! planned from and is never retried blindly; a lost race re-plans the day
//! from fresh state. Data files and manifests are written before the commit
//! that references them, so a crash at any step leaves at most unreferenced
//! files (removed by `vacuum`) and a re-run reaches the same tables.
//! See `docs/adr/0002-exactly-once.md`.

pub mod commit;
pub mod derived;
pub mod events;
pub mod lambda;
pub mod maintenance;
pub mod report;
pub mod restate;
mod typed;
pub mod write;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use chrono::{Days, NaiveDate, Utc};
use sediment_engine::session::{SessionOptions, session};
use sediment_engine::state::{ManifestCache, curated_days, raw_days};
use sediment_lake::config::CompactionSection;
use sediment_lake::paths::{EVENTS_TABLE, report_key};
use sediment_lake::{Config, Lake};

pub use report::{RunReport, RunReportV1};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Storage(#[from] sediment_lake::storage::Error),
    #[error(transparent)]
    State(#[from] sediment_engine::state::Error),
    #[error(transparent)]
    Delta(#[from] sediment_engine::delta::Error),
    #[error(transparent)]
    Commit(#[from] commit::Error),
    #[error(transparent)]
    Write(#[from] write::Error),
    #[error("query engine: {0}")]
    Engine(#[from] datafusion::error::DataFusionError),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the compactor process needs besides DataFusion's memory pool (the
/// runtime, merge cursors and read-ahead of spilled runs, the Parquet writer,
/// upload buffers, allocator slack), in MiB; the pool gets half of the rest.
/// Measured with `bench/memory` (ADR 0005).
pub const PROCESS_RESERVE_MB: u64 = 128;

/// Bytes a row takes decoded in memory (Arrow arrays, sort rows) per byte
/// of its zstd Parquet: JSON payloads compress about five to one.
const DECODED_PER_STORED_BYTE: u64 = 6;

/// Sorted runs merged at most.
pub const MERGE_MAX_RUNS: usize = 256;

/// Batch sizes a merge may use, largest first: wide rows take a smaller
/// batch so that every run's batches fit together.
const MERGE_BATCH_ROWS: [usize; 3] = [4096, 2048, 1024];

/// What a sorted run of a merge holds in memory as it streams, from its
/// file's footer: the largest row group it reads, as stored (the reader
/// fetches a row group's column chunks whole), and the decoded size of a
/// row (the merge holds about two batches of each run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunShape {
    pub stored_bytes: u64,
    pub row_bytes: u64,
}

/// The DataFusion memory pool for a compaction memory limit, in bytes.
pub fn pool_bytes(memory_limit_mb: u64) -> usize {
    (memory_limit_mb.saturating_sub(PROCESS_RESERVE_MB) as usize / 2) << 20
}

/// Tuning that every step of a run shares.
#[derive(Debug, Clone)]
pub struct Settings {
    pub compaction: CompactionSection,
}

impl Settings {
    /// A fresh DataFusion session bounded by the compaction memory limit.
    pub fn session(&self, lake: &Lake) -> Result<datafusion::prelude::SessionContext> {
        self.session_with_partitions(lake, 1)
    }

    /// Whether a day whose inputs take `stored_bytes` in Parquet fits the
    /// memory pool decoded, so its dedup and sort can run on every core: the
    /// hash repartition that splits the work cannot spill, so a day that may
    /// not fit keeps the single-partition plan, whose sorts spill.
    pub fn fits_in_memory(&self, stored_bytes: u64) -> bool {
        stored_bytes.saturating_mul(DECODED_PER_STORED_BYTE) <= pool_bytes(self.compaction.memory_limit_mb) as u64
    }

    /// The batch size at which `runs` can be merged under the memory limit,
    /// if one can: each run streams with a row group and two batches in
    /// flight, outside the pool's accounting. Together they get half the
    /// pool's size: the merge's output batches, the winners pass and the
    /// writer's open row group (a task per column, each holding its pages
    /// until the row group closes) come on top, also outside the pool —
    /// measured on the wide shape (`bench/shapes.py wide`), a budget of the
    /// whole pool peaked at 452 MiB under a 384 MiB limit.
    pub fn merge_batch_rows(&self, runs: &[RunShape]) -> Option<usize> {
        if runs.len() > MERGE_MAX_RUNS {
            return None;
        }
        let budget = pool_bytes(self.compaction.memory_limit_mb) as u64 / 2;
        MERGE_BATCH_ROWS.into_iter().find(|&rows| {
            let in_flight = runs
                .iter()
                .map(|r| r.stored_bytes.saturating_add(r.row_bytes.saturating_mul(2 * rows as u64)))
                .fold(0u64, u64::saturating_add);
            in_flight <= budget
        })
    }

    /// The sizes of the files a run writes: `compaction.target_file_mb`, and
    /// row groups cut at an eighth of the memory pool encoded, so that the
    /// two the writer holds stay small beside the pool under a small limit
    /// (on the wide shape, 128Ki-row row groups took the process 9% over a
    /// 256 MiB limit); under the default 1 GiB, 56 MiB.
    pub fn file_sizes(&self) -> write::FileSizes {
        write::FileSizes {
            file_bytes: self.compaction.target_file_mb << 20,
            row_group_bytes: pool_bytes(self.compaction.memory_limit_mb) / 8,
        }
    }

    /// [`Settings::session`] with `partitions` parallel partitions (see [`Settings::fits_in_memory`]).
    pub fn session_with_partitions(&self, lake: &Lake, partitions: usize) -> Result<datafusion::prelude::SessionContext> {
        self.session_with_batches(lake, partitions, 4096)
    }

    /// [`Settings::session_with_partitions`] with batches of `batch_rows` rows.
    pub fn session_with_batches(&self, lake: &Lake, partitions: usize, batch_rows: usize) -> Result<datafusion::prelude::SessionContext> {
        // One partition: the dedup window then needs no hash repartition,
        // whose buffers cannot spill and starved the sort's merge under a
        // small memory limit; the output is one sorted stream anyway.
        //
        // The limit bounds the process, not only DataFusion's pool: the
        // merge of spilled runs, the Parquet reader and writer, the object
        // store's upload buffers and the allocator's slack are outside the
        // pool's accounting, so the pool gets only part of the limit.
        let opts = SessionOptions {
            memory_limit: pool_bytes(self.compaction.memory_limit_mb),
            target_partitions: partitions.max(1),
            batch_size: batch_rows.max(1),
        };
        let ctx = session(lake, &opts)?;
        sediment_trino::register(&ctx);
        Ok(ctx)
    }
}

/// Which days a run considers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaySelection {
    One(NaiveDate),
    Range(NaiveDate, NaiveDate),
    All,
    /// Closed days (ended at least the grace period before `now`) — the
    /// scheduled mode: yesterday and older, and any dirty day.
    Closed {
        now: chrono::DateTime<Utc>,
    },
}

/// A compaction run over a lake.
#[derive(Debug, Clone)]
pub struct Compactor {
    lake: Lake,
    config: Config,
    manifests: Arc<ManifestCache>,
}

/// Progress callbacks of a run (the CLI draws a bar from them).
pub trait Progress: Send + Sync {
    fn start(&self, _days: usize) {}
    fn day_done(&self, _report: &events::DayReport) {}
}

impl Progress for () {}

impl Compactor {
    pub fn new(lake: Lake, config: Config) -> Self {
        Self { lake, config, manifests: Arc::new(ManifestCache::default()) }
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    fn settings(&self) -> Settings {
        Settings { compaction: self.config.compaction.clone() }
    }

    /// The days `selection` names that have raw or curated data.
    pub async fn days(&self, selection: &DaySelection) -> Result<Vec<NaiveDate>> {
        let mut days: BTreeSet<NaiveDate> = raw_days(&self.lake).await?.into_iter().collect();
        if let Some(t) = sediment_engine::delta::open(&self.lake, EVENTS_TABLE).await? {
            for f in sediment_engine::delta::snapshot_files(&t)? {
                if let Some(d) = f.partition_values.get("dt").and_then(|v| v.as_deref()).and_then(|v| v.parse().ok()) {
                    days.insert(d);
                }
            }
        }
        Ok(days
            .into_iter()
            .filter(|d| match selection {
                DaySelection::One(x) => d == x,
                DaySelection::Range(a, b) => a <= d && d <= b,
                DaySelection::All => true,
                DaySelection::Closed { now } => {
                    let end = d.checked_add_days(Days::new(1)).and_then(|n| n.and_hms_opt(0, 0, 0)).map(|t| t.and_utc());
                    let grace = chrono::Duration::from_std(self.config.compaction.grace_period).unwrap_or_default();
                    end.is_some_and(|e| e + grace <= *now)
                }
            })
            .collect())
    }

    /// Compacts the selected days, then brings projections and views up to
    /// date. `rebuild` rewrites every selected day and every derived table.
    pub async fn run(&self, selection: &DaySelection, rebuild: bool, progress: &dyn Progress) -> Result<RunReportV1> {
        let started = Instant::now();
        let started_at = Utc::now();
        self.lake.check_conditional_writes().await?;
        let settings = self.settings();
        let days = self.days(selection).await?;
        progress.start(days.len());
        let mut report = RunReportV1 {
            run: started_at.format("%Y%m%dT%H%M%S%.3fZ").to_string(),
            lake: self.lake.url().to_owned(),
            started_at: Some(started_at),
            rebuild,
            ..Default::default()
        };
        for dt in days {
            let day = events::compact_day(&self.lake, &settings, &self.manifests, dt, rebuild).await?;
            progress.day_done(&day);
            report.days.push(day);
        }
        let committed: BTreeSet<NaiveDate> = report.days.iter().filter(|d| d.committed).map(|d| d.dt).collect();
        let has_derived = !self.config.projections.is_empty() || !self.config.views.is_empty();
        let curated = match sediment_engine::delta::open(&self.lake, EVENTS_TABLE).await? {
            Some(t) if has_derived || !committed.is_empty() => {
                let files = sediment_engine::delta::snapshot_files(&t)?;
                curated_days(&self.lake, &self.manifests, EVENTS_TABLE, files, &|_| true).await?
            }
            _ => Default::default(),
        };
        // Schema drift of the days committed, from every current day's shapes.
        if !committed.is_empty() {
            for registry in sediment_engine::state::payload_registries(&curated) {
                for version in &registry.versions {
                    for day in version.history.iter().filter(|d| committed.contains(&d.dt)) {
                        report.schema_drift.extend(day.changes.iter().map(|change| report::SchemaDrift {
                            dt: day.dt,
                            event_type: registry.event_type.clone(),
                            event_version: version.event_version,
                            change: change.clone(),
                        }));
                    }
                }
            }
            report.schema_drift.sort_by(|a, b| (a.dt, &a.event_type, a.event_version).cmp(&(b.dt, &b.event_type, b.event_version)));
        }
        // Derived tables follow every curated day (not only the selected ones):
        // a recompacted day invalidates every later snapshot.
        if has_derived {
            for p in &self.config.projections {
                report.derived.extend(derived::build_projection(&self.lake, &settings, p, &curated, rebuild).await?);
            }
            for v in &self.config.views {
                report.derived.extend(derived::build_view(&self.lake, &settings, v, &curated, rebuild).await?);
            }
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        if report.committed_days() > 0 || !report.derived.is_empty() {
            let body = serde_json::to_vec_pretty(&RunReport::V1(report.clone())).map_err(|e| Error::Internal(e.to_string()))?;
            let key = report_key(&report.run, &short_id());
            self.lake.put(&key, body.into()).await?;
        }
        Ok(report)
    }
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}
#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(memory_limit_mb: u64) -> Settings {
        Settings { compaction: CompactionSection { memory_limit_mb, ..CompactionSection::default() } }
    }

    #[test]
    fn merges_take_the_largest_batch_their_runs_fit_in() {
        let narrow = RunShape { stored_bytes: 1 << 20, row_bytes: 200 };
        let wide = RunShape { stored_bytes: 1 << 20, row_bytes: 1000 };
        // 1 GiB: a pool of 448 MiB, 224 MiB for the runs.
        let s = settings(1024);
        assert_eq!(s.merge_batch_rows(&[narrow; 48]), Some(4096));
        // 20 × (1 MiB + 2 × 4096 × 1000 B) ≈ 176 MiB fits; 40 runs need 2,048-row batches.
        assert_eq!(s.merge_batch_rows(&[wide; 20]), Some(4096));
        assert_eq!(s.merge_batch_rows(&[wide; 40]), Some(2048));
        assert_eq!(s.merge_batch_rows(&[wide; 60]), Some(1024));
        assert_eq!(s.merge_batch_rows(&[wide; 100]), None);
        assert_eq!(s.merge_batch_rows(&[narrow; 257]), None);
        // 256 MiB: a pool of 64 MiB.
        assert_eq!(settings(256).merge_batch_rows(&[wide; 48]), None);
        assert_eq!(settings(256).merge_batch_rows(&[]), Some(4096));
    }
}
