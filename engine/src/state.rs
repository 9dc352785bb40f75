//! What `events` is made of at one instant: curated days and uncovered raw files.
//!
//! The order of reads is what makes the union exactly-once (see
//! `docs/adr/0002-exactly-once.md`): raw files are listed *first*, the Delta
//! snapshot is loaded *after*, and a raw file is shown from raw only if the
//! snapshot's coverage manifests do not name it. Manifests are cumulative and
//! the table only moves forward, so every listed raw file is either in the
//! snapshot's curated day or shown from raw — never both, never neither.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use sediment_lake::manifest::{Manifest, ManifestV1};
use sediment_lake::paths::{EVENTS_TABLE, RAW_PREFIX, RawFile, manifest_key, raw_day_prefix, run_id_of_curated_file, table_root};
use sediment_lake::token::Token;
use sediment_lake::{Lake, storage};

use crate::delta::{self, SnapshotFile};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Storage(#[from] storage::Error),
    #[error(transparent)]
    Delta(#[from] delta::Error),
    #[error("curated day {dt} of {table} mixes files of runs {runs:?}")]
    MixedRuns { table: String, dt: NaiveDate, runs: Vec<String> },
    #[error("curated day {dt} of {table} has no coverage manifest at {key}")]
    MissingManifest { table: String, dt: NaiveDate, key: String },
    #[error("coverage manifest {key} is unreadable: {message}")]
    BadManifest { key: String, message: String },
    #[error("curated file {path} of {table} has no valid dt partition")]
    BadPartition { table: String, path: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A raw object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawObject {
    pub file: RawFile,
    pub key: String,
    pub size: u64,
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// One curated day of the events table.
#[derive(Debug, Clone)]
pub struct CuratedDay {
    pub manifest: Arc<ManifestV1>,
    /// Data files, lake-relative keys.
    pub files: Vec<SnapshotFile>,
}

impl CuratedDay {
    pub fn key_of(file: &SnapshotFile) -> String {
        format!("{}/{}", table_root(EVENTS_TABLE), file.path)
    }
}

/// The events table at one instant.
#[derive(Debug, Clone, Default)]
pub struct EventsState {
    /// Delta version of `tables/events`, if the table exists.
    pub version: Option<i64>,
    pub curated: BTreeMap<NaiveDate, CuratedDay>,
    /// Listed raw files of the considered days.
    pub raw: BTreeMap<NaiveDate, Vec<RawObject>>,
}

impl EventsState {
    /// Raw files whose events are not in a curated day, by day.
    pub fn uncovered(&self) -> BTreeMap<NaiveDate, Vec<&RawObject>> {
        let mut out: BTreeMap<NaiveDate, Vec<&RawObject>> = BTreeMap::new();
        for (dt, objects) in &self.raw {
            let covered: Option<HashSet<&str>> = self.curated.get(dt).map(|c| c.manifest.raw_files.iter().map(String::as_str).collect());
            for o in objects {
                if !covered.as_ref().is_some_and(|c| c.contains(o.key.as_str())) {
                    out.entry(*dt).or_default().push(o);
                }
            }
        }
        out
    }

    /// Days with any data, curated or raw.
    pub fn days(&self) -> BTreeSet<NaiveDate> {
        self.curated.keys().chain(self.raw.keys()).copied().collect()
    }
}

/// Raw files by day.
pub type RawByDay = BTreeMap<NaiveDate, Vec<RawObject>>;

/// Immutable manifests, cached by key, the last loaded snapshot of each
/// Delta table (brought up to date on every use), and, when a TTL is set,
/// the last listing of all raw files.
#[derive(Debug, Default)]
pub struct ManifestCache {
    entries: Mutex<HashMap<String, Arc<ManifestV1>>>,
    pub tables: delta::TableCache,
    raw_listing_ttl: Duration,
    /// The last listing of all raw files, with the instant its LIST began.
    raw_listing: Mutex<Option<(Instant, Arc<RawByDay>)>>,
    /// A listing begun before this instant is not reused: a consistency
    /// check saw raw files that older listings may lack.
    raw_listing_floor: Mutex<Option<Instant>>,
    /// Curated `events` days last loaded with a manifest that records no
    /// counts (written before manifests had them): while any is known,
    /// counts are not answered from manifests (ADR 0010).
    uncounted: Mutex<BTreeSet<NaiveDate>>,
}

impl ManifestCache {
    /// Whether every curated `events` day loaded so far had counts in its
    /// manifest, as of its latest load.
    pub fn counts_complete(&self) -> bool {
        self.uncounted.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    fn note_counts(&self, curated: &BTreeMap<NaiveDate, CuratedDay>) {
        let mut uncounted = self.uncounted.lock().unwrap_or_else(|p| p.into_inner());
        for (dt, day) in curated {
            if day.manifest.counts.is_some() {
                uncounted.remove(dt);
            } else {
                uncounted.insert(*dt);
            }
        }
    }

    /// A cache that reuses a listing of all raw files for `ttl` (ADR 0006).
    pub fn with_raw_listing_ttl(ttl: Duration) -> Self {
        Self { raw_listing_ttl: ttl, ..Self::default() }
    }

    fn fresh_raw_listing(&self) -> Option<Arc<RawByDay>> {
        let floor = *self.raw_listing_floor.lock().unwrap_or_else(|p| p.into_inner());
        let guard = self.raw_listing.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().filter(|(at, _)| at.elapsed() < self.raw_listing_ttl && floor.is_none_or(|f| *at >= f)).map(|(_, l)| Arc::clone(l))
    }

    /// From now on, reuse no listing begun before `at`.
    pub fn refuse_listings_before(&self, at: Instant) {
        let mut floor = self.raw_listing_floor.lock().unwrap_or_else(|p| p.into_inner());
        *floor = Some(floor.map_or(at, |f| f.max(at)));
    }

    pub async fn get(&self, lake: &Lake, key: &str) -> Result<Option<Arc<ManifestV1>>> {
        if let Some(m) = self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
            return Ok(Some(Arc::clone(m)));
        }
        let Some(bytes) = lake.get_opt(key).await? else { return Ok(None) };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| Error::BadManifest { key: key.to_owned(), message: e.to_string() })?;
        let m = Arc::new(manifest.v1().clone());
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_owned(), Arc::clone(&m));
        Ok(Some(m))
    }
}

/// The days that have raw data (one delimited LIST).
pub async fn raw_days(lake: &Lake) -> Result<Vec<NaiveDate>> {
    let dirs = lake.list_dirs(RAW_PREFIX).await?;
    let mut days: Vec<NaiveDate> =
        dirs.iter().filter_map(|d| d.rsplit('/').next().and_then(|s| s.strip_prefix("dt=")).and_then(|s| s.parse().ok())).collect();
    days.sort();
    Ok(days)
}

/// Above this many days, raw files are found by one LIST of all of
/// `raw/events/` (a page per 1,000 files on S3) rather than a LIST per day.
pub const LIST_PER_DAY_UP_TO: usize = 4;

fn raw_object(dt: NaiveDate, m: object_store::ObjectMeta) -> Option<RawObject> {
    let key = m.location.to_string();
    RawFile::parse(&key).filter(|f| f.dt == dt).map(|file| RawObject { file, key, size: m.size, last_modified: m.last_modified })
}

fn by_day(mut lists: Vec<(NaiveDate, Vec<RawObject>)>) -> BTreeMap<NaiveDate, Vec<RawObject>> {
    for (_, objects) in &mut lists {
        objects.sort_by(|a, b| a.key.cmp(&b.key));
    }
    lists.into_iter().filter(|(_, o)| !o.is_empty()).collect()
}

/// Every raw file, by day: one LIST of `raw/events/`.
pub async fn list_all_raw(lake: &Lake) -> Result<BTreeMap<NaiveDate, Vec<RawObject>>> {
    let mut lists: BTreeMap<NaiveDate, Vec<RawObject>> = BTreeMap::new();
    for m in lake.list(&format!("{RAW_PREFIX}/")).await? {
        let Some(dt) = RawFile::parse(m.location.as_ref()).map(|f| f.dt) else { continue };
        if let Some(o) = raw_object(dt, m) {
            lists.entry(dt).or_default().push(o);
        }
    }
    Ok(by_day(lists.into_iter().collect()))
}

/// Raw files of the given days: a LIST per day, concurrently, for a few
/// days; one LIST of the whole raw prefix for more.
pub async fn list_raw(lake: &Lake, days: &[NaiveDate]) -> Result<BTreeMap<NaiveDate, Vec<RawObject>>> {
    if days.len() > LIST_PER_DAY_UP_TO {
        let wanted: BTreeSet<NaiveDate> = days.iter().copied().collect();
        let mut all = list_all_raw(lake).await?;
        all.retain(|d, _| wanted.contains(d));
        return Ok(all);
    }
    let lists: Vec<(NaiveDate, Vec<RawObject>)> = futures::stream::iter(days.iter().copied())
        .map(|dt| async move {
            let metas = lake.list(&raw_day_prefix(dt)).await?;
            Ok::<_, Error>((dt, metas.into_iter().filter_map(|m| raw_object(dt, m)).collect()))
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    Ok(by_day(lists))
}

/// Raw files of the days `keep` accepts, for a query. With a TTL set, a
/// query over more than a few days reuses the last listing of all raw files
/// while it is younger than the TTL. A reused listing is older than the
/// snapshot read after it, so the union stays exactly once (ADR 0006).
async fn raw_for_query(
    lake: &Lake,
    cache: &ManifestCache,
    keep: &(dyn Fn(NaiveDate) -> bool + Send + Sync),
) -> Result<BTreeMap<NaiveDate, Vec<RawObject>>> {
    let kept = |all: &BTreeMap<NaiveDate, Vec<RawObject>>| all.iter().filter(|(d, _)| keep(**d)).map(|(d, o)| (*d, o.clone())).collect();
    if let Some(all) = cache.fresh_raw_listing()
        && all.keys().filter(|d| keep(**d)).count() > LIST_PER_DAY_UP_TO
    {
        return Ok(kept(&all));
    }
    let days: Vec<NaiveDate> = raw_days(lake).await?.into_iter().filter(|d| keep(*d)).collect();
    if days.len() <= LIST_PER_DAY_UP_TO || cache.raw_listing_ttl.is_zero() {
        return list_raw(lake, &days).await;
    }
    let began = Instant::now();
    let all = Arc::new(list_all_raw(lake).await?);
    *cache.raw_listing.lock().unwrap_or_else(|p| p.into_inner()) = Some((began, Arc::clone(&all)));
    Ok(kept(&all))
}

/// Groups a table snapshot's files by `dt` and finds each day's manifest.
pub async fn curated_days(
    lake: &Lake,
    cache: &ManifestCache,
    table: &str,
    files: Vec<SnapshotFile>,
    keep: &(dyn Fn(NaiveDate) -> bool + Send + Sync),
) -> Result<BTreeMap<NaiveDate, CuratedDay>> {
    let mut by_day: BTreeMap<NaiveDate, Vec<SnapshotFile>> = BTreeMap::new();
    for f in files {
        let dt = f
            .partition_values
            .get("dt")
            .and_then(|v| v.as_deref())
            .and_then(|v| v.parse::<NaiveDate>().ok())
            .ok_or_else(|| Error::BadPartition { table: table.to_owned(), path: f.path.clone() })?;
        if keep(dt) {
            by_day.entry(dt).or_default().push(f);
        }
    }
    let days: Vec<(NaiveDate, Vec<SnapshotFile>)> = by_day.into_iter().collect();
    let loaded: Vec<(NaiveDate, CuratedDay)> = futures::stream::iter(days)
        .map(|(dt, mut files)| async move {
            files.sort_by(|a, b| a.path.cmp(&b.path));
            let runs: BTreeSet<String> = files.iter().filter_map(|f| run_id_of_curated_file(&f.path)).map(str::to_owned).collect();
            let run = match (runs.len(), runs.iter().next()) {
                (1, Some(r)) => r.clone(),
                _ => return Err(Error::MixedRuns { table: table.to_owned(), dt, runs: runs.into_iter().collect() }),
            };
            let key = manifest_key(table, dt, &run);
            let manifest =
                cache.get(lake, &key).await?.ok_or_else(|| Error::MissingManifest { table: table.to_owned(), dt, key: key.clone() })?;
            Ok::<_, Error>((dt, CuratedDay { manifest, files }))
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    Ok(loaded.into_iter().collect())
}

/// Every event type's payload schema history, from the shapes the curated
/// days' manifests record (days without them are skipped).
pub fn payload_registries(curated: &BTreeMap<NaiveDate, CuratedDay>) -> Vec<sediment_lake::payload_schema::RegistryV1> {
    sediment_lake::payload_schema::registries(curated.iter().filter_map(|(dt, day)| day.manifest.shapes.as_deref().map(|s| (*dt, s))))
}

/// Reads the events table's state for the days `keep` accepts.
///
/// Order matters: raw listing strictly before the Delta snapshot (a reused
/// listing is older still).
pub async fn load_events(lake: &Lake, cache: &ManifestCache, keep: &(dyn Fn(NaiveDate) -> bool + Send + Sync)) -> Result<EventsState> {
    let raw = raw_for_query(lake, cache, keep).await?;
    let Some(table) = cache.tables.latest(lake, EVENTS_TABLE).await? else {
        return Ok(EventsState { version: None, curated: BTreeMap::new(), raw });
    };
    let files = delta::snapshot_files(&table)?;
    let curated = curated_days(lake, cache, EVENTS_TABLE, files, keep).await?;
    cache.note_counts(&curated);
    Ok(EventsState { version: table.version().map(|v| v as i64), curated, raw })
}

/// The files of `token` that `events` does not show yet.
///
/// A raw file is shown exactly once from the moment it is listed (from raw,
/// or from the curated day whose cumulative manifest names it, also after
/// vacuum deleted it). So the check lists the token's days afresh, then
/// reads the Delta snapshot, in the same order as [`load_events`]. When
/// nothing is missing, `cache` stops reusing listings older than this check,
/// so the query that follows sees what the check saw.
pub async fn unseen(lake: &Lake, cache: &ManifestCache, token: &Token) -> Result<Vec<RawFile>> {
    if token.is_empty() {
        return Ok(Vec::new());
    }
    let days = token.days();
    let began = Instant::now();
    let listed = list_raw(lake, &days.iter().copied().collect::<Vec<_>>()).await?;
    let curated = match cache.tables.latest(lake, EVENTS_TABLE).await? {
        Some(table) => curated_days(lake, cache, EVENTS_TABLE, delta::snapshot_files(&table)?, &|d| days.contains(&d)).await?,
        None => BTreeMap::new(),
    };
    let mut seen: HashSet<&str> = listed.values().flatten().map(|o| o.key.as_str()).collect();
    seen.extend(curated.values().flat_map(|c| c.manifest.raw_files.iter().map(String::as_str)));
    let missing: Vec<RawFile> = token.files().filter(|f| !seen.contains(f.key().as_str())).cloned().collect();
    if missing.is_empty() {
        cache.refuse_listings_before(began);
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// One LIST of the whole prefix finds what a LIST per day finds.
    #[tokio::test]
    async fn wide_listing_matches_per_day_listing() {
        let lake = Lake::open(&format!("memory://list-raw-{}", std::process::id())).unwrap();
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 9, d).unwrap();
        for d in 1..=8 {
            for (hour, name) in [(0, "a"), (13, "b"), (23, "c")] {
                lake.put(&RawFile::new(day(d), hour, format!("{name}{d}")).key(), Bytes::from_static(b"x")).await.unwrap();
            }
        }
        // Not raw files: ignored by both.
        lake.put(&format!("{RAW_PREFIX}/dt=2026-09-02/hour=01/notes.txt"), Bytes::from_static(b"x")).await.unwrap();
        let wanted: Vec<NaiveDate> = [1, 2, 3, 5, 6, 7].into_iter().map(day).collect();
        assert!(wanted.len() > LIST_PER_DAY_UP_TO);
        let wide = list_raw(&lake, &wanted).await.unwrap();
        let mut per_day = BTreeMap::new();
        for d in &wanted {
            per_day.append(&mut list_raw(&lake, &[*d]).await.unwrap());
        }
        assert_eq!(wide, per_day);
        assert_eq!(wide.len(), 6);
        assert!(wide.values().all(|objects| objects.len() == 3));
        assert!(!wide.contains_key(&day(4)) && !wide.contains_key(&day(8)));
    }

    /// A query over many days reuses the listing while it is younger than
    /// the TTL; a query over a few days, or with no TTL, lists afresh.
    #[tokio::test]
    async fn raw_listing_is_reused_within_its_ttl() {
        let lake = Lake::open(&format!("memory://list-ttl-{}", std::process::id())).unwrap();
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 9, d).unwrap();
        for d in 1..=6 {
            lake.put(&RawFile::new(day(d), 0, "a").key(), Bytes::from_static(b"x")).await.unwrap();
        }
        let all = |_: NaiveDate| true;
        let one = |d: NaiveDate| d == day(2);
        let count = |s: &EventsState| s.raw.values().map(Vec::len).sum::<usize>();
        let reusing = ManifestCache::with_raw_listing_ttl(Duration::from_secs(3600));
        let listing = ManifestCache::default();
        assert_eq!(count(&load_events(&lake, &reusing, &all).await.unwrap()), 6);
        lake.put(&RawFile::new(day(2), 5, "late").key(), Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(count(&load_events(&lake, &reusing, &all).await.unwrap()), 6, "reused within the TTL");
        assert_eq!(count(&load_events(&lake, &listing, &all).await.unwrap()), 7, "no TTL: listed afresh");
        assert_eq!(count(&load_events(&lake, &reusing, &one).await.unwrap()), 2);
    }

    /// A token is unseen until its files are listed; once a check saw them,
    /// no older listing is reused, so the next query shows them.
    #[tokio::test]
    async fn a_satisfied_token_retires_older_listings() {
        let lake = Lake::open(&format!("memory://token-{}", std::process::id())).unwrap();
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 9, d).unwrap();
        for d in 1..=6 {
            lake.put(&RawFile::new(day(d), 0, "a").key(), Bytes::from_static(b"x")).await.unwrap();
        }
        let all = |_: NaiveDate| true;
        let count = |s: &EventsState| s.raw.values().map(Vec::len).sum::<usize>();
        let cache = ManifestCache::with_raw_listing_ttl(Duration::from_secs(3600));
        assert_eq!(count(&load_events(&lake, &cache, &all).await.unwrap()), 6);
        let late = [RawFile::new(day(2), 5, "late"), RawFile::new(day(9), 1, "late")];
        let keys: Vec<String> = late.iter().map(RawFile::key).collect();
        let token = Token::of_keys(keys.iter().map(String::as_str));
        assert_eq!(unseen(&lake, &cache, &token).await.unwrap(), late.to_vec(), "nothing written yet");
        lake.put(&keys[0], Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(unseen(&lake, &cache, &token).await.unwrap(), late[1..].to_vec());
        assert_eq!(count(&load_events(&lake, &cache, &all).await.unwrap()), 6, "a partly seen token keeps the listing");
        lake.put(&keys[1], Bytes::from_static(b"x")).await.unwrap();
        assert!(unseen(&lake, &cache, &token).await.unwrap().is_empty());
        assert!(unseen(&lake, &cache, &Token::default()).await.unwrap().is_empty());
        assert_eq!(count(&load_events(&lake, &cache, &all).await.unwrap()), 8, "the query after the check lists afresh");
    }
}
