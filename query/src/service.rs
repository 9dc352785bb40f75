//! One engine behind every interface: parse Trino SQL, refuse anything that
//! is not a read, plan over the lake catalog, run bounded.
//!
//! ```text
//!  serving runtime (HTTP, timers, object-store I/O)     CPU runtime (DataFusion)
//!  run: size check ─▶ slot (QUEUED) ─▶ spawn ───────────▶ parse ─▶ plan ─▶ execute ─▶ collect
//!       await the task, the timeout and the cancel ◀──── result  (aborted on timeout/cancel)
//! ```
//!
//! Bounds: a query text of at most 262,144 bytes and trees at most
//! [`dialect::MAX_TREE_DEPTH`] deep; a shared memory pool (operators spill
//! or fail cleanly, and the collected result is accounted to it); a
//! per-query timeout and cancellation that answer within a second, whatever
//! the plan, and stop its work at the next yield (every operator that emits
//! without reading yields, see [`sediment_engine::session::YieldingAmplifiers`],
//! and a nested-loop join yields within milliseconds even when its filter
//! never matches, see [`sediment_engine::nested_loop`]); a maximum result
//! size; an Athena-style bytes-scanned cutoff; and a concurrency limit
//! (queries beyond it wait, QUEUED; a cancelled query holds its slot until
//! its work has stopped). A panic in a query fails that query only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashSet;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider};
use datafusion::execution::SessionState;
use datafusion::execution::memory_pool::{FairSpillPool, MemoryConsumer};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanVisitor, accept};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use futures::StreamExt;
use sediment_engine::catalog::LakeCatalog;
use sediment_engine::lag::{self, SourceLag};
use sediment_engine::session::{SessionOptions, query_context, session_config};
use sediment_engine::state;
use sediment_lake::config::QuerySection;
use sediment_lake::token::Token;
use sediment_lake::{Config, Lake};
use sediment_trino as dialect;
use tokio::sync::{Notify, Semaphore};

use crate::after::{After, NotVisible, OnTimeout};
use crate::executor::CpuRuntime;
use crate::meta;

/// Athena's catalog name.
pub const CATALOG: &str = "awsdatacatalog";

/// Whether an error is the user's to fix (Athena ErrorCategory 2) or ours (1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    System,
    User,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub category: Category,
    pub message: String,
    /// `CANCELLED` rather than `FAILED`.
    pub cancelled: bool,
    /// The writes named by `after` did not become visible in time.
    pub not_visible: Option<Arc<NotVisible>>,
}

impl QueryError {
    pub fn user(message: impl Into<String>) -> Self {
        Self { category: Category::User, message: message.into(), cancelled: false, not_visible: None }
    }
    pub fn system(message: impl Into<String>) -> Self {
        Self { category: Category::System, message: message.into(), cancelled: false, not_visible: None }
    }
    /// NOT_YET_VISIBLE: the client's to retry (later, or with a longer wait).
    pub fn not_visible(nv: NotVisible) -> Self {
        Self { category: Category::User, message: nv.message(), cancelled: false, not_visible: Some(Arc::new(nv)) }
    }
    pub(crate) fn cancelled(message: impl Into<String>) -> Self {
        Self { category: Category::User, message: message.into(), cancelled: true, not_visible: None }
    }
}

impl From<datafusion::error::DataFusionError> for QueryError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as E;
        let root = e.find_root();
        use arrow::error::ArrowError as A;
        let category = match root {
            E::SQL(..) | E::Plan(_) | E::SchemaError(..) | E::NotImplemented(_) | E::Execution(_) | E::ResourcesExhausted(_) => {
                Category::User
            }
            // What Arrow's kernels refuse is the query's data or arguments.
            E::ArrowError(a, _) if !matches!(a.as_ref(), A::IoError(..) | A::ExternalError(_) | A::MemoryError(_)) => Category::User,
            _ => Category::System,
        };
        let message = match root {
            E::SQL(p, _) => format!("SYNTAX_ERROR: {p}"),
            // The planner's word for a name no registry knows.
            E::Plan(m) if m.starts_with("Invalid function '") => {
                let name = m["Invalid function '".len()..].split('\'').next().unwrap_or_default();
                format!("NOT_SUPPORTED: function {name} is not supported")
            }
            E::Plan(m) | E::Execution(m) => m.clone(),
            E::SchemaError(s, _) => s.to_string(),
            E::NotImplemented(m) => format!("NOT_SUPPORTED: {m}"),
            E::ResourcesExhausted(m) => format!("EXCEEDED_MEMORY_LIMIT: {m}"),
            E::ArrowError(a, _) => match a.as_ref() {
                A::DivideByZero => "DIVISION_BY_ZERO: Division by zero".to_owned(),
                A::CastError(m) => format!("INVALID_CAST_ARGUMENT: {m}"),
                A::ArithmeticOverflow(m) => format!("NUMERIC_VALUE_OUT_OF_RANGE: {m}"),
                A::ComputeError(m) | A::InvalidArgumentError(m) => format!("INVALID_FUNCTION_ARGUMENT: {m}"),
                other => other.to_string(),
            },
            other => other.to_string(),
        };
        Self { category, message, cancelled: false, not_visible: None }
    }
}

/// What a query produced.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    pub bytes_scanned: u64,
    pub planning: Duration,
    pub execution: Duration,
    /// Time spent waiting for a slot (QUEUED), and for the writes `after`
    /// named.
    pub queued: Duration,
    /// Set when the query ran although the writes `after` named were not
    /// all visible (the client asked for a stale answer rather than none).
    pub stale: Option<Arc<NotVisible>>,
}

impl QueryOutput {
    /// The result batches' memory.
    pub fn bytes(&self) -> usize {
        self.batches.iter().map(|b| b.get_array_memory_size()).sum()
    }
}

/// A request to run.
#[derive(Debug, Clone, Default)]
pub struct QueryRequest {
    pub sql: String,
    /// SQL literals for `?` placeholders (Athena `ExecutionParameters`).
    pub params: Vec<String>,
    /// Per-query bytes-scanned cutoff overriding the server's (workgroup) one.
    pub bytes_scanned_cutoff: Option<u64>,
    /// Who asks, for the query log.
    pub client: Client,
    /// Writes the answer must reflect (read your writes).
    pub after: Option<After>,
    /// What runs, when a door has parsed or planned it already (`sql` is
    /// then its text, for the log).
    pub parsed: Parsed,
    /// A shorter timeout than `query.timeout` for this query (a Postgres
    /// client's `statement_timeout`); never a longer one.
    pub timeout: Option<Duration>,
}

/// A request's statement in the form its door hands it over.
#[derive(Debug, Clone, Default)]
pub enum Parsed {
    /// `sql` is parsed here (the one parse).
    #[default]
    Text,
    /// One statement the door parsed (the Postgres door splits a
    /// simple-query string into its statements), with the values of its
    /// parameters when the door bound them (`params` is then unused).
    Statement(Box<Statement>, Option<Vec<datafusion::sql::sqlparser::ast::Expr>>),
    /// A plan over another session (the Postgres door's `pg_catalog`),
    /// run with the same bounds, slot and log as every query.
    Plan(Box<SessionState>, Box<LogicalPlan>),
}

/// Who sent a query, for the query log.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The query's id (the Athena execution id); one is made when empty.
    pub query_id: String,
    /// `rest`, `athena` or `cli`.
    pub interface: &'static str,
    /// A fingerprint of the API key (`sha256:` and 12 hex digits), never the key.
    pub key_id: Option<String>,
}

/// Signals a running query to stop.
#[derive(Debug, Default)]
pub struct Cancel {
    notify: Notify,
    flag: std::sync::atomic::AtomicBool,
}

impl Cancel {
    pub fn cancel(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
    }
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::SeqCst)
    }
    async fn wait(&self) {
        loop {
            let n = self.notify.notified();
            if self.is_cancelled() {
                return;
            }
            n.await;
        }
    }
}

/// Callbacks while a query runs (the Athena API tracks state with them).
pub trait Observer: Send + Sync {
    fn running(&self) {}
}

impl Observer for () {}

/// The query engine over one lake.
#[derive(Debug)]
pub struct QueryService {
    catalog: Arc<LakeCatalog>,
    settings: QuerySection,
    slots: Arc<Semaphore>,
    prepared: std::sync::Mutex<std::collections::HashMap<String, Prepared>>,
    cpu: CpuRuntime,
    base: SessionState,
    retained: Arc<Retained>,
}

/// Bytes of finished results the doors keep in memory for clients to fetch
/// later (the Athena API's GetQueryResults, Flight SQL's DoGet), counted
/// once for the process against one budget: an eighth of
/// `query.memory_limit_mb`, so held results cannot crowd out the queries
/// running.
#[derive(Debug)]
pub struct Retained {
    used: std::sync::atomic::AtomicUsize,
    budget: usize,
}

/// A result's bytes counted in [`Retained`] for as long as it is held.
#[derive(Debug)]
pub struct Hold {
    retained: Arc<Retained>,
    bytes: usize,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.retained.used.fetch_sub(self.bytes, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Retained {
    pub fn new(budget: usize) -> Arc<Self> {
        Arc::new(Self { used: Default::default(), budget })
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether what is held is past the budget.
    pub fn over(&self) -> bool {
        self.used() > self.budget
    }

    /// Counts `bytes` whatever is held already (the holder then gives older
    /// results back until [`Retained::over`] is false).
    pub fn hold(self: &Arc<Self>, bytes: usize) -> Hold {
        self.used.fetch_add(bytes, std::sync::atomic::Ordering::SeqCst);
        Hold { retained: Arc::clone(self), bytes }
    }

    /// Counts `bytes` if they fit beside what is held; one result alone may
    /// pass the budget (the query's memory limit let it through). `Err`
    /// carries the bytes held.
    pub fn try_hold(self: &Arc<Self>, bytes: usize) -> Result<Hold, usize> {
        use std::sync::atomic::Ordering::SeqCst;
        self.used
            .fetch_update(SeqCst, SeqCst, |used| (used == 0 || used.saturating_add(bytes) <= self.budget).then(|| used + bytes))
            .map(|_| Hold { retained: Arc::clone(self), bytes })
    }
}

fn databases(settings: &QuerySection) -> Vec<String> {
    let mut d = vec!["default".to_owned()];
    if settings.database != "default" {
        d.push(settings.database.clone());
    }
    d
}

/// A prepared statement: its text (as `GetPreparedStatement` returns it)
/// and its parsed form, so that `EXECUTE` parses nothing again.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub sql: String,
    statement: Statement,
}

impl QueryService {
    /// A service over `lake`. Called inside a Tokio runtime, that runtime
    /// keeps the object-store I/O; DataFusion runs on a runtime of its own.
    pub fn new(lake: Lake, config: Config) -> Result<Arc<Self>, QueryError> {
        let settings = config.query.clone();
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(pool_bytes(&settings))))
            .build_arc()
            .map_err(QueryError::from)?;
        let slots = Arc::new(Semaphore::new(settings.max_concurrency.max(1)));
        let lake = match tokio::runtime::Handle::try_current() {
            Ok(io) => lake.with_io_runtime(io),
            Err(_) => lake,
        };
        let cpu = CpuRuntime::new().map_err(|e| QueryError::system(format!("cannot start the query runtime: {e}")))?;
        let catalog = LakeCatalog::new(lake, config);
        let base = Self::base_session(&catalog, &runtime, &databases(&settings));
        let retained = Retained::new(((settings.memory_limit_mb as usize) << 20) / 8);
        Ok(Arc::new(Self { catalog, settings, slots, prepared: Default::default(), cpu, base, retained }))
    }

    /// Runs CPU-heavy work (rendering a large result) on the query runtime,
    /// off the runtime that serves.
    pub async fn on_cpu<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, QueryError> {
        self.on_cpu_async(async move { work() }).await
    }

    /// Runs an async piece of query work (planning) on the query runtime.
    pub async fn on_cpu_async<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, QueryError> {
        self.cpu.spawn(work).await.map_err(crate::executor::join_error)
    }

    pub fn settings(&self) -> &QuerySection {
        &self.settings
    }

    /// The results every door holds for clients to fetch later.
    pub fn retained(&self) -> &Arc<Retained> {
        &self.retained
    }

    pub fn lake(&self) -> &Lake {
        self.catalog.lake()
    }

    pub fn config(&self) -> &Config {
        self.catalog.config()
    }

    /// Database names that resolve to the lake.
    pub fn databases(&self) -> Vec<String> {
        databases(&self.settings)
    }

    /// A fresh session: lake catalog under `awsdatacatalog.default` and the
    /// configured database name, Trino functions, shared memory pool. A
    /// copy of one state built at start: nothing a query does registers in
    /// it, and building the function registry afresh cost every query.
    pub fn session(&self) -> SessionContext {
        SessionContext::new_with_state(self.base.clone())
    }

    fn base_session(catalog: &Arc<LakeCatalog>, runtime: &Arc<RuntimeEnv>, databases: &[String]) -> SessionState {
        let opts = SessionOptions::default();
        // Our own information_schema (Trino's type names), registered below.
        let config = session_config(&opts).with_default_catalog_and_schema(CATALOG, "default").with_information_schema(false);
        let ctx = query_context(config, Arc::clone(runtime));
        ctx.register_object_store(sediment_engine::files::lake_store_url().as_ref(), catalog.lake().store());
        let provider = MemoryCatalogProvider::new();
        for db in databases {
            // MemoryCatalogProvider::register_schema only fails for duplicate names of other kinds.
            let _ = provider.register_schema(db, catalog.schema_provider());
        }
        let _ = provider.register_schema(
            "information_schema",
            Arc::new(crate::infoschema::InformationSchema::new(Arc::clone(ctx.state().catalog_list()), Arc::clone(catalog))),
        );
        ctx.register_catalog(CATALOG, Arc::new(provider));
        dialect::register(&ctx);
        ctx.state()
    }

    /// Runs one statement to completion, and logs it (one line at target
    /// `sediment::query`).
    pub async fn run(self: &Arc<Self>, req: &QueryRequest, cancel: &Cancel, observer: &dyn Observer) -> Result<QueryOutput, QueryError> {
        let started = Instant::now();
        let mut req = std::borrow::Cow::Borrowed(req);
        if req.client.query_id.is_empty() {
            req.to_mut().client.query_id = uuid::Uuid::new_v4().to_string();
        }
        let result = match self.await_writes(&req, cancel).await {
            Ok(stale) => {
                let waited = started.elapsed();
                self.run_bounded(&req, cancel, observer).await.map(|o| QueryOutput { stale, queued: o.queued + waited, ..o })
            }
            Err(e) => Err(e),
        };
        crate::log::query(&req, &result, started.elapsed());
        result
    }

    /// [`run`](Self::run) as a task of its own, for doors whose protocol
    /// drops the waiting future when the client cancels or goes away: the
    /// drop cancels the query as `StopQueryExecution` does, so its slot and
    /// memory come back once its work has stopped.
    pub async fn run_detached(self: &Arc<Self>, req: QueryRequest) -> Result<QueryOutput, QueryError> {
        struct CancelOnDrop(Arc<Cancel>);
        impl Drop for CancelOnDrop {
            fn drop(&mut self) {
                self.0.cancel();
            }
        }
        let cancel = Arc::new(Cancel::default());
        let service = Arc::clone(self);
        let task_cancel = Arc::clone(&cancel);
        let task = tokio::spawn(async move { service.run(&req, &task_cancel, &()).await });
        let _guard = CancelOnDrop(cancel);
        task.await.map_err(|e| QueryError::system(format!("the query task failed: {e}")))?
    }

    /// The configured API key equal to `presented` (compared in constant
    /// time), for the doors that check keys themselves.
    pub fn key_matching(&self, presented: &str) -> Option<&str> {
        let eq = |a: &[u8], b: &[u8]| a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        self.settings.api_keys.iter().find(|k| eq(k.as_bytes(), presented.as_bytes())).map(String::as_str)
    }

    /// Waits, within the request's bound, until the writes its `after` names
    /// are visible to `events`. `Ok(Some(_))`: they are not, and the client
    /// asked for a stale answer over none.
    async fn await_writes(&self, req: &QueryRequest, cancel: &Cancel) -> Result<Option<Arc<NotVisible>>, QueryError> {
        let Some(after) = req.after.as_ref().filter(|a| !a.is_empty()) else { return Ok(None) };
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + after.wait;
        let manifests = self.catalog.manifests();
        let mut want = after.clone();
        let mut pause = Duration::from_millis(10);
        loop {
            let began = Instant::now();
            // A check is bounded too (a slot held by long queries, a slow
            // store): past the deadline, at least 100 ms after it began, what
            // it did not confirm counts as not visible.
            let bound = deadline.max(tokio::time::Instant::now() + Duration::from_millis(100));
            let round = async {
                let files = state::unseen(self.lake(), manifests, &want.token)
                    .await
                    .map_err(|e| QueryError::system(format!("checking the token's files: {e}")))?;
                want.token = Token::of_files(files);
                // Ids and positions are looked up in `events` once the token's
                // files are in (a token's events usually include them).
                if want.token.is_empty() && !want.event_ids.is_empty() {
                    let found = self.present("event_id", &["event_id"], want.event_ids.iter().cloned().collect()).await?;
                    want.event_ids.retain(|id| !found.contains(std::slice::from_ref(id)));
                }
                if want.token.is_empty() && want.event_ids.is_empty() && !want.positions.is_empty() {
                    let values = want.positions.iter().map(|(_, p)| p.clone()).collect();
                    let found = self.present("source_position", &["source", "source_position"], values).await?;
                    want.positions.retain(|(s, p)| !found.contains(&vec![s.clone(), p.clone()]));
                }
                Ok::<_, QueryError>(())
            };
            tokio::select! {
                checked = tokio::time::timeout_at(bound, round) => {
                    if let Ok(result) = checked {
                        result?;
                    }
                }
                _ = cancel.wait() => return Err(QueryError::cancelled("cancelled while waiting for the writes named by `after`")),
            }
            if want.is_empty() {
                // What the check saw, the query sees: no older listing.
                manifests.refuse_listings_before(began);
                return Ok(None);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                let files: Vec<_> = want.token.files().cloned().collect();
                let mut nv = NotVisible::new(&files, &want.event_ids, &want.positions, started.elapsed());
                nv.lag = self.source_lag().await.unwrap_or_default();
                if after.on_timeout == OnTimeout::Stale {
                    return Ok(Some(Arc::new(nv)));
                }
                return Err(QueryError::not_visible(nv));
            }
            tokio::select! {
                _ = tokio::time::sleep_until((now + pause).min(deadline)) => {}
                _ = cancel.wait() => return Err(QueryError::cancelled("cancelled while waiting for the writes named by `after`")),
            }
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// The distinct values of `columns` in `events` among the rows whose
    /// `filter` column is one of `values`: a query of its own, holding a slot.
    async fn present(&self, filter: &str, columns: &[&str], values: Vec<String>) -> Result<HashSet<Vec<String>>, QueryError> {
        use datafusion::arrow::array::AsArray;
        use datafusion::logical_expr::{col, lit};
        let _slot = Arc::clone(&self.slots).acquire_owned().await.map_err(|_| QueryError::system("the server is shutting down"))?;
        let ctx = self.session();
        let filter = filter.to_owned();
        let columns: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
        let work = async move {
            let list = values.into_iter().map(lit).collect();
            let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
            let batches = ctx
                .table("events")
                .await?
                .filter(col(filter.as_str()).in_list(list, false))?
                .select_columns(&cols)?
                .distinct()?
                .collect()
                .await?;
            let mut found = HashSet::new();
            for b in &batches {
                let text: Vec<ArrayRef> =
                    b.columns().iter().map(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8)).collect::<Result<_, _>>()?;
                for i in 0..b.num_rows() {
                    found.insert(text.iter().map(|c| c.as_string::<i32>().value(i).to_owned()).collect::<Vec<_>>());
                }
            }
            Ok::<_, datafusion::error::DataFusionError>(found)
        };
        self.cpu.spawn(work).await.map_err(crate::executor::join_error)?.map_err(QueryError::from)
    }

    /// Per source, the newest position visible to `events` and its age.
    pub async fn source_lag(&self) -> Result<Vec<SourceLag>, QueryError> {
        let events = state::load_events(self.lake(), self.catalog.manifests(), &|_| true)
            .await
            .map_err(|e| QueryError::system(format!("reading the lake: {e}")))?;
        let days = lag::recent_days(&events);
        let ctx = self.session();
        let work = async move { lag::source_lag(&ctx, &days, chrono::Utc::now()).await };
        self.cpu.spawn(work).await.map_err(crate::executor::join_error)?.map_err(QueryError::from)
    }

    async fn run_bounded(
        self: &Arc<Self>,
        req: &QueryRequest,
        cancel: &Cancel,
        observer: &dyn Observer,
    ) -> Result<QueryOutput, QueryError> {
        dialect::check_size(&req.sql)?;
        let queued_at = Instant::now();
        let slot = tokio::select! {
            s = Arc::clone(&self.slots).acquire_owned() => s.map_err(|_| QueryError::system("the server is shutting down"))?,
            _ = cancel.wait() => return Err(QueryError::cancelled("cancelled while queued")),
        };
        let queued = queued_at.elapsed();
        observer.running();
        let svc = Arc::clone(self);
        let request = req.clone();
        let mut task = self.cpu.spawn(async move { svc.execute(&request).await });
        let timeout = req.timeout.map_or(self.settings.timeout, |t| t.min(self.settings.timeout));
        let stopped = tokio::select! {
            joined = &mut task => {
                return match joined {
                    Ok(out) => out.map(|o| QueryOutput { queued, ..o }),
                    Err(e) => Err(crate::executor::join_error(e)),
                };
            }
            _ = tokio::time::sleep(timeout) => {
                QueryError::cancelled(format!("Query exceeded the {} timeout and was cancelled", humantime::format_duration(timeout)))
            }
            _ = cancel.wait() => QueryError::cancelled("Query was cancelled"),
        };
        // The work stops at its next yield; until then it keeps its slot, so
        // cancelled queries cannot make room for more work than there is.
        task.abort();
        tokio::spawn(async move {
            let _ = task.await;
            drop(slot);
        });
        Err(stopped)
    }

    /// Parses, plans and executes, on the CPU runtime.
    async fn execute(&self, req: &QueryRequest) -> Result<QueryOutput, QueryError> {
        let started = Instant::now();
        let ctx = self.session();
        let (statement, bound) = match &req.parsed {
            Parsed::Plan(state, plan) => return self.execute_plan(state.as_ref().clone(), plan, req, started).await,
            Parsed::Statement(stmt, bound) => (stmt.as_ref().clone(), bound.clone()),
            Parsed::Text => {
                // The one parse of this request; everything after works on the tree.
                let mut statements = dialect::parse(&req.sql).map_err(QueryError::from)?;
                if statements.len() != 1 {
                    return Err(QueryError::user(format!("expected one statement, got {}", statements.len())));
                }
                (statements.remove(0), None)
            }
        };
        let (mut stmt, params) = match statement {
            Statement::Prepare { name, statement, .. } => {
                self.store_prepared(&name.value, *statement);
                return Ok(meta::empty());
            }
            Statement::Deallocate { name, .. } => {
                self.prepared.lock().unwrap_or_else(|p| p.into_inner()).remove(&name.value.to_lowercase());
                return Ok(meta::empty());
            }
            Statement::Execute { name: Some(name), parameters, using, .. } => {
                let name = name.to_string();
                let stored = self.prepared(&name).ok_or_else(|| QueryError::user(format!("Prepared statement not found: {name}")))?;
                let mut values = parameters;
                values.extend(using.into_iter().map(|u| u.expr));
                (stored.statement, values)
            }
            other => match bound {
                Some(values) => (other, values),
                None => (other, dialect::parse_params(&req.params).map_err(QueryError::from)?),
            },
        };
        if let Some(out) = meta::answer(self, &ctx, &stmt).await? {
            return Ok(QueryOutput { planning: started.elapsed(), ..out });
        }
        refuse_writes(&stmt)?;
        dialect::rewrite(&mut stmt, params).map_err(QueryError::from)?;
        let plan = dialect::plan(&ctx.state(), stmt).await.map_err(QueryError::from)?;
        self.execute_plan(ctx.state(), &plan, req, started).await
    }

    /// Checks that a plan only reads, then optimizes, plans and runs it.
    async fn execute_plan(
        &self,
        mut state: SessionState,
        plan: &LogicalPlan,
        req: &QueryRequest,
        started: Instant,
    ) -> Result<QueryOutput, QueryError> {
        datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(plan)
            .map_err(|e| QueryError::user(format!("only queries are allowed: {e}")))?;
        let optimized = state.optimize(plan).map_err(QueryError::from)?;
        let batch = batch_for_constants(&optimized, state.config().batch_size(), pool_bytes(&self.settings));
        state.config_mut().options_mut().execution.batch_size = datafusion::common::config::ConfigNonZeroUsize::try_new(batch)?;
        let physical = state.query_planner().create_physical_plan(&optimized, &state).await.map_err(QueryError::from)?;
        let planning = started.elapsed();
        let cutoff = req.bytes_scanned_cutoff.unwrap_or(self.settings.bytes_scanned_cutoff);
        let exec_started = Instant::now();
        let task = Arc::new(datafusion::execution::TaskContext::from(&state));
        let (batches, rows) = self.collect(&physical, task, cutoff).await?;
        Ok(QueryOutput {
            schema: physical.schema(),
            batches,
            rows,
            bytes_scanned: bytes_scanned(&physical),
            planning,
            execution: exec_started.elapsed(),
            queued: Duration::ZERO,
            stale: None,
        })
    }

    async fn collect(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        task: Arc<datafusion::execution::TaskContext>,
        cutoff: u64,
    ) -> Result<(Vec<RecordBatch>, usize), QueryError> {
        // The result is held until the client has it: it counts against the pool.
        let held = MemoryConsumer::new("query result").register(task.memory_pool());
        let mut stream = datafusion::physical_plan::execute_stream(Arc::clone(plan), task).map_err(QueryError::from)?;
        let mut batches = Vec::new();
        let mut rows = 0usize;
        while let Some(b) = stream.next().await {
            let b = b.map_err(QueryError::from)?;
            let largest = largest_value(&b);
            if largest > MAX_RESULT_VALUE_BYTES {
                return Err(QueryError::user(format!(
                    "EXCEEDED_MEMORY_LIMIT: a value of the result is {largest} bytes; a result value may hold at most {MAX_RESULT_VALUE_BYTES} bytes"
                )));
            }
            held.try_grow(RESULT_RENDER_FACTOR * b.get_array_memory_size()).map_err(|e| {
                QueryError::user(format!(
                    "EXCEEDED_MEMORY_LIMIT: the result does not fit in query.memory_limit_mb; add a LIMIT or aggregate ({e})"
                ))
            })?;
            rows += b.num_rows();
            if rows > self.settings.max_result_rows {
                return Err(QueryError::user(format!(
                    "the result has more than {} rows (query.max_result_rows); add a LIMIT or aggregate",
                    self.settings.max_result_rows
                )));
            }
            if cutoff > 0 {
                let scanned = bytes_scanned(plan);
                if scanned > cutoff {
                    return Err(QueryError::cancelled(format!(
                        "Query cancelled: it scanned {scanned} bytes, over the {cutoff}-byte cutoff per query"
                    )));
                }
            }
            batches.push(b);
        }
        if cutoff > 0 {
            let scanned = bytes_scanned(plan);
            if scanned > cutoff {
                return Err(QueryError::cancelled(format!(
                    "Query cancelled: it scanned {scanned} bytes, over the {cutoff}-byte cutoff per query"
                )));
            }
        }
        Ok((batches, rows))
    }

    /// Stores a prepared statement from the Athena API's
    /// `CreatePreparedStatement` (SQL `PREPARE name FROM …` stores its parsed
    /// statement directly).
    pub fn prepare(&self, name: &str, sql: &str) -> Result<(), QueryError> {
        let mut statements = dialect::parse(sql).map_err(QueryError::from)?;
        if statements.len() != 1 {
            return Err(QueryError::user(format!("a prepared statement is one statement, got {}", statements.len())));
        }
        self.store_prepared(name, statements.remove(0));
        Ok(())
    }

    fn store_prepared(&self, name: &str, statement: Statement) {
        let prepared = Prepared { sql: statement.to_string(), statement };
        self.prepared.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_lowercase(), prepared);
    }

    pub fn prepared(&self, name: &str) -> Option<Prepared> {
        self.prepared.lock().unwrap_or_else(|p| p.into_inner()).get(&name.to_lowercase()).cloned()
    }

    pub fn catalog(&self) -> &Arc<LakeCatalog> {
        &self.catalog
    }

    /// The runtime every query's operators share (its memory pool): a
    /// door's own session is built on it, so its plans count against the
    /// same limit.
    pub fn runtime_env(&self) -> Arc<RuntimeEnv> {
        Arc::clone(self.base.runtime_env())
    }

    /// A statement's result columns and its parameters' types, planned but
    /// not run (the Postgres protocol's Describe). Bounded by the query
    /// timeout; it takes no slot, as it reads no data.
    pub async fn describe(self: &Arc<Self>, statement: Statement) -> Result<Described, QueryError> {
        let ctx = self.session();
        let svc = Arc::clone(self);
        let work = async move {
            // SHOW and DESCRIBE answer from metadata: their columns are those of the answer.
            if let Some(out) = meta::answer(&svc, &ctx, &statement).await? {
                return Ok(Described { schema: out.schema, params: Vec::new() });
            }
            refuse_writes(&statement)?;
            let mut stmt = statement;
            dialect::rewrite_unbound(&mut stmt).map_err(QueryError::from)?;
            let plan = dialect::plan(&ctx.state(), stmt).await.map_err(QueryError::from)?;
            let ordered = ordered_params(&plan)?;
            Ok(Described { schema: Arc::new(plan.schema().as_arrow().clone()), params: ordered })
        };
        let task = self.cpu.spawn(work);
        match tokio::time::timeout(self.settings.timeout, task).await {
            Ok(joined) => joined.map_err(crate::executor::join_error)?,
            Err(_) => Err(QueryError::cancelled(format!(
                "describing the statement exceeded the {} timeout",
                humantime::format_duration(self.settings.timeout)
            ))),
        }
    }
}

/// The types the planner gave `$1`, `$2`, … in order (`None` where it
/// could not tell).
pub fn ordered_params(plan: &LogicalPlan) -> Result<Vec<Option<arrow::datatypes::DataType>>, QueryError> {
    let types = plan.get_parameter_types().map_err(QueryError::from)?;
    let mut numbered: Vec<(usize, Option<arrow::datatypes::DataType>)> =
        types.into_iter().filter_map(|(id, t)| Some((id.strip_prefix('$')?.parse::<usize>().ok()?, t))).collect();
    numbered.sort_by_key(|(n, _)| *n);
    let mut ordered = vec![None; numbered.last().map_or(0, |(n, _)| *n)];
    for (n, t) in numbered {
        ordered[n - 1] = t;
    }
    Ok(ordered)
}

/// A statement planned but not run.
#[derive(Debug, Clone)]
pub struct Described {
    pub schema: SchemaRef,
    /// `$1`, `$2`, …: the type the planner gave each, where it could.
    pub params: Vec<Option<arrow::datatypes::DataType>>,
}

/// Resident memory of the server itself (code, runtimes, caches).
const PROCESS_RESERVE_MB: usize = 128;

/// The operators' memory pool: half of what `query.memory_limit_mb` leaves
/// after [`PROCESS_RESERVE_MB`]. The other half is headroom for what is
/// built from accounted state without being accounted itself (an
/// aggregate's value as it is emitted, a result as it is rendered, results
/// kept for `GetQueryResults`), so that the limit bounds the process
/// (ADR 0007), as `compaction.memory_limit_mb` does the compactor's.
pub fn pool_bytes(settings: &QuerySection) -> usize {
    ((settings.memory_limit_mb as usize).saturating_sub(PROCESS_RESERVE_MB).max(64) << 20) / 2
}

/// Largest value a result may hold, as Athena limits a row or a column.
pub const MAX_RESULT_VALUE_BYTES: usize = 32 << 20;

/// A result is held until it is sent, and rendered (JSON, CSV, Athena
/// pages) at a few times its Arrow size: it counts that much against the pool.
const RESULT_RENDER_FACTOR: usize = 3;

/// The largest variable-length value of a batch, in bytes.
fn largest_value(b: &RecordBatch) -> usize {
    use arrow::array::AsArray;
    b.columns()
        .iter()
        .map(|c| match c.data_type() {
            arrow::datatypes::DataType::Utf8 => {
                c.as_string::<i32>().offsets().windows(2).map(|w| (w[1] - w[0]) as usize).max().unwrap_or(0)
            }
            arrow::datatypes::DataType::LargeUtf8 => {
                c.as_string::<i64>().offsets().windows(2).map(|w| (w[1] - w[0]) as usize).max().unwrap_or(0)
            }
            arrow::datatypes::DataType::Binary => {
                c.as_binary::<i32>().offsets().windows(2).map(|w| (w[1] - w[0]) as usize).max().unwrap_or(0)
            }
            arrow::datatypes::DataType::List(_) | arrow::datatypes::DataType::Map(..) | arrow::datatypes::DataType::Struct(_) => {
                c.get_array_memory_size() / c.len().max(1)
            }
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

/// Rows per batch for a plan: a constant is repeated for every row of a
/// batch it is projected into, so a plan holding a large one (a long
/// literal, or a constant a function folded at planning) runs in batches
/// small enough that one repetition stays within a sixteenth of the pool.
fn batch_for_constants(plan: &LogicalPlan, configured: usize, pool_bytes: usize) -> usize {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut largest = 0usize;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let datafusion::logical_expr::Expr::Literal(v, _) = e {
                    largest = largest.max(v.size());
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    let budget = pool_bytes / 16;
    if largest.saturating_mul(configured) <= budget { configured } else { (budget / largest.max(1)).clamp(1, configured) }
}

/// Refuses, before planning, every statement that is not a read.
fn refuse_writes(stmt: &Statement) -> Result<(), QueryError> {
    match stmt {
        Statement::Query(_) => Ok(()),
        Statement::Explain { statement, .. } => refuse_writes(statement),
        other => {
            let verb = match other {
                Statement::Insert(_) => "INSERT".to_owned(),
                Statement::Update(_) => "UPDATE".to_owned(),
                Statement::Delete(_) => "DELETE".to_owned(),
                Statement::Merge(_) => "MERGE".to_owned(),
                Statement::Copy { .. } => "COPY".to_owned(),
                Statement::CreateTable(c) if c.query.is_some() => "CREATE TABLE AS".to_owned(),
                Statement::CreateTable(_) => "CREATE TABLE".to_owned(),
                Statement::CreateView(_) => "CREATE VIEW".to_owned(),
                Statement::Drop { .. } => "DROP".to_owned(),
                Statement::Set(_) => "SET".to_owned(),
                other => other.to_string().split_whitespace().take(2).collect::<Vec<_>>().join(" "),
            };
            Err(QueryError::user(format!("NOT_SUPPORTED: {verb} is not allowed: the query service is read-only")))
        }
    }
}

/// Bytes read by every scan in a plan so far.
pub fn bytes_scanned(plan: &Arc<dyn ExecutionPlan>) -> u64 {
    struct Sum(u64);
    impl ExecutionPlanVisitor for Sum {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, plan: &dyn ExecutionPlan) -> Result<bool, Self::Error> {
            if let Some(m) = plan.metrics()
                && let Some(v) = m.sum_by_name("bytes_scanned")
            {
                self.0 += v.as_usize() as u64;
            }
            Ok(true)
        }
    }
    let mut s = Sum(0);
    let _ = accept(plan.as_ref(), &mut s);
    s.0
}
