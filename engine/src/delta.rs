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

/// Loaded tables kept between queries: bringing one up to date reads only
/// the commits added since (no new commit: one LIST of the log).
#[derive(Debug, Default)]
pub struct TableCache(Mutex<HashMap<String, DeltaTable>>);

impl TableCache {
    /// The latest version of a table, as [`open`] gives it.
    pub async fn latest(&self, lake: &Lake, name: &str) -> Result<Option<DeltaTable>> {
        let cached = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned();
        // A table gone or rewritten underneath (a fresh lake at the same
        // URL) fails to update: load it afresh.
        let updated = match cached {
            Some(mut t) => t.update_state().await.ok().map(|()| t),
            None => None,
        };
        let table = match updated {
            Some(t) => Some(t),
            None => open(lake, name).await?,
        };
        let mut tables = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match &table {
            Some(t) => tables.insert(name.to_owned(), t.clone()),
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
