//! Delta Lake tables on the lake's own object store.
//!
//! deltalake resolves tables by URL scheme; the lake registers its store
//! under `sediment://lake/`, so one store (and one set of S3 settings)
//! serves raw files, Delta tables and manifests alike.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once};

use arrow::datatypes::SchemaRef;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::logstore::{LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, default_logstore, logstore_factories};
use deltalake::{DeltaResult, DeltaTable, DeltaTableBuilder, DeltaTableError};
use sediment_lake::Lake;
use sediment_lake::paths::table_root;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Delta table {table}: {source}")]
    Delta { table: String, source: DeltaTableError },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Default)]
struct LakeLogStoreFactory;

impl LogStoreFactory for LakeLogStoreFactory {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(prefixed_store, root_store, location, options))
    }
}

/// Registers the `sediment://` scheme with deltalake (idempotent).
pub fn register_scheme() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let scheme = Url::parse(&format!("{}://", sediment_lake::storage::ENGINE_SCHEME)).expect("constant URL");
        logstore_factories().insert(scheme, Arc::new(LakeLogStoreFactory));
    });
}

/// The engine URL of a table (`sediment://lake/tables/<name>`).
pub fn table_url(name: &str) -> Url {
    Lake::engine_url(&format!("{}/", table_root(name)))
}

fn builder(lake: &Lake, name: &str) -> Result<DeltaTableBuilder> {
    register_scheme();
    let url = table_url(name);
    let b = DeltaTableBuilder::from_url(url.clone()).map_err(|source| Error::Delta { table: name.to_owned(), source })?;
    Ok(b.with_storage_backend(lake.store(), url))
}

/// An unloaded handle on a table (for creating it).
pub fn table_handle(lake: &Lake, name: &str) -> Result<DeltaTable> {
    builder(lake, name)?.build().map_err(|source| Error::Delta { table: name.to_owned(), source })
}

/// Loads the latest version of a table; `None` if it does not exist yet.
pub async fn open(lake: &Lake, name: &str) -> Result<Option<DeltaTable>> {
    let mut table = table_handle(lake, name)?;
    match table.load().await {
        Ok(()) => Ok(Some(table)),
        Err(DeltaTableError::NotATable(_)) | Err(DeltaTableError::InvalidTableLocation(_)) => Ok(None),
        Err(e) if is_missing(&e) => Ok(None),
        Err(source) => Err(Error::Delta { table: name.to_owned(), source }),
    }
}

/// Loaded tables kept between queries. A table is brought up to date only
/// when its log has moved: one LIST of the log after the loaded version
/// tells (no new commit: the loaded snapshot is the latest, and nothing is
/// replayed or re-read).
#[derive(Debug, Default)]
pub struct TableCache(Mutex<HashMap<String, Cached>>);

#[derive(Debug, Clone)]
struct Cached {
    table: DeltaTable,
    /// The loaded version's commit file as listed: a table rewritten
    /// underneath (a fresh lake at the same URL) lists a different one.
    commit: Option<(u64, chrono::DateTime<chrono::Utc>)>,
}

/// What the log holds from `version` on: the commit file of `version` (size,
/// modification time) and whether any later version exists.
async fn log_after(lake: &Lake, name: &str, version: u64) -> Result<(Option<(u64, chrono::DateTime<chrono::Utc>)>, bool)> {
    let log = format!("{}/_delta_log/", table_root(name));
    // `<v>.` sorts before `<v>.checkpoint…`, `<v>.crc` and `<v>.json`.
    let listed = lake
        .list_after(&log, &format!("{log}{version:020}."))
        .await
        .map_err(|e| Error::Delta { table: name.to_owned(), source: DeltaTableError::Generic(e.to_string()) })?;
    let mut commit = None;
    let mut newer = false;
    for m in listed {
        let file = m.location.filename().unwrap_or_default();
        let Some(v) = file.split('.').next().and_then(|n| n.parse::<u64>().ok()) else { continue };
        if v > version {
            newer = true;
        } else if v == version && file.ends_with(".json") {
            commit = Some((m.size, m.last_modified));
        }
    }
    Ok((commit, newer))
}

impl TableCache {
    /// The latest version of a table, as [`open`] gives it.
    pub async fn latest(&self, lake: &Lake, name: &str) -> Result<Option<DeltaTable>> {
        let cached = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned();
        if let Some(c) = &cached
            && let Some(v) = c.table.version()
            && c.commit.is_some()
        {
            let (commit, newer) = log_after(lake, name, v).await?;
            if !newer && commit == c.commit {
                return Ok(Some(c.table.clone()));
            }
        }
        // A table gone or rewritten underneath fails to update: load it afresh.
        let updated = match cached {
            Some(Cached { mut table, .. }) => table.update_state().await.ok().map(|()| table),
            None => None,
        };
        let table = match updated {
            Some(t) => Some(t),
            None => open(lake, name).await?,
        };
        let entry = match &table {
            Some(t) => match t.version() {
                Some(v) => Some(Cached { table: t.clone(), commit: log_after(lake, name, v).await?.0 }),
                None => Some(Cached { table: t.clone(), commit: None }),
            },
            None => None,
        };
        let mut tables = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match entry {
            Some(c) => tables.insert(name.to_owned(), c),
            None => tables.remove(name),
        };
        Ok(table)
    }
}

fn is_missing(e: &DeltaTableError) -> bool {
    let text = e.to_string();
    text.contains("No files in log segment") || text.contains("not a Delta table") || text.contains("Not a Delta table")
}

/// Kernel schema of an Arrow schema.
pub fn kernel_schema(schema: &SchemaRef) -> std::result::Result<StructType, DeltaTableError> {
    schema.as_ref().try_into_kernel().map_err(DeltaTableError::from)
}

/// One data file of a table snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotFile {
    /// Relative to the table root.
    pub path: String,
    pub size: u64,
    pub partition_values: HashMap<String, Option<String>>,
    pub num_records: Option<usize>,
}

/// The files of a loaded table's current snapshot.
pub fn snapshot_files(table: &DeltaTable) -> Result<Vec<SnapshotFile>> {
    let err = |source| Error::Delta { table: table.table_url().to_string(), source };
    let state = table.snapshot().map_err(err)?;
    Ok(state
        .log_data()
        .iter()
        .map(|f| SnapshotFile {
            path: f.path().into_owned(),
            size: f.size().max(0) as u64,
            partition_values: f.partition_values_map(),
            num_records: f.num_records(),
        })
        .collect())
}
