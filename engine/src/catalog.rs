//! The read model as a DataFusion schema: `events`, projections with their
//! `_current` views, and SQL views — resolved afresh at every scan.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use chrono::{Days, NaiveDate};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::{MemTable, TableType, provider_as_source};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, TableProviderFilterPushDown, cast, col, lit};
use datafusion::physical_plan::ExecutionPlan;
use futures::StreamExt;
use sediment_lake::Lake;
use sediment_lake::config::{Config, Projection};
use sediment_lake::manifest::{DerivedManifest, DerivedManifestV1};
use sediment_lake::paths::{EVENTS_TABLE, RESTATEMENTS_TABLE, manifest_key, run_id_of_curated_file, table_root};

use crate::delta::{self, SnapshotFile};
use crate::events::{EventsTable, date32, empty, exact_filters, pushdown_by_partition};
use crate::files::{DataFile, FileListTable};
use crate::fold::{Folder, States, fold_batch};
use crate::schema::restatements_schema;
use crate::state::{ManifestCache, curated_days, load_events, payload_registries};
use crate::typed::{TypedEventsTable, TypedTableProblem, TypedTables, definitions};

fn external<E: std::error::Error + Send + Sync + 'static>(e: E) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Query-facing type of a stored type: timestamps become `timestamp(3)`.
fn query_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(..) => DataType::Timestamp(TimeUnit::Millisecond, None),
        other => other.clone(),
    }
}

fn query_schema(file_schema: &Schema, partition: &str) -> SchemaRef {
    let mut fields: Vec<Field> = vec![Field::new(partition, DataType::Date32, true)];
    fields.extend(file_schema.fields().iter().map(|f| Field::new(f.name(), query_type(f.data_type()), true)));
    Arc::new(Schema::new(fields))
}

/// Immutable derived-table manifests, cached by key.
#[derive(Debug, Default)]
struct DerivedCache(Mutex<HashMap<String, Arc<DerivedManifestV1>>>);

impl DerivedCache {
    async fn get(&self, lake: &Lake, key: &str) -> Result<Option<Arc<DerivedManifestV1>>> {
        if let Some(m) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
            return Ok(Some(Arc::clone(m)));
        }
        let Some(bytes) = lake.get_opt(key).await.map_err(external)? else { return Ok(None) };
        let m: DerivedManifest = serde_json::from_slice(&bytes).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let m = Arc::new(m.v1().clone());
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_owned(), Arc::clone(&m));
        Ok(Some(m))
    }
}

/// Shared state of one lake's catalog (caches live as long as the server).
#[derive(Debug)]
pub struct LakeCatalog {
    lake: Lake,
    config: Config,
    manifests: Arc<ManifestCache>,
    derived: DerivedCache,
    /// The typed event tables as of the `events` version last read.
    typed: Mutex<Arc<TypedState>>,
}

/// The typed event tables of one `events` version.
#[derive(Debug, Default)]
pub struct TypedState {
    version: Option<i64>,
    pub tables: TypedTables,
    pub problems: Vec<TypedTableProblem>,
}

impl TypedState {
    /// As `sediment status --json` and `GET /v1/lake` show them: each
    /// table's event type and payload columns with their Trino types, and
    /// what could not be served.
    pub fn summary(&self) -> serde_json::Value {
        let tables: Vec<serde_json::Value> = self
            .tables
            .values()
            .map(|t| {
                let columns: Vec<serde_json::Value> =
                    t.columns.iter().map(|c| serde_json::json!({"name": c.name, "field": c.field, "type": c.shape.trino_type()})).collect();
                serde_json::json!({"name": t.name, "event_type": t.event_type, "payload_columns": columns})
            })
            .collect();
        serde_json::json!({"tables": tables, "problems": self.problems})
    }
}

impl LakeCatalog {
    pub fn new(lake: Lake, config: Config) -> Arc<Self> {
        let manifests = Arc::new(ManifestCache::with_raw_listing_ttl(config.query.raw_listing_ttl));
        Arc::new(Self { lake, config, manifests, derived: DerivedCache::default(), typed: Default::default() })
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Manifests, Delta snapshots and the raw listing the catalog's tables share.
    pub fn manifests(&self) -> &Arc<ManifestCache> {
        &self.manifests
    }

    /// The configured read models' tables: each projection and its
    /// `_current` view, each view.
    fn read_model_names(&self) -> Vec<String> {
        let c = &self.config;
        let mut names = Vec::new();
        for p in &c.projections {
            names.push(p.name.clone());
            names.push(format!("{}_current", p.name));
        }
        names.extend(c.views.iter().map(|v| v.name.clone()));
        names
    }

    /// Names the read model's other tables take (typed tables get others).
    fn fixed_names(&self) -> std::collections::HashSet<String> {
        let mut names: std::collections::HashSet<String> = ["events", RESTATEMENTS_TABLE, "information_schema"].map(str::to_owned).into();
        names.extend(self.read_model_names());
        names
    }

    /// The typed event tables as last read, without reading the lake.
    pub fn typed_cached(&self) -> Arc<TypedState> {
        Arc::clone(&self.typed.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The typed event tables of the current `events` version: the payload
    /// shapes of its curated days' manifests, read again only when the
    /// version moved (one listing of the Delta log otherwise).
    pub async fn typed(&self) -> Result<Arc<TypedState>> {
        let Some(table) = self.manifests.tables.latest(&self.lake, EVENTS_TABLE).await.map_err(external)? else {
            return Ok(Arc::new(TypedState::default()));
        };
        let version = table.version().map(|v| v as i64);
        let cached = self.typed_cached();
        if cached.version == version && version.is_some() {
            return Ok(cached);
        }
        let files = delta::snapshot_files(&table).map_err(external)?;
        let curated = curated_days(&self.lake, &self.manifests, EVENTS_TABLE, files, &|_| true).await.map_err(external)?;
        let shapes = payload_registries(&curated);
        let (defs, problems) = definitions(&self.config, &shapes, &self.fixed_names());
        let state = Arc::new(TypedState { version, tables: defs.into_iter().map(|d| (d.name.clone(), d)).collect(), problems });
        *self.typed.lock().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&state);
        Ok(state)
    }

    /// The schema provider for a session.
    pub fn schema_provider(self: &Arc<Self>) -> Arc<LakeSchema> {
        Arc::new(LakeSchema { catalog: Arc::clone(self) })
    }

    /// Files of a derived table's snapshot by partition day.
    async fn derived_files(&self, name: &str, partition: &str) -> Result<BTreeMap<NaiveDate, Vec<SnapshotFile>>> {
        let Some(table) = self.manifests.tables.latest(&self.lake, name).await.map_err(external)? else { return Ok(BTreeMap::new()) };
        let mut out: BTreeMap<NaiveDate, Vec<SnapshotFile>> = BTreeMap::new();
        for f in delta::snapshot_files(&table).map_err(external)? {
            if let Some(d) = f.partition_values.get(partition).and_then(|v| v.as_deref()).and_then(|v| v.parse().ok()) {
                out.entry(d).or_default().push(f);
            }
        }
        Ok(out)
    }
}

/// The `default` database: every table of the read model.
#[derive(Debug)]
pub struct LakeSchema {
    catalog: Arc<LakeCatalog>,
}

#[async_trait]
impl SchemaProvider for LakeSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = vec!["events".to_owned()];
        names.extend(self.catalog.read_model_names());
        // Only a lake with read models has restatements to show.
        if names.len() > 1 {
            names.push(RESTATEMENTS_TABLE.to_owned());
        }
        // As last read: listings read them afresh first (`LakeCatalog::typed`).
        names.extend(self.catalog.typed_cached().tables.keys().cloned());
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let c = &self.catalog;
        if name == "events" {
            return Ok(Some(Arc::new(EventsTable::new(c.lake.clone(), Arc::clone(&c.manifests)))));
        }
        if name == RESTATEMENTS_TABLE && (!c.config.projections.is_empty() || !c.config.views.is_empty()) {
            return Ok(Some(Arc::new(RestatementsTable::new(Arc::clone(c)))));
        }
        for p in &c.config.projections {
            let folder = Folder::new(p).map_err(external)?;
            if name == p.name {
                let schema = folder.schema(false);
                return Ok(Some(Arc::new(DerivedTable::new(Arc::clone(c), &p.name, "snapshot_date", schema))));
            }
            if name.strip_suffix("_current") == Some(p.name.as_str()) {
                return Ok(Some(Arc::new(CurrentTable { catalog: Arc::clone(c), projection: p.clone(), folder })));
            }
        }
        if !c.fixed_names().contains(name)
            && let Some(def) = c.typed().await?.tables.get(name)
        {
            let events = EventsTable::new(c.lake.clone(), Arc::clone(&c.manifests));
            return Ok(Some(Arc::new(TypedEventsTable::new(events, def.clone()))));
        }
        for v in &c.config.views {
            if name == v.name {
                let Some(table) = c.manifests.tables.latest(&c.lake, &v.name).await.map_err(external)? else { return Ok(None) };
                let state = table.snapshot().map_err(external)?;
                let arrow = state.snapshot().arrow_schema();
                let file_schema = Arc::new(Schema::new(arrow.fields().iter().filter(|f| f.name() != "dt").cloned().collect::<Vec<_>>()));
                return Ok(Some(Arc::new(DerivedTable::new(Arc::clone(c), &v.name, "dt", file_schema))));
            }
        }
        Ok(None)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.table_names().iter().any(|n| n == name)
    }
}

/// A derived Delta table (projection snapshots, view days): the current
/// snapshot's files, partition pruned, timestamps as `timestamp(3)`.
#[derive(Debug)]
pub struct DerivedTable {
    catalog: Arc<LakeCatalog>,
    name: String,
    partition: String,
    file_schema: SchemaRef,
    schema: SchemaRef,
}

impl DerivedTable {
    fn new(catalog: Arc<LakeCatalog>, name: &str, partition: &str, file_schema: SchemaRef) -> Self {
        let schema = query_schema(&file_schema, partition);
        Self { catalog, name: name.to_owned(), partition: partition.to_owned(), file_schema, schema }
    }

    fn files_table(&self, days: &BTreeMap<NaiveDate, Vec<SnapshotFile>>) -> FileListTable {
        let files = days
            .iter()
            .flat_map(|(d, fs)| {
                fs.iter().map(move |f| DataFile {
                    key: format!("{}/{}", table_root(&self.name), f.path),
                    size: f.size,
                    num_rows: f.num_records,
                    partition_values: vec![ScalarValue::Date32(Some(date32(*d)))],
                })
            })
            .collect();
        FileListTable::new(Arc::clone(&self.file_schema), vec![Arc::new(Field::new(&self.partition, DataType::Date32, false))], files)
    }
}

/// `sediment_restatements`: what rebuilds of published projection snapshots
/// and view days changed, and the late events that caused it — the
/// restatement files the current derived manifests name (cumulative over
/// each day's runs, so a run that never committed contributes nothing).
#[derive(Debug)]
pub struct RestatementsTable {
    catalog: Arc<LakeCatalog>,
    schema: SchemaRef,
}

impl RestatementsTable {
    fn new(catalog: Arc<LakeCatalog>) -> Self {
        let fields: Vec<Field> =
            restatements_schema().fields().iter().map(|f| Field::new(f.name(), query_type(f.data_type()), true)).collect();
        Self { catalog, schema: Arc::new(Schema::new(fields)) }
    }

    async fn files(&self) -> Result<Vec<DataFile>> {
        let c = &self.catalog;
        let tables = c
            .config
            .projections
            .iter()
            .map(|p| (p.name.as_str(), "snapshot_date"))
            .chain(c.config.views.iter().map(|v| (v.name.as_str(), "dt")));
        let mut files = Vec::new();
        for (name, partition) in tables {
            for (dt, day) in c.derived_files(name, partition).await? {
                let Some(run) = day.iter().find_map(|f| run_id_of_curated_file(&f.path)) else { continue };
                let Some(m) = c.derived.get(&c.lake, &manifest_key(name, dt, run)).await? else { continue };
                files.extend(m.restatements.iter().map(|r| DataFile {
                    key: r.key.clone(),
                    size: r.size,
                    num_rows: Some(r.rows as usize),
                    partition_values: vec![],
                }));
            }
        }
        Ok(files)
    }
}

#[async_trait]
impl TableProvider for RestatementsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let files = self.files().await?;
        if files.is_empty() {
            return empty(&self.schema, projection);
        }
        let table = Arc::new(FileListTable::new(restatements_schema(), vec![], files));
        plan_typed(session, RESTATEMENTS_TABLE, table, &self.schema, projection, &[], limit).await
    }
}

/// Builds `scan(table) → filter → cast to query types → project → limit` and plans it.
///
/// `filters` are the ones to apply here: the ones the table answers exactly.
async fn plan_typed(
    session: &dyn Session,
    name: &str,
    table: Arc<dyn TableProvider>,
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let mut plan = LogicalPlanBuilder::scan(name, provider_as_source(table), None)?;
    let typed: Vec<Expr> = schema.fields().iter().map(|f| cast(col(f.name()), f.data_type().clone()).alias(f.name())).collect();
    plan = plan.project(typed)?;
    if let Some(predicate) = conjunction(filters.to_vec()) {
        plan = plan.filter(predicate)?;
    }
    if let Some(p) = projection {
        plan = plan.project(p.iter().map(|&i| col(schema.field(i).name())).collect::<Vec<_>>())?;
    }
    if let Some(n) = limit {
        plan = plan.limit(0, Some(n))?;
    }
    session.create_physical_plan(&plan.build()?).await
}

#[async_trait]
impl TableProvider for DerivedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(pushdown_by_partition(filters, &self.partition))
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let days = self.catalog.derived_files(&self.name, &self.partition).await?;
        if days.is_empty() {
            return empty(&self.schema, projection);
        }
        let table = Arc::new(self.files_table(&days));
        // The partition filters (exact); the others stay above the scan.
        let (exact, all) = exact_filters(filters, &self.partition);
        let limit = limit.filter(|_| all);
        plan_typed(session, &self.name, table, &self.schema, projection, &exact, limit).await
    }
}

/// `<projection>_current`: the newest trustworthy snapshot with every later
/// visible event folded in at query time — equal to a full replay of
/// `events`, including raw and late events not yet compacted.
#[derive(Debug)]
pub struct CurrentTable {
    catalog: Arc<LakeCatalog>,
    projection: Projection,
    folder: Folder,
}

impl CurrentTable {
    /// The day whose snapshot to start from: the newest snapshot day before
    /// any uncovered raw day, whose recorded inputs match the curated days.
    async fn base(&self, snapshots: &BTreeMap<NaiveDate, Vec<SnapshotFile>>) -> Result<Option<NaiveDate>> {
        let c = &self.catalog;
        let events = load_events(&c.lake, &c.manifests, &|_| true).await.map_err(external)?;
        let first_uncovered = events.uncovered().keys().next().copied();
        let mut base = None;
        let mut prev_run: Option<String> = None;
        for (day, files) in snapshots {
            if first_uncovered.is_some_and(|u| *day >= u) {
                break;
            }
            let Some(run) = files.iter().find_map(|f| run_id_of_curated_file(&f.path)) else { break };
            let Some(m) = c.derived.get(&c.lake, &manifest_key(&self.projection.name, *day, run)).await? else { break };
            let events_run = events.curated.get(day).map(|d| d.manifest.run_id.clone()).unwrap_or_else(|| "none".into());
            let fresh = m.inputs.iter().any(|i| i == &format!("events:{events_run}"))
                && m.inputs.iter().any(|i| i == &format!("prev:{}", prev_run.as_deref().unwrap_or("-")));
            if !fresh || base.is_some_and(|b: NaiveDate| b.checked_add_days(Days::new(1)) != Some(*day)) {
                break;
            }
            base = Some(*day);
            prev_run = Some(m.run_id.clone());
        }
        Ok(base)
    }
}

#[async_trait]
impl TableProvider for CurrentTable {
    fn schema(&self) -> SchemaRef {
        let s = self.folder.schema(false);
        Arc::new(Schema::new(s.fields().iter().map(|f| Field::new(f.name(), query_type(f.data_type()), true)).collect::<Vec<_>>()))
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let c = &self.catalog;
        let snapshots = c.derived_files(&self.projection.name, "snapshot_date").await?;
        let base = self.base(&snapshots).await?;
        let mut states = States::new();
        let ctx = crate::session::context(session.config().clone(), session.runtime_env().clone());
        ctx.register_table("events", Arc::new(EventsTable::new(c.lake.clone(), Arc::clone(&c.manifests))))?;
        if let Some(b) = base {
            let files: BTreeMap<NaiveDate, Vec<SnapshotFile>> = snapshots.get(&b).map(|f| (b, f.clone())).into_iter().collect();
            let t = DerivedTable::new(Arc::clone(c), &self.projection.name, "snapshot_date", self.folder.schema(false));
            let df = ctx.read_table(Arc::new(t.files_table(&files)))?;
            let mut stream = df.execute_stream().await?;
            while let Some(batch) = stream.next().await {
                self.folder.from_batch(&batch?, &mut states).map_err(external)?;
            }
        }
        let mut events = ctx.table("events").await?.filter(col("aggregate_type").eq(lit(self.projection.aggregate_type.clone())))?;
        if let Some(b) = base {
            events = events.filter(col("dt").gt(lit(ScalarValue::Date32(Some(date32(b))))))?;
        }
        let events = events.sort(vec![
            col("dt").sort(true, false),
            col("sequence").sort(true, true),
            col("occurred_at").sort(true, false),
            col("event_id").sort(true, false),
        ])?;
        let mut stream = events.execute_stream().await?;
        let mut cast_errors = 0;
        while let Some(batch) = stream.next().await {
            fold_batch(&self.folder, &mut states, &batch?, &mut cast_errors).map_err(external)?;
        }
        let batch = self.folder.to_batch(&states).map_err(external)?;
        let mem = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        plan_typed(session, &format!("{}_current", self.projection.name), Arc::new(mem), &self.schema(), projection, filters, limit).await
    }
}
