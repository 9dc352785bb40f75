//! The lake at a glance, per day: raw files, compacted, dirty or hot, rows,
//! last compaction, freshness. Shared by `sediment status` and the query
//! service's `GET /v1/lake` (the console's partitions view).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use sediment_lake::Lake;
use sediment_lake::payload_schema::RegistryV1;
use serde::Serialize;

use crate::state::{ManifestCache, Result, load_events, payload_registries};

/// One day of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct DayStatus {
    pub dt: NaiveDate,
    pub raw_files: usize,
    pub raw_bytes: u64,
    pub uncovered_files: usize,
    /// `compacted`, `dirty` (compacted, with newer raw files), or `hot` (never compacted).
    pub state: &'static str,
    pub curated_rows: Option<u64>,
    pub last_compaction: Option<DateTime<Utc>>,
    /// When the newest raw file of the day landed.
    pub newest_raw: Option<DateTime<Utc>>,
}

/// The lake at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct LakeStatus {
    pub lake: String,
    pub events_version: Option<i64>,
    pub days: Vec<DayStatus>,
    /// Newest raw file anywhere: the freshness of the lake.
    pub newest_raw: Option<DateTime<Utc>>,
    pub uncovered_files: usize,
    /// Per event type, the payload shape of each version and the day each
    /// change to it began, over the curated days.
    pub payload_schemas: Vec<RegistryV1>,
}

pub async fn status(lake: &Lake) -> Result<LakeStatus> {
    let cache = ManifestCache::default();
    let state = load_events(lake, &cache, &|_| true).await?;
    let uncovered = state.uncovered();
    let mut days = Vec::new();
    let all: BTreeMap<NaiveDate, ()> = state.days().into_iter().map(|d| (d, ())).collect();
    for dt in all.keys() {
        let raw = state.raw.get(dt).map(Vec::as_slice).unwrap_or(&[]);
        let unc = uncovered.get(dt).map_or(0, Vec::len);
        let curated = state.curated.get(dt);
        days.push(DayStatus {
            dt: *dt,
            raw_files: raw.len(),
            raw_bytes: raw.iter().map(|o| o.size).sum(),
            uncovered_files: unc,
            state: match (curated.is_some(), unc > 0) {
                (true, false) => "compacted",
                (true, true) => "dirty",
                (false, _) => "hot",
            },
            curated_rows: curated.map(|c| c.manifest.rows_out),
            last_compaction: curated.map(|c| c.manifest.created_at),
            newest_raw: raw.iter().map(|o| o.last_modified).max(),
        });
    }
    Ok(LakeStatus {
        lake: lake.url().to_owned(),
        events_version: state.version,
        newest_raw: days.iter().filter_map(|d| d.newest_raw).max(),
        uncovered_files: uncovered.values().map(Vec::len).sum(),
        payload_schemas: payload_registries(&state.curated),
        days,
    })
}
