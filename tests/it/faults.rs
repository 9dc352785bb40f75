//! Compaction under faults, against the S3-compatible server: a crash at any
//! write step then a re-run gives the tables of an uninterrupted run; two
//! compactors at once leave correct tables.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    PutResult,
};
use sediment_compactor::{Compactor, DaySelection};
use sediment_lake::{Config, Lake};
use sediment_query::{Cancel, QueryRequest, QueryService};

use crate::support::{Moto, generate, root};

/// Counts writes (puts, multipart uploads) and fails the `fail_at`-th one.
#[derive(Debug)]
struct Faulty {
    inner: Arc<dyn ObjectStore>,
    writes: AtomicUsize,
    fail_at: usize,
}

impl std::fmt::Display for Faulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

impl Faulty {
    fn step(&self, what: &Path) -> object_store::Result<()> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at {
            return Err(object_store::Error::Generic { store: "faulty", source: format!("injected crash at write {n} ({what})").into() });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> object_store::Result<PutResult> {
        self.step(location)?;
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.step(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    async fn get_ranges(&self, location: &Path, ranges: &[std::ops::Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }
    fn delete_stream(&self, locations: BoxStream<'static, object_store::Result<Path>>) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

fn s3(moto: &Moto, prefix: &str) -> Lake {
    let endpoint = moto.endpoint();
    Lake::open_with(
        &format!("s3://lake/{prefix}"),
        &[
            ("aws_endpoint", endpoint.as_str()),
            ("aws_access_key_id", "testing"),
            ("aws_secret_access_key", "testing"),
            ("aws_region", "us-east-1"),
            ("aws_allow_http", "true"),
        ],
    )
    .unwrap()
}

fn config() -> Config {
    let sample = std::fs::read_to_string(root().join("examples/sediment.toml")).unwrap();
    Config::parse(&format!("[compaction]\ntarget_file_mb = 1\nrow_group_rows = 2000\n{sample}")).unwrap()
}

/// What SQL sees of every table, as sorted text.
async fn contents(lake: &Lake) -> Vec<String> {
    let svc = QueryService::new(lake.clone(), config()).unwrap();
    let mut out = Vec::new();
    for sql in [
        "SELECT dt, event_id, event_type, aggregate_id, sequence, occurred_at, payload FROM events ORDER BY dt, event_id",
        "SELECT * FROM orders ORDER BY snapshot_date, aggregate_id",
        "SELECT * FROM products ORDER BY snapshot_date, aggregate_id",
        "SELECT * FROM customers ORDER BY snapshot_date, aggregate_id",
        "SELECT * FROM daily_revenue ORDER BY dt",
        "SELECT * FROM daily_funnel ORDER BY dt, event_type",
    ] {
        let o = svc.run(&QueryRequest { sql: sql.into(), ..Default::default() }, &Cancel::default(), &()).await.unwrap();
        out.push(sediment_query::output::to_csv(&o));
    }
    out
}

async fn ingest(lake: &Lake, input: &std::path::Path) {
    let text = std::fs::read(input).unwrap();
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    for (i, chunk) in lines.chunks(700).enumerate() {
        let r = sediment_ingest::Ingestor::new(lake.clone()).ingest(&sediment_ingest::ndjson_batch("faults", i * 700, chunk)).await;
        assert_eq!(r.failed, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_write_then_rerun_equals_uninterrupted_run() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    generate(&input, &["--events", "3000", "--days", "2", "--start", "2026-08-10", "--seed", "808", "--duplicates", "0.05"]);

    // Reference: an uninterrupted run, counting its writes.
    let reference = s3(&moto, "reference");
    ingest(&reference, &input).await;
    let counting = Arc::new(Faulty { inner: reference.store(), writes: AtomicUsize::new(0), fail_at: usize::MAX });
    Compactor::new(Lake::from_store(reference.url(), counting.clone()), config()).run(&DaySelection::All, false, &()).await.unwrap();
    let writes = counting.writes.load(Ordering::SeqCst);
    assert!(writes > 10, "only {writes} writes");
    let want = contents(&reference).await;

    let mut crashed = 0;
    for fail_at in 1..=writes {
        let lake = s3(&moto, &format!("crash-{fail_at}"));
        ingest(&lake, &input).await;
        let faulty = Arc::new(Faulty { inner: lake.store(), writes: AtomicUsize::new(0), fail_at });
        let first = Compactor::new(Lake::from_store(lake.url(), faulty), config()).run(&DaySelection::All, false, &()).await;
        if first.is_err() {
            crashed += 1;
        }
        // While crashed, SQL still sees every event exactly once.
        let svc = QueryService::new(lake.clone(), config()).unwrap();
        let o = svc
            .run(
                &QueryRequest { sql: "SELECT count(*) - count(DISTINCT event_id) FROM events".into(), ..Default::default() },
                &Cancel::default(),
                &(),
            )
            .await
            .unwrap();
        assert_eq!(
            sediment_query::output::text_rows(&o)[0][0].as_deref(),
            Some("0"),
            "duplicates visible after a crash at write {fail_at}"
        );
        Compactor::new(lake.clone(), config()).run(&DaySelection::All, false, &()).await.unwrap();
        assert_eq!(contents(&lake).await, want, "re-run after a crash at write {fail_at} differs from the uninterrupted run");
    }
    assert!(crashed as f64 >= writes as f64 * 0.9, "only {crashed} of {writes} injected faults stopped the run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_compactors_at_once_leave_correct_tables() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    generate(&input, &["--events", "4000", "--days", "3", "--start", "2026-08-20", "--seed", "909", "--duplicates", "0.05"]);
    let reference = s3(&moto, "solo");
    ingest(&reference, &input).await;
    Compactor::new(reference.clone(), config()).run(&DaySelection::All, false, &()).await.unwrap();
    let want = contents(&reference).await;

    for round in 0..3 {
        let lake = s3(&moto, &format!("race-{round}"));
        ingest(&lake, &input).await;
        let (a, b) = (Compactor::new(lake.clone(), config()), Compactor::new(lake.clone(), config()));
        let (ra, rb) = tokio::join!(a.run(&DaySelection::All, false, &()), b.run(&DaySelection::All, false, &()));
        // Each either finished or stopped cleanly on a lost race.
        for r in [&ra, &rb] {
            if let Err(e) = r {
                assert!(e.to_string().contains("committed") || e.to_string().contains("first"), "unclean failure: {e}");
            }
        }
        assert!(ra.is_ok() || rb.is_ok(), "both compactors failed: {ra:?} {rb:?}");
        // A later run settles anything the loser left, and the tables are right.
        Compactor::new(lake.clone(), config()).run(&DaySelection::All, false, &()).await.unwrap();
        assert_eq!(contents(&lake).await, want, "round {round}");
        let checks = sediment_compactor::maintenance::verify(&lake, &config(), None).await.unwrap();
        assert!(checks.iter().all(|c| c.problems.is_empty()), "{checks:?}");
    }
}
