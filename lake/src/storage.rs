//! One storage code path for S3, local files and memory.
//!
//! A lake URL is `s3://bucket/prefix`, `file:///abs/path`, a plain path, or
//! `memory://name` (tests; one shared store per name in a process). S3
//! settings come from the standard AWS environment, `AWS_ENDPOINT_URL`
//! included; the object store client retries throttling (503 SlowDown) and
//! transient errors with exponential backoff.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use url::Url;

use crate::paths;

/// Scheme of the URL under which a lake's store is registered with engines
/// (DataFusion, deltalake): `sediment://lake/<key>` maps to `<lake root>/<key>`.
pub const ENGINE_SCHEME: &str = "sediment";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid lake URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot open the lake at {url}: {source}")]
    Open { url: String, source: object_store::Error },
    #[error(
        "no lake at {url}: the location holds no Sediment lake (no raw/, quarantine/ or tables/). \
         Check --lake, SEDIMENT_LAKE or lake.url; `sediment ingest` creates a lake"
    )]
    NoLake { url: String },
    #[error("cannot create the lake directory {path}: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("{op} {key}: {source}")]
    Object { op: &'static str, key: String, source: object_store::Error },
    #[error(
        "the store at {url} accepted a second create of the same key ({key}): it ignores conditional writes \
         (If-None-Match), so concurrent writers could overwrite each other. Use a store that honours them \
         (AWS S3, MinIO, Cloudflare R2, moto) or set `conditional_put` support on the server"
    )]
    NoConditionalWrites { url: String, key: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The object that marks a location as a lake.
pub const LAKE_MARKER: &str = "_sediment/lake.json";

/// Outcome of a create-if-absent write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The object was written by this call.
    New,
    /// An object already had this key; nothing was written.
    Existed,
}

/// A lake: an object store rooted at the lake prefix.
#[derive(Debug, Clone)]
pub struct Lake {
    url: String,
    store: Arc<dyn ObjectStore>,
    requests: Arc<Requests>,
}

static MEMORY: LazyLock<Mutex<HashMap<String, Arc<InMemory>>>> = LazyLock::new(Default::default);

impl Lake {
    /// Opens the lake at `url` (see the module docs for the accepted forms).
    pub fn open(url: &str) -> Result<Self> {
        Self::open_with(url, &[])
    }

    /// A lake over a store built elsewhere (tests wrap stores to inject faults).
    pub fn from_store(url: &str, store: Arc<dyn ObjectStore>) -> Self {
        let requests = Arc::new(Requests::default());
        let store = Arc::new(Counted { inner: store, requests: Arc::clone(&requests) });
        Self { url: url.to_owned(), store, requests }
    }

    /// Like [`Lake::open`], with S3 settings (`aws_endpoint`, `aws_access_key_id`, …)
    /// given explicitly on top of the environment.
    pub fn open_with(url: &str, s3_options: &[(&str, &str)]) -> Result<Self> {
        let err = |reason: &str| Error::Url { url: url.to_owned(), reason: reason.to_owned() };
        let store: Arc<dyn ObjectStore> = if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(err("no bucket name"));
            }
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            for (k, v) in s3_options {
                let key = k.parse().map_err(|e: object_store::Error| err(&e.to_string()))?;
                builder = builder.with_config(key, *v);
            }
            let endpoint = s3_options
                .iter()
                .find(|(k, _)| k.contains("endpoint"))
                .map(|(_, v)| (*v).to_owned())
                .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").or_else(|_| std::env::var("AWS_ENDPOINT_URL")).ok());
            if endpoint.as_deref().is_some_and(|e| e.starts_with("http://")) {
                builder = builder.with_allow_http(true);
            }
            if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
                builder = builder.with_region("us-east-1");
            }
            let s3 = builder.build().map_err(|source| Error::Open { url: url.to_owned(), source })?;
            with_prefix(Arc::new(s3), prefix)
        } else if let Some(name) = url.strip_prefix("memory://") {
            let mut stores = MEMORY.lock().unwrap_or_else(|p| p.into_inner());
            let store = stores.entry(name.trim_end_matches('/').to_owned()).or_insert_with(|| Arc::new(InMemory::new()));
            Arc::clone(store) as Arc<dyn ObjectStore>
        } else {
            let path = if url.starts_with("file://") {
                Url::parse(url).ok().and_then(|u| u.to_file_path().ok()).ok_or_else(|| err("not an absolute file URL"))?
            } else if url.contains("://") {
                return Err(err("unsupported scheme (use s3://, file://, a path, or memory://)"));
            } else {
                std::path::PathBuf::from(url)
            };
            std::fs::create_dir_all(&path).map_err(|source| Error::CreateDir { path: path.display().to_string(), source })?;
            // A directory emptied by a delete goes with its last file, as an S3
            // prefix does: otherwise, once vacuum has deleted the covered raw
            // files, every query lists each day's and hour's empty directory.
            let local = LocalFileSystem::new_with_prefix(&path)
                .map_err(|source| Error::Open { url: url.to_owned(), source })?
                .with_automatic_cleanup(true);
            Arc::new(SortedListing(Arc::new(local)))
        };
        Ok(Self::from_store(url, store))
    }

    /// The same lake with every store request driven on `io` (the runtime
    /// that serves HTTP), whatever runtime awaits it: the query service runs
    /// DataFusion on a runtime of its own, whose busy threads must not delay
    /// the network (DataFusion's `thread_pools` example).
    pub fn with_io_runtime(&self, io: tokio::runtime::Handle) -> Self {
        let store = Arc::new(SpawnIo { inner: Arc::clone(&self.store), io });
        Self { url: self.url.clone(), store, requests: Arc::clone(&self.requests) }
    }

    /// Opens the lake at `url` only where one exists: a local directory is
    /// not created, and a location holding none of the lake's top-level
    /// prefixes is [`Error::NoLake`]. Every command but ingest opens this way,
    /// so a mistyped path is an error rather than an empty answer.
    pub async fn open_existing(url: &str) -> Result<Self> {
        let local = !url.contains("://") || url.starts_with("file://");
        if local {
            let path = if url.starts_with("file://") { Url::parse(url).ok().and_then(|u| u.to_file_path().ok()) } else { Some(url.into()) };
            if path.is_some_and(|p: std::path::PathBuf| !p.is_dir()) {
                return Err(Error::NoLake { url: url.to_owned() });
            }
        }
        let lake = Self::open(url)?;
        if lake.holds_lake().await? { Ok(lake) } else { Err(Error::NoLake { url: url.to_owned() }) }
    }

    /// Whether the location holds a lake: any of `raw/`, `quarantine/`,
    /// `tables/` or the marker [`LAKE_MARKER`] (one LIST of the root).
    pub async fn holds_lake(&self) -> Result<bool> {
        let listing = self.store.list_with_delimiter(None).await.map_err(|source| obj("list", "", source))?;
        let top = |p: &str| p.split('/').next().unwrap_or(p).to_owned();
        let known = [paths::RAW_PREFIX, paths::QUARANTINE_PREFIX, paths::TABLES_PREFIX, LAKE_MARKER].map(top);
        Ok(listing.common_prefixes.iter().any(|p| known.contains(&p.to_string())))
    }

    /// Marks the location as a lake (idempotent): ingest does so before its
    /// first write, so an empty but initialised lake can be queried.
    pub async fn mark(&self) -> Result<()> {
        let body = serde_json::json!({"version": 1, "created_at": chrono::Utc::now().to_rfc3339()});
        self.put_if_absent(LAKE_MARKER, Bytes::from(body.to_string())).await.map(|_| ())
    }

    /// The URL the lake was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Store requests made through this lake (and its clones) so far.
    pub fn requests(&self) -> RequestCounts {
        self.requests.snapshot()
    }

    /// The store, rooted at the lake prefix: keys are lake-relative.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// The engine URL of a lake-relative key (`sediment://lake/<key>`).
    pub fn engine_url(key: &str) -> Url {
        // The base is a constant, valid URL; a key is a relative path.
        let base = Url::parse(&format!("{ENGINE_SCHEME}://lake/")).expect("constant URL parses");
        base.join(key).unwrap_or(base)
    }

    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let op = "read";
        let res = self.store.get(&Path::from(key)).await.map_err(|source| obj(op, key, source))?;
        res.bytes().await.map_err(|source| obj(op, key, source))
    }

    /// Like [`Lake::get`], `None` where no object has the key.
    pub async fn get_opt(&self, key: &str) -> Result<Option<Bytes>> {
        match self.get(key).await {
            Ok(b) => Ok(Some(b)),
            Err(Error::Object { source: object_store::Error::NotFound { .. }, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `bytes` unless an object already has the key (a single
    /// conditional PUT: the object becomes visible whole, or not at all).
    pub async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<Created> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(&Path::from(key), PutPayload::from_bytes(bytes), opts).await {
            Ok(_) => Ok(Created::New),
            Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => Ok(Created::Existed),
            Err(source) => Err(obj("write", key, source)),
        }
    }

    /// Writes `bytes`, replacing any object with the key.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.store.put(&Path::from(key), PutPayload::from_bytes(bytes)).await.map_err(|source| obj("write", key, source))?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(obj("delete", key, source)),
        }
    }

    /// Every object under `prefix` (recursive), in no particular order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let p = Path::from(prefix);
        self.store.list(Some(&p)).try_collect().await.map_err(|source| obj("list", prefix, source))
    }

    /// Every object under `prefix` whose key sorts after `offset` (one LIST
    /// starting after `offset`: on S3, `start-after`).
    pub async fn list_after(&self, prefix: &str, offset: &str) -> Result<Vec<ObjectMeta>> {
        let p = Path::from(prefix);
        self.store.list_with_offset(Some(&p), &Path::from(offset)).try_collect().await.map_err(|source| obj("list", prefix, source))
    }

    /// The immediate sub-prefixes of `prefix` (one LIST with a delimiter).
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let p = Path::from(prefix);
        let listing = self.store.list_with_delimiter(Some(&p)).await.map_err(|source| obj("list", prefix, source))?;
        Ok(listing.common_prefixes.into_iter().map(|p| p.to_string()).collect())
    }

    /// Proves the store refuses a second create of the same key (invariant 5):
    /// some S3-compatible stores accept `If-None-Match` and overwrite anyway.
    pub async fn check_conditional_writes(&self) -> Result<()> {
        let key = format!("_sediment/probe/conditional-{}", probe_suffix());
        let first = self.put_if_absent(&key, Bytes::from_static(b"1")).await?;
        let second = self.put_if_absent(&key, Bytes::from_static(b"2")).await?;
        let _ = self.delete(&key).await;
        if first == Created::New && second == Created::Existed {
            Ok(())
        } else {
            Err(Error::NoConditionalWrites { url: self.url.clone(), key })
        }
    }
}

/// Lists in key order, as S3 does. Local directories list in arbitrary
/// order; Delta log readers (and our own listings) rely on sorted results.
#[derive(Debug)]
struct SortedListing(Arc<dyn ObjectStore>);

impl std::fmt::Display for SortedListing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SortedListing({})", self.0)
    }
}

fn sorted(stream: BoxStream<'static, object_store::Result<ObjectMeta>>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
    futures::stream::once(async move {
        let mut all: Vec<ObjectMeta> = stream.try_collect().await?;
        all.sort_by(|a, b| a.location.cmp(&b.location));
        Ok::<_, object_store::Error>(futures::stream::iter(all.into_iter().map(Ok)))
    })
    .try_flatten()
    .boxed()
}

#[async_trait::async_trait]
impl ObjectStore for SortedListing {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> object_store::Result<object_store::PutResult> {
        self.0.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: object_store::GetOptions) -> object_store::Result<object_store::GetResult> {
        self.0.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[std::ops::Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.0.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, object_store::Result<Path>>) -> BoxStream<'static, object_store::Result<Path>> {
        self.0.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        sorted(self.0.list(prefix))
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        sorted(self.0.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<object_store::ListResult> {
        let mut r = self.0.list_with_delimiter(prefix).await?;
        r.objects.sort_by(|a, b| a.location.cmp(&b.location));
        r.common_prefixes.sort();
        Ok(r)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: object_store::CopyOptions) -> object_store::Result<()> {
        self.0.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: object_store::RenameOptions) -> object_store::Result<()> {
        self.0.rename_opts(from, to, options).await
    }
}

/// Store requests by kind, as S3 bills them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestCounts {
    /// GETs, ranged reads included (ranges less than 1 MiB apart count once,
    /// as the S3 client coalesces them).
    pub get: u64,
    pub head: u64,
    pub list: u64,
    /// PUTs, multipart uploads counted once each.
    pub put: u64,
    pub delete: u64,
}

#[derive(Debug, Default)]
struct Requests {
    get: AtomicU64,
    head: AtomicU64,
    list: AtomicU64,
    put: AtomicU64,
    delete: AtomicU64,
}

impl Requests {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> RequestCounts {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RequestCounts { get: r(&self.get), head: r(&self.head), list: r(&self.list), put: r(&self.put), delete: r(&self.delete) }
    }
}

/// Ranges a ranged read fetches with, merged where less than 1 MiB apart.
fn coalesced(ranges: &[std::ops::Range<u64>]) -> u64 {
    let mut sorted: Vec<_> = ranges.to_vec();
    sorted.sort_by_key(|r| r.start);
    let mut count = 0;
    let mut end: Option<u64> = None;
    for r in sorted {
        match end {
            Some(e) if r.start <= e.saturating_add(1 << 20) => end = Some(e.max(r.end)),
            _ => {
                count += 1;
                end = Some(r.end);
            }
        }
    }
    count
}

/// Counts the requests made through it (`/metrics`, benchmarks).
#[derive(Debug)]
struct Counted {
    inner: Arc<dyn ObjectStore>,
    requests: Arc<Requests>,
}

impl std::fmt::Display for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Counted {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> object_store::Result<object_store::PutResult> {
        Requests::add(&self.requests.put, 1);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        Requests::add(&self.requests.put, 1);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: object_store::GetOptions) -> object_store::Result<object_store::GetResult> {
        Requests::add(if options.head { &self.requests.head } else { &self.requests.get }, 1);
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[std::ops::Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        Requests::add(&self.requests.get, coalesced(ranges));
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, object_store::Result<Path>>) -> BoxStream<'static, object_store::Result<Path>> {
        let requests = Arc::clone(&self.requests);
        self.inner.delete_stream(locations.inspect(move |_| Requests::add(&requests.delete, 1)).boxed())
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        Requests::add(&self.requests.list, 1);
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        Requests::add(&self.requests.list, 1);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<object_store::ListResult> {
        Requests::add(&self.requests.list, 1);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: object_store::CopyOptions) -> object_store::Result<()> {
        Requests::add(&self.requests.put, 1);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: object_store::RenameOptions) -> object_store::Result<()> {
        Requests::add(&self.requests.put, 1);
        self.inner.rename_opts(from, to, options).await
    }
}

/// Drives each request (and the bytes of a streamed response) on the I/O
/// runtime; see [`Lake::with_io_runtime`].
#[derive(Debug)]
struct SpawnIo {
    inner: Arc<dyn ObjectStore>,
    io: tokio::runtime::Handle,
}

impl std::fmt::Display for SpawnIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.inner)
    }
}

fn join_error(e: tokio::task::JoinError) -> object_store::Error {
    object_store::Error::Generic { store: "io runtime", source: Box::new(e) }
}

impl SpawnIo {
    async fn spawn<T, F>(&self, f: impl FnOnce(Arc<dyn ObjectStore>) -> F) -> object_store::Result<T>
    where
        F: std::future::Future<Output = object_store::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.io.spawn(f(Arc::clone(&self.inner))).await.map_err(join_error)?
    }

    /// A stream polled on the I/O runtime, handed over through a small channel.
    fn forward<T: Send + 'static>(
        &self,
        mut stream: BoxStream<'static, object_store::Result<T>>,
    ) -> BoxStream<'static, object_store::Result<T>> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        self.io.spawn(async move {
            while let Some(item) = stream.next().await {
                if tx.send(item).await.is_err() {
                    break;
                }
            }
        });
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).fuse().boxed()
    }
}

#[async_trait::async_trait]
impl ObjectStore for SpawnIo {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> object_store::Result<object_store::PutResult> {
        let location = location.clone();
        self.spawn(|s| async move { s.put_opts(&location, payload, opts).await }).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: object_store::GetOptions) -> object_store::Result<object_store::GetResult> {
        let location = location.clone();
        let mut result = self.spawn(|s| async move { s.get_opts(&location, options).await }).await?;
        if let object_store::GetResultPayload::Stream(stream) = result.payload {
            result.payload = object_store::GetResultPayload::Stream(self.forward(stream));
        }
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[std::ops::Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        let (location, ranges) = (location.clone(), ranges.to_vec());
        self.spawn(|s| async move { s.get_ranges(&location, &ranges).await }).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, object_store::Result<Path>>) -> BoxStream<'static, object_store::Result<Path>> {
        self.forward(self.inner.delete_stream(locations))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.forward(self.inner.list(prefix))
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.forward(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<object_store::ListResult> {
        let prefix = prefix.cloned();
        self.spawn(|s| async move { s.list_with_delimiter(prefix.as_ref()).await }).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: object_store::CopyOptions) -> object_store::Result<()> {
        let (from, to) = (from.clone(), to.clone());
        self.spawn(|s| async move { s.copy_opts(&from, &to, options).await }).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: object_store::RenameOptions) -> object_store::Result<()> {
        let (from, to) = (from.clone(), to.clone());
        self.spawn(|s| async move { s.rename_opts(&from, &to, options).await }).await
    }
}

fn with_prefix(store: Arc<dyn ObjectStore>, prefix: &str) -> Arc<dyn ObjectStore> {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() { store } else { Arc::new(PrefixStore::new(store, prefix)) }
}

fn obj(op: &'static str, key: &str, source: object_store::Error) -> Error {
    Error::Object { op, key: key.to_owned(), source }
}

fn probe_suffix() -> String {
    use sha2::{Digest, Sha256};
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let seed = format!("{}-{}", std::process::id(), now.as_nanos());
    hex::encode(&Sha256::digest(seed.as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_lakes_are_shared_by_name() {
        let a = Lake::open("memory://shared-test").unwrap();
        let b = Lake::open("memory://shared-test").unwrap();
        a.put("x/y", Bytes::from_static(b"1")).await.unwrap();
        assert_eq!(b.get("x/y").await.unwrap(), Bytes::from_static(b"1"));
        assert!(b.get_opt("x/z").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn create_if_absent_keeps_the_first_write() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(lake.put_if_absent("a/b", Bytes::from_static(b"1")).await.unwrap(), Created::New);
        assert_eq!(lake.put_if_absent("a/b", Bytes::from_static(b"2")).await.unwrap(), Created::Existed);
        assert_eq!(lake.get("a/b").await.unwrap(), Bytes::from_static(b"1"));
        lake.check_conditional_writes().await.unwrap();
        assert_eq!(lake.list_dirs("a").await.unwrap(), Vec::<String>::new());
        assert_eq!(lake.list("a").await.unwrap().len(), 1);
    }

    /// On a local lake a directory emptied by a delete goes with its last
    /// file (the lake root stays), so listing sees what S3 would.
    #[tokio::test]
    async fn deleting_a_local_file_removes_the_directories_it_empties() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        lake.put("raw/events/dt=2026-09-01/hour=00/a.parquet", Bytes::from_static(b"1")).await.unwrap();
        lake.put("raw/events/dt=2026-09-01/hour=01/b.parquet", Bytes::from_static(b"2")).await.unwrap();
        lake.delete("raw/events/dt=2026-09-01/hour=00/a.parquet").await.unwrap();
        assert_eq!(lake.list_dirs("raw/events/dt=2026-09-01").await.unwrap().len(), 1);
        lake.delete("raw/events/dt=2026-09-01/hour=01/b.parquet").await.unwrap();
        assert_eq!(lake.list_dirs("raw/events").await.unwrap(), Vec::<String>::new());
        assert!(!dir.path().join("raw").exists());
        assert!(dir.path().exists());
        // Writing again recreates what it needs.
        lake.put("raw/events/dt=2026-09-01/hour=00/a.parquet", Bytes::from_static(b"3")).await.unwrap();
        assert_eq!(lake.get("raw/events/dt=2026-09-01/hour=00/a.parquet").await.unwrap(), Bytes::from_static(b"3"));
    }

    #[tokio::test]
    async fn requests_are_counted_by_kind() {
        let lake = Lake::open("memory://count-test").unwrap();
        lake.put("d/a", Bytes::from(vec![0u8; 3 << 20])).await.unwrap();
        lake.get("d/a").await.unwrap();
        assert!(lake.get_opt("d/missing").await.unwrap().is_none());
        lake.list("d").await.unwrap();
        lake.list_dirs("").await.unwrap();
        let p = Path::from("d/a");
        // Two ranges 1 MiB apart or less are one request; a third far off is another.
        lake.store().get_ranges(&p, &[0..10, 100..200, (3 << 20) - 10..(3 << 20)]).await.unwrap();
        lake.store().head(&p).await.unwrap();
        lake.delete("d/a").await.unwrap();
        assert_eq!(lake.clone().requests(), RequestCounts { get: 4, head: 1, list: 2, put: 1, delete: 1 });
    }

    #[test]
    fn urls() {
        assert_eq!(Lake::engine_url("tables/events").as_str(), "sediment://lake/tables/events");
        assert!(matches!(Lake::open("ftp://x"), Err(Error::Url { .. })));
        assert!(matches!(Lake::open("s3:///x"), Err(Error::Url { .. })));
    }
}
