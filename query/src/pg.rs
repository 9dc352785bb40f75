//! The Postgres wire door (`query.pg_listen`, `sediment serve --pg-listen`):
//! psql, psycopg, SQLAlchemy, JDBC and the BI tools built on them.
//!
//! ```text
//!  text ─▶ Trino parse ─┬─ query, SHOW, DESCRIBE ──────────▶ QueryService (Trino dialect, the lake)
//!                       ├─ names pg_catalog / information_schema, or a
//!                       │  Postgres system function ─ Postgres parse ─▶ catalog session ─▶ QueryService (same bounds)
//!                       └─ SET, SHOW name, BEGIN/COMMIT ─▶ session settings here
//!  (what Trino's grammar cannot read — `::regclass`, `OPERATOR(pg_catalog.~)` — is tried as Postgres,
//!   and answered only if it is a catalog or session statement)
//! ```
//!
//! Analysts' SQL is Trino's, as at every door; the Postgres dialect is only
//! for the catalog queries clients send on their own when they connect or
//! browse. Every statement runs through [`QueryService::run`]: the same
//! read-only rules, memory pool, timeout, slots, query log and metrics, and
//! a Postgres cancel request cancels it as `StopQueryExecution` does.

use std::fmt::Debug;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::ParamValues;
use datafusion::datasource::MemTable;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{ColumnarValue, LogicalPlan, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    self, CastKind, Expr, ObjectName, ObjectNamePart, Set, Statement, Value, Visit, VisitMut, Visitor, VisitorMut,
};
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    DefaultServerParameterProvider, LoginInfo, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, PgWireConnectionState, PgWireServerHandlers, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::{Authentication, ParameterStatus};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::types::format::FormatOptions;
use sediment_trino as dialect;

mod decorrelate;

use crate::service::{Category, Client, Parsed, QueryError, QueryOutput, QueryRequest, QueryService};

/// The schema the lake's tables are in, seen from Postgres clients (their
/// default `search_path`); `public.events` and `events` name the same table.
pub const SCHEMA: &str = "public";

/// The version clients read from `server_version` and `version()`: the
/// Postgres protocol and catalog generation the door answers as.
pub const SERVER_VERSION: &str = "16.6";

/// Serves the Postgres protocol on a bound listener until the process ends.
pub async fn serve_on(door: Arc<PgDoor>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    loop {
        let (socket, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "postgres door: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let door = Arc::clone(&door);
        let tls = door.tls.clone();
        tokio::spawn(async move {
            if let Err(e) = pgwire::tokio::process_socket(socket, tls, door).await {
                tracing::debug!(%addr, error = %e, "postgres connection ended");
            }
        });
    }
}

/// The door: shared by every connection.
pub struct PgDoor {
    service: Arc<QueryService>,
    /// `pg_catalog` and `information_schema` over the lake's tables.
    catalog: SessionState,
    pg_parser: Arc<PostgresCompatibilityParser>,
    connections: Arc<ConnectionManager>,
    parameters: DefaultServerParameterProvider,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    me: std::sync::Weak<PgDoor>,
}

impl Debug for PgDoor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDoor").field("tls", &self.tls.is_some()).finish()
    }
}

impl PgDoor {
    pub fn new(service: Arc<QueryService>) -> Result<Arc<Self>, QueryError> {
        let catalog = catalog_session(&service)?;
        let settings = service.settings();
        let tls =
            crate::tls::identity("pg", &settings.pg_tls_cert, &settings.pg_tls_key)?.map(|id| tokio_rustls::TlsAcceptor::from(id.config));
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = SERVER_VERSION.to_owned();
        parameters.is_superuser = false;
        parameters.default_transaction_read_only = true;
        parameters.time_zone = "UTC".to_owned();
        parameters.date_style = "ISO, MDY".to_owned();
        Ok(Arc::new_cyclic(|me| Self {
            service,
            catalog,
            pg_parser: Arc::new(PostgresCompatibilityParser::new()),
            connections: Arc::new(ConnectionManager::new()),
            parameters,
            tls,
            me: me.clone(),
        }))
    }

    fn arc(&self) -> Arc<Self> {
        self.me.upgrade().expect("the door outlives its connections")
    }

    /// Splits a simple-query string into routed statements: the Trino parse
    /// first, the Postgres one only for catalog and session statements.
    async fn parse(&self, sql: &str) -> Result<Vec<Work>, QueryError> {
        dialect::check_size(sql).map_err(QueryError::from)?;
        let text = sql.to_owned();
        let pg_parser = Arc::clone(&self.pg_parser);
        self.service.on_cpu(move || route_all(&text, &pg_parser)).await?
    }

    async fn run(&self, client: &(impl ClientInfo + ?Sized), sql: String, parsed: Parsed) -> Result<QueryOutput, QueryError> {
        let req = QueryRequest {
            sql,
            client: Client { query_id: String::new(), interface: "postgres", key_id: key_id(client) },
            parsed,
            timeout: statement_timeout(client),
            ..Default::default()
        };
        // When the client cancels (or goes away), pgwire drops this future.
        self.service.run_detached(req).await
    }

    /// Runs one routed statement of the simple protocol.
    async fn simple<C>(&self, client: &mut C, work: Work) -> Result<Response, QueryError>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match work {
            Work::Lake(stmt) => {
                let out = self.run(client, stmt.to_string(), Parsed::Statement(stmt, None)).await?;
                self.respond(out, &Format::UnifiedText, client, None).await
            }
            Work::Catalog(stmt) => {
                let sql = stmt.to_string();
                let plan = self.plan_catalog(*stmt).await?;
                let out = self.run(client, sql, Parsed::Plan(Box::new(self.catalog.clone()), Box::new(plan))).await?;
                self.respond(out, &Format::UnifiedText, client, None).await
            }
            Work::Session(stmt) => session(client, &stmt).await,
        }
    }

    async fn plan_catalog(&self, mut stmt: Statement) -> Result<LogicalPlan, QueryError> {
        // The typed event tables the catalog lists: those of the current `events` version.
        self.service.catalog().typed().await.map_err(QueryError::from)?;
        backslash_escapes(&mut stmt);
        subscripts_as_series(&mut stmt);
        let state = self.catalog.clone();
        decorrelate::decorrelate(&mut stmt, &|name| {
            state.aggregate_functions().contains_key(name) || state.window_functions().contains_key(name)
        });
        let work = async move {
            let stmt = datafusion::sql::parser::Statement::Statement(Box::new(stmt));
            state.statement_to_plan(stmt).await
        };
        self.service.on_cpu_async(work).await?.map_err(QueryError::from)
    }

    /// Encodes a result as Postgres rows (on the query runtime), in the
    /// types the statement was described with when it was.
    async fn respond(
        &self,
        out: QueryOutput,
        format: &Format,
        client: &(impl ClientInfo + ?Sized),
        described: Option<SchemaRef>,
    ) -> Result<Response, QueryError> {
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let format = format.clone();
        let rows = self
            .service
            .on_cpu(move || {
                let schema = described.unwrap_or_else(|| wire_schema(&out.schema));
                let fields = Arc::new(
                    arrow_pg::datatypes::arrow_schema_to_pg_fields(&schema, &format, Some(options))
                        .map_err(|e| QueryError::system(format!("result types: {e}")))?,
                );
                let mut rows = Vec::with_capacity(out.rows);
                for b in &out.batches {
                    let b = wire_batch(b, &schema)?;
                    for row in arrow_pg::datatypes::encode_recordbatch(Arc::clone(&fields), b) {
                        rows.push(row.map_err(|e| QueryError::user(format!("encoding the result: {e}")))?);
                    }
                }
                Ok::<_, QueryError>((fields, rows))
            })
            .await??;
        let (fields, rows) = rows;
        Ok(Response::Query(QueryResponse::new(fields, futures::stream::iter(rows.into_iter().map(Ok)))))
    }
}

/// A statement and where it goes.
#[derive(Debug, Clone)]
enum Work {
    /// A Trino statement for the lake.
    Lake(Box<Statement>),
    /// A Postgres statement over `pg_catalog` / `information_schema`.
    Catalog(Box<Statement>),
    /// SET, SHOW name, BEGIN, COMMIT, ROLLBACK, DISCARD.
    Session(Box<Statement>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Lake,
    Catalog,
    Session,
}

fn route_all(sql: &str, pg_parser: &PostgresCompatibilityParser) -> Result<Vec<Work>, QueryError> {
    let pg = |why: QueryError| -> Result<Vec<Statement>, QueryError> {
        let statements = pg_parser.parse(sql).map_err(|_| why.clone())?;
        Ok(statements)
    };
    match dialect::parse(sql) {
        Ok(statements) => {
            let routes: Vec<Route> = statements.iter().map(route).collect();
            // Catalog statements are read in Postgres' grammar (quoted
            // names keep their case: psql's `AS "Name"` headers).
            let postgres = if routes.contains(&Route::Catalog) {
                let p = pg(QueryError::user("SYNTAX_ERROR: a catalog query the Postgres grammar cannot read"))?;
                if p.len() != statements.len() {
                    return Err(QueryError::user("SYNTAX_ERROR: the statements could not be told apart; send them one at a time"));
                }
                Some(p)
            } else {
                None
            };
            Ok(statements
                .into_iter()
                .zip(routes)
                .enumerate()
                .map(|(i, (s, r))| match r {
                    Route::Lake => Work::Lake(Box::new(unqualify_public(s))),
                    Route::Catalog => Work::Catalog(Box::new(postgres.as_ref().map_or(s, |p| p[i].clone()))),
                    Route::Session => Work::Session(Box::new(s)),
                })
                .collect())
        }
        Err(e) => {
            let trino = QueryError::from(e);
            let statements = pg(trino.clone())?;
            if statements.is_empty() || statements.iter().any(|s| route(s) == Route::Lake) {
                return Err(trino);
            }
            Ok(statements
                .into_iter()
                .map(|s| if route(&s) == Route::Session { Work::Session(Box::new(s)) } else { Work::Catalog(Box::new(s)) })
                .collect())
        }
    }
}

fn route(stmt: &Statement) -> Route {
    match stmt {
        Statement::Set(_)
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Discard { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => Route::Session,
        // `SHOW PARTITIONS t` is the lake's (sqlparser reads it as a variable).
        Statement::ShowVariable { variable } if !variable.first().is_some_and(|v| v.value.eq_ignore_ascii_case("partitions")) => {
            Route::Session
        }
        Statement::Query(_) | Statement::Explain { .. } if names_postgres_catalog(stmt) => Route::Catalog,
        _ => Route::Lake,
    }
}

/// Postgres system functions clients call while connecting or browsing.
const PG_FUNCTIONS: &[&str] = &[
    "version",
    "current_schema",
    "current_schemas",
    "current_database",
    "current_catalog",
    "current_user",
    "session_user",
    "current_setting",
    "format_type",
    "obj_description",
    "col_description",
    "shobj_description",
    "has_table_privilege",
    "has_schema_privilege",
    "has_database_privilege",
    "has_any_column_privilege",
    "quote_ident",
    "parse_ident",
    "array_upper",
    "array_lower",
    "to_regclass",
    "to_regtype",
    "json_build_object",
    "txid_current",
    "pg_get_indexdef",
];

/// Whether a query reads `pg_catalog` or `information_schema`, or calls a
/// Postgres system function.
fn names_postgres_catalog(stmt: &Statement) -> bool {
    struct Finder;
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_relation(&mut self, name: &ObjectName) -> ControlFlow<()> {
            let parts: Vec<String> = name.0.iter().map(|p| p.to_string().trim_matches('"').to_lowercase()).collect();
            let schema = parts.len() >= 2 && matches!(parts[parts.len() - 2].as_str(), "pg_catalog" | "information_schema");
            let bare = parts.len() == 1 && parts[0].starts_with("pg_");
            if schema || bare { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Function(f) => {
                    let parts: Vec<String> = f.name.0.iter().map(|p| p.to_string().to_lowercase()).collect();
                    let last = parts.last().map(String::as_str).unwrap_or_default();
                    if parts.first().is_some_and(|p| p == "pg_catalog") || last.starts_with("pg_") || PG_FUNCTIONS.contains(&last) {
                        return ControlFlow::Break(());
                    }
                }
                Expr::Cast { data_type: ast::DataType::Regclass, .. } => return ControlFlow::Break(()),
                Expr::Cast { data_type: ast::DataType::Custom(name, _), .. } => {
                    let last = name.0.last().map(|p| p.to_string().to_lowercase()).unwrap_or_default();
                    if last.starts_with("reg") || last == "oid" {
                        return ControlFlow::Break(());
                    }
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    stmt.visit(&mut Finder).is_break()
}

/// `x LIKE p ESCAPE 'c'` (SQLAlchemy escapes with `/`) as
/// `x LIKE __pg_like_pattern(p, 'c')`: DataFusion's LIKE escapes only with a
/// backslash, so the pattern is re-escaped with one.
fn backslash_escapes(stmt: &mut Statement) {
    struct Escapes;
    impl VisitorMut for Escapes {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::Like { pattern, escape_char, .. } | Expr::ILike { pattern, escape_char, .. } = e
                && let Some(esc) = escape_char.take()
            {
                let text = match &esc.value {
                    Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                if text == "\\" {
                    *escape_char = Some(esc);
                } else {
                    let p = std::mem::replace(pattern.as_mut(), Expr::value(Value::Null));
                    **pattern = dialect::call("__pg_like_pattern", vec![p, Expr::value(Value::SingleQuotedString(text))]);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = VisitMut::visit(stmt, &mut Escapes);
}

/// `generate_subscripts(a, d)` (a set-returning function SQLAlchemy's key
/// reflection selects beside `unnest(a)`) as
/// `unnest(generate_series(array_lower(a, d), array_upper(a, d)))`: the same
/// subscripts, and DataFusion zips the two `unnest`s row by row as Postgres
/// zips set-returning functions in a select list.
fn subscripts_as_series(stmt: &mut Statement) {
    struct Subscripts;
    impl VisitorMut for Subscripts {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = e
                && f.name.0.last().and_then(ObjectNamePart::as_ident).is_some_and(|n| n.value.eq_ignore_ascii_case("generate_subscripts"))
                && let ast::FunctionArguments::List(list) = &f.args
                && let [
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(array)),
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(dim)),
                ] = list.args.as_slice()
            {
                let bound = |name: &str| Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(dialect::call(name, vec![array.clone(), dim.clone()])),
                    data_type: ast::DataType::BigInt(None),
                    array: false,
                    format: None,
                };
                let series = dialect::call("generate_series", vec![bound("array_lower"), bound("array_upper")]);
                *e = dialect::call("unnest", vec![series]);
            }
            ControlFlow::Continue(())
        }
    }
    let _ = VisitMut::visit(stmt, &mut Subscripts);
}

/// The UDF behind [`backslash_escapes`].
fn like_pattern_udf() -> ScalarUDF {
    create_udf(
        "__pg_like_pattern",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let patterns = arrow::array::AsArray::as_string::<i32>(arrays[0].as_ref());
            let escapes = arrow::array::AsArray::as_string::<i32>(arrays[1].as_ref());
            let out: StringArray = patterns
                .iter()
                .zip(escapes.iter())
                .map(|(p, e)| {
                    let (p, e) = (p?, e?.chars().next());
                    let mut out = String::with_capacity(p.len());
                    let mut chars = p.chars();
                    while let Some(c) = chars.next() {
                        if Some(c) == e {
                            out.push('\\');
                            if let Some(n) = chars.next() {
                                out.push(n);
                            }
                        } else if c == '\\' {
                            out.push_str("\\\\");
                        } else {
                            out.push(c);
                        }
                    }
                    Some(out)
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// A Postgres function describing a catalog object the lake never has (an
/// index's definition): NULL, as Postgres answers for an oid that names no
/// such object.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NoSuchObject {
    name: &'static str,
    signature: datafusion::logical_expr::Signature,
}

impl NoSuchObject {
    /// `pg_get_indexdef(index_oid [, column, pretty])`.
    fn index_definition() -> Self {
        use datafusion::logical_expr::{Signature, TypeSignature};
        Self {
            name: "pg_get_indexdef",
            signature: Signature::one_of(vec![TypeSignature::Any(1), TypeSignature::Any(3)], Volatility::Stable),
        }
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for NoSuchObject {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, _: datafusion::logical_expr::ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))
    }
}

/// `json_build_object(k1, v1, …)`: a JSON object's text, numbers and
/// booleans as themselves, everything else as strings.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject(datafusion::logical_expr::Signature);

impl Default for JsonBuildObject {
    fn default() -> Self {
        Self(datafusion::logical_expr::Signature::variadic_any(Volatility::Immutable))
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }
    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.0
    }
    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: datafusion::logical_expr::ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return Err(datafusion::error::DataFusionError::Execution("json_build_object takes key/value pairs".into()));
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text: Vec<ArrayRef> = arrays.iter().map(|a| arrow::compute::cast(a, &DataType::Utf8)).collect::<Result<_, _>>()?;
        let out: StringArray = (0..args.number_rows)
            .map(|row| {
                let mut object = serde_json::Map::new();
                for pair in text.chunks(2).zip(arrays.chunks(2)) {
                    let ((keys, values), (_, raw)) = ((&pair.0[0], &pair.0[1]), (&pair.1[0], &pair.1[1]));
                    let key = arrow::array::AsArray::as_string::<i32>(keys.as_ref());
                    let value = arrow::array::AsArray::as_string::<i32>(values.as_ref());
                    let v = if value.is_null(row) {
                        serde_json::Value::Null
                    } else if raw.data_type().is_numeric() || raw.data_type() == &DataType::Boolean {
                        serde_json::from_str(value.value(row)).unwrap_or_else(|_| serde_json::Value::String(value.value(row).to_owned()))
                    } else {
                        serde_json::Value::String(value.value(row).to_owned())
                    };
                    object.insert(if key.is_null(row) { String::new() } else { key.value(row).to_owned() }, v);
                }
                Some(serde_json::Value::Object(object).to_string())
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `public.t` (and `<catalog>.public.t`) is the lake's `t`.
fn unqualify_public(mut stmt: Statement) -> Statement {
    struct Unqualify;
    impl VisitorMut for Unqualify {
        type Break = ();
        fn pre_visit_relation(&mut self, name: &mut ObjectName) -> ControlFlow<()> {
            let n = name.0.len();
            if n >= 2 && name.0[n - 2].as_ident().is_some_and(|i| i.value.eq_ignore_ascii_case(SCHEMA)) {
                let table: Vec<ObjectNamePart> = name.0.drain(n - 1..).collect();
                name.0 = table;
            }
            ControlFlow::Continue(())
        }
    }
    let _ = VisitMut::visit(&mut stmt, &mut Unqualify);
    stmt
}

/// The session behind catalog queries: the lake's tables under
/// `<query.database>.public`, `pg_catalog` from datafusion-pg-catalog, the
/// project's `information_schema` (Trino's type names), on the service's
/// runtime (its memory pool).
fn catalog_session(service: &QueryService) -> Result<SessionState, QueryError> {
    let database = service.settings().database.clone();
    let config = SessionConfig::new().with_default_catalog_and_schema(&database, SCHEMA).with_information_schema(false);
    let ctx = SessionContext::new_with_config_rt(config, service.runtime_env());
    ctx.register_object_store(sediment_engine::files::lake_store_url().as_ref(), service.lake().store());
    let provider = Arc::new(MemoryCatalogProvider::new());
    provider.register_schema(SCHEMA, service.catalog().schema_provider()).map_err(QueryError::from)?;
    ctx.register_catalog(&database, Arc::clone(&provider) as Arc<dyn CatalogProvider>);
    provider
        .register_schema(
            "information_schema",
            Arc::new(crate::infoschema::InformationSchema::new(Arc::clone(ctx.state().catalog_list()), Arc::clone(service.catalog()))),
        )
        .map_err(QueryError::from)?;
    setup_pg_catalog(&ctx, &database, EmptyContextProvider).map_err(|e| QueryError::system(format!("pg_catalog: {e}")))?;
    if let Some(pg_catalog) = provider.schema("pg_catalog") {
        provider.register_schema("pg_catalog", Arc::new(LakePgCatalog { inner: pg_catalog })).map_err(QueryError::from)?;
    }
    ctx.register_udf(version_udf());
    ctx.register_udf(current_setting_udf());
    ctx.register_udf(to_regtype_udf());
    ctx.register_udf(like_pattern_udf());
    // The lake has no serial columns and one collation: what SQLAlchemy's
    // inspector asks about them has these answers.
    ctx.register_udf(create_udf(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
    ));
    ctx.register_udf(create_udf(
        "pg_collation_is_visible",
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))),
    ));
    ctx.register_udf(ScalarUDF::new_from_impl(JsonBuildObject::default()));
    ctx.register_udf(ScalarUDF::new_from_impl(NoSuchObject::index_definition()));
    Ok(ctx.state())
}

/// `pg_catalog` with the lake's indexes and constraints: none. The lake's
/// tables have no keys (a snapshot's `aggregate_id` is unique per day by
/// construction, not by a constraint), so `pg_index` and `pg_constraint`
/// are empty, with their key columns typed as Postgres types them
/// (`int2vector`, `oidvector`, `smallint[]`, `oid[]` as lists) so that
/// SQLAlchemy's primary-key, unique-constraint and index reflection, which
/// `unnest`s them, plans and answers "none".
#[derive(Debug)]
struct LakePgCatalog {
    inner: Arc<dyn SchemaProvider>,
}

impl LakePgCatalog {
    fn list_columns(table: &str) -> &'static [(&'static str, DataType)] {
        match table {
            "pg_index" => &[
                ("indkey", DataType::Int16),
                ("indoption", DataType::Int16),
                ("indcollation", DataType::Int32),
                ("indclass", DataType::Int32),
            ],
            "pg_constraint" => &[
                ("conkey", DataType::Int16),
                ("confkey", DataType::Int16),
                ("confdelsetcols", DataType::Int16),
                ("conpfeqop", DataType::Int32),
                ("conppeqop", DataType::Int32),
                ("conffeqop", DataType::Int32),
                ("conexclop", DataType::Int32),
            ],
            _ => &[],
        }
    }
}

impl LakePgCatalog {
    /// `pg_class` with the access-privilege and storage-option arrays
    /// (`relacl`, `reloptions`) SQLAlchemy's index reflection selects: NULL,
    /// the defaults, for every relation.
    fn with_options(pg_class: Arc<dyn TableProvider>) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        use datafusion::logical_expr::{LogicalPlanBuilder, col, lit};
        let mut columns: Vec<datafusion::logical_expr::Expr> =
            pg_class.schema().fields().iter().map(|f| col(datafusion::common::Column::new_unqualified(f.name()))).collect();
        let text_array = ScalarValue::try_from(&DataType::new_list(DataType::Utf8, true))?;
        for name in ["relacl", "reloptions"] {
            if pg_class.schema().field_with_name(name).is_err() {
                columns.push(lit(text_array.clone()).alias(name));
            }
        }
        let plan =
            LogicalPlanBuilder::scan("pg_class", datafusion::datasource::provider_as_source(pg_class), None)?.project(columns)?.build()?;
        Ok(Arc::new(datafusion::datasource::ViewTable::new(plan, None)))
    }
}

#[async_trait]
impl SchemaProvider for LakePgCatalog {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        let Some(table) = self.inner.table(name).await? else { return Ok(None) };
        if name.eq_ignore_ascii_case("pg_class") {
            return Ok(Some(Self::with_options(table)?));
        }
        let lists = Self::list_columns(&name.to_ascii_lowercase());
        if lists.is_empty() {
            return Ok(Some(table));
        }
        let schema = table.schema();
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| match lists.iter().find(|(n, _)| n == f.name()) {
                Some((_, item)) => Field::new(f.name(), DataType::new_list(item.clone(), true), true),
                None => f.as_ref().clone(),
            })
            .collect();
        let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        Ok(Some(Arc::new(MemTable::try_new(schema, vec![vec![]])?)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// `version()` as Postgres words it, which clients parse for the version.
fn version_udf() -> ScalarUDF {
    let text = format!("PostgreSQL {SERVER_VERSION} (Sediment {}; Trino SQL dialect)", env!("CARGO_PKG_VERSION"));
    create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text.clone()))))),
    )
}

/// `current_setting(name)`: the server's value of a setting (Grafana reads
/// `search_path` with it); an unknown name is an error, as in Postgres.
fn current_setting_udf() -> ScalarUDF {
    create_udf(
        "current_setting",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let names = ColumnarValue::values_to_arrays(args)?;
            let names = arrow::array::AsArray::as_string::<i32>(names[0].as_ref());
            let values = names
                .iter()
                .map(|n| match n {
                    None => Ok(None),
                    Some(n) => default_setting(&n.to_lowercase()).map(Some).ok_or_else(|| {
                        datafusion::error::DataFusionError::Execution(format!("unrecognized configuration parameter \"{n}\""))
                    }),
                })
                .collect::<Result<StringArray, _>>()?;
            Ok(ColumnarValue::Array(Arc::new(values)))
        }),
    )
}

/// `to_regtype(name)`: the oid of a built-in type by name, NULL for any
/// other (psycopg and SQLAlchemy look up `hstore` and `json` so on connect).
fn to_regtype_udf() -> ScalarUDF {
    const TYPES: &[(&str, i32)] = &[
        ("bool", 16),
        ("boolean", 16),
        ("bytea", 17),
        ("int8", 20),
        ("bigint", 20),
        ("int2", 21),
        ("smallint", 21),
        ("int4", 23),
        ("integer", 23),
        ("text", 25),
        ("oid", 26),
        ("json", 114),
        ("float4", 700),
        ("real", 700),
        ("float8", 701),
        ("double precision", 701),
        ("varchar", 1043),
        ("character varying", 1043),
        ("date", 1082),
        ("timestamp", 1114),
        ("timestamp without time zone", 1114),
        ("timestamptz", 1184),
        ("timestamp with time zone", 1184),
        ("interval", 1186),
        ("numeric", 1700),
        ("uuid", 2950),
    ];
    create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let names = ColumnarValue::values_to_arrays(args)?;
            let names = arrow::array::AsArray::as_string::<i32>(names[0].as_ref());
            let oids: arrow::array::Int32Array = names
                .iter()
                .map(|n| {
                    let n = n?.trim().trim_start_matches("pg_catalog.").to_lowercase();
                    TYPES.iter().find(|(t, _)| *t == n).map(|(_, oid)| *oid)
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(oids)))
        }),
    )
}

// --- results ---------------------------------------------------------------

/// The schema a result goes out in: what the Postgres types cannot carry
/// (maps, nested rows in arrays) goes as its Trino text, as the Athena API
/// sends it.
fn wire_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if arrow_pg::datatypes::field_into_pg_type(f).is_ok() { f.as_ref().clone() } else { Field::new(f.name(), DataType::Utf8, true) }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// A batch in `schema`'s types: Trino text where the schema says text, a
/// cast where the statement was described with another type.
fn wire_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, QueryError> {
    if batch.schema().fields().iter().zip(schema.fields()).all(|(a, b)| a.data_type() == b.data_type()) {
        return RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec())
            .map_err(|e| QueryError::system(format!("result columns: {e}")));
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(Arc::clone(c))
            } else if f.data_type() == &DataType::Utf8 {
                Ok(Arc::new(StringArray::from(dialect::types::render_column(c))) as ArrayRef)
            } else {
                arrow::compute::cast(c, f.data_type()).map_err(|e| {
                    QueryError::user(format!("column {} was described as {} but is {}: {e}", f.name(), f.data_type(), c.data_type()))
                })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| QueryError::system(format!("result columns: {e}")))
}

/// A result whose batches are cast to its schema (the one its statement was
/// described with).
pub(crate) fn conform(out: QueryOutput) -> Result<QueryOutput, QueryError> {
    let batches = out.batches.iter().map(|b| wire_batch(b, &out.schema)).collect::<Result<Vec<_>, _>>()?;
    Ok(QueryOutput { batches, ..out })
}

// --- errors ----------------------------------------------------------------

/// A query error as Postgres reports it: SQLSTATE by kind.
fn pg_error(e: QueryError) -> PgWireError {
    let code = if e.cancelled {
        "57014"
    } else if e.not_visible.is_some() {
        "55000"
    } else {
        let m = e.message.as_str();
        match m.split(':').next().unwrap_or_default() {
            "SYNTAX_ERROR" => "42601",
            "NOT_SUPPORTED" => "0A000",
            "EXCEEDED_MEMORY_LIMIT" => "53200",
            "DIVISION_BY_ZERO" => "22012",
            "INVALID_CAST_ARGUMENT" => "22P02",
            "NUMERIC_VALUE_OUT_OF_RANGE" => "22003",
            "QUERY_TOO_LARGE" | "QUERY_TOO_COMPLEX" => "54000",
            "INVALID_FUNCTION_ARGUMENT" => "22023",
            _ if m.contains("not found") || m.contains("does not exist") => "42P01",
            _ if e.category == Category::System => "XX000",
            _ => "42000",
        }
    };
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".to_owned(), code.to_owned(), e.message)))
}

fn error_response(e: QueryError) -> Response {
    match pg_error(e) {
        PgWireError::UserError(info) => Response::Error(info),
        other => Response::Error(Box::new(ErrorInfo::new("ERROR".into(), "XX000".into(), other.to_string()))),
    }
}

fn api_error(message: impl Into<String>) -> PgWireError {
    pg_error(QueryError::user(message))
}

// --- session statements -----------------------------------------------------

/// Settings a client may change: they change what it is sent, or nothing.
/// `(name, the ParameterStatus name when the server reports it)`.
const SETTABLE: &[(&str, Option<&str>)] = &[
    ("application_name", Some("application_name")),
    ("client_encoding", Some("client_encoding")),
    ("datestyle", Some("DateStyle")),
    ("intervalstyle", Some("IntervalStyle")),
    ("extra_float_digits", None),
    ("search_path", None),
    ("timezone", Some("TimeZone")),
    ("statement_timeout", None),
    ("standard_conforming_strings", Some("standard_conforming_strings")),
    ("bytea_output", None),
    ("lc_messages", None),
    ("lc_monetary", None),
    ("lc_numeric", None),
    ("lc_time", None),
    ("idle_in_transaction_session_timeout", None),
    ("lock_timeout", None),
    ("default_transaction_read_only", None),
    ("transaction_read_only", None),
    ("default_transaction_isolation", None),
    ("transaction_isolation", None),
    ("jit", None),
    ("geqo", None),
    ("row_security", None),
];

/// Values a setting cannot take here, and why.
fn refuse_value(name: &str, value: &str) -> Option<String> {
    let v = value.to_lowercase();
    let ok = match name {
        "client_encoding" => matches!(v.as_str(), "utf8" | "utf-8" | "unicode"),
        "timezone" => matches!(v.as_str(), "utc" | "etc/utc" | "gmt" | "z" | "zulu" | "universal" | "+00:00" | "0"),
        "standard_conforming_strings" => matches!(v.as_str(), "on" | "true" | "1"),
        "default_transaction_read_only" | "transaction_read_only" => matches!(v.as_str(), "on" | "true" | "1"),
        _ => true,
    };
    (!ok).then(|| match name {
        "timezone" => format!("time zone {value} is not supported: Sediment answers in UTC (use AT TIME ZONE in the query)"),
        "default_transaction_read_only" | "transaction_read_only" => "the query service is read-only".to_owned(),
        _ => format!("{name} = {value} is not supported"),
    })
}

fn setting_value(e: &Expr) -> String {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}

/// SET, SHOW, and the transaction statements: read-only, so a transaction
/// is a no-op bracket.
async fn session<C>(client: &mut C, stmt: &Statement) -> Result<Response, QueryError>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    match stmt {
        Statement::StartTransaction { .. } => Ok(Response::TransactionStart(Tag::new("BEGIN"))),
        Statement::Commit { .. } => Ok(Response::TransactionEnd(Tag::new("COMMIT"))),
        Statement::Discard { .. } => Ok(Response::Execution(Tag::new("DISCARD ALL"))),
        Statement::Savepoint { .. } => Ok(Response::Execution(Tag::new("SAVEPOINT"))),
        Statement::ReleaseSavepoint { .. } => Ok(Response::Execution(Tag::new("RELEASE"))),
        Statement::Rollback { savepoint: Some(_), .. } => Ok(Response::Execution(Tag::new("ROLLBACK"))),
        Statement::Rollback { .. } => Ok(Response::TransactionEnd(Tag::new("ROLLBACK"))),
        Statement::ShowVariable { variable } => show(client, &setting_key(variable)),
        Statement::Set(set) => {
            let assignments: Vec<(String, String)> = match set {
                Set::SingleAssignment { variable, values, .. } => {
                    let value = values.iter().map(setting_value).collect::<Vec<_>>().join(", ");
                    vec![(variable.to_string().to_lowercase(), value)]
                }
                Set::SetTimeZone { value, .. } => vec![("timezone".to_owned(), setting_value(value))],
                Set::SetNames { charset_name, .. } => vec![("client_encoding".to_owned(), charset_name.to_string())],
                // SET [SESSION CHARACTERISTICS AS] TRANSACTION …: every
                // transaction here reads one committed lake version.
                Set::SetTransaction { modes, .. } => {
                    if modes.iter().any(|m| matches!(m, ast::TransactionMode::AccessMode(ast::TransactionAccessMode::ReadWrite))) {
                        return Err(QueryError::user("NOT_SUPPORTED: the query service is read-only"));
                    }
                    Vec::new()
                }
                Set::MultipleAssignments { assignments } => {
                    assignments.iter().map(|a| (a.name.to_string().to_lowercase(), setting_value(&a.value))).collect()
                }
                other => return Err(QueryError::user(format!("NOT_SUPPORTED: {other} is not supported"))),
            };
            for (name, value) in assignments {
                let name = name.trim_start_matches("session ").replace(' ', "_");
                let Some((_, reported)) = SETTABLE.iter().find(|(n, _)| *n == name) else {
                    return Err(QueryError::user(format!(
                        "NOT_SUPPORTED: SET {name} is not supported: it would change how the server runs queries, which sediment.toml decides"
                    )));
                };
                if let Some(why) = refuse_value(&name, &value) {
                    return Err(QueryError::user(format!("NOT_SUPPORTED: {why}")));
                }
                if name == "statement_timeout" {
                    parse_timeout(&value)?;
                }
                client.metadata_mut().insert(name.clone(), value.clone());
                if let Some(reported) = reported {
                    client
                        .send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new((*reported).to_owned(), value)))
                        .await
                        .map_err(|e| QueryError::system(format!("sending a parameter status: {}", PgWireError::from(e))))?;
                }
            }
            Ok(Response::Execution(Tag::new("SET")))
        }
        other => Err(QueryError::user(format!("NOT_SUPPORTED: {other}"))),
    }
}

/// The defaults `SHOW` reports for what a client has not set.
fn default_setting(name: &str) -> Option<String> {
    Some(
        match name {
            "server_version" => SERVER_VERSION,
            "server_version_num" => "160006",
            "server_encoding" | "client_encoding" => "UTF8",
            "datestyle" => "ISO, MDY",
            "intervalstyle" => "postgres",
            "timezone" | "time zone" => "UTC",
            "standard_conforming_strings" | "integer_datetimes" => "on",
            "transaction isolation level" | "transaction_isolation" | "default_transaction_isolation" => "read committed",
            "transaction_read_only" | "default_transaction_read_only" => "on",
            "is_superuser" => "off",
            "max_identifier_length" => "63",
            "search_path" => "\"$user\", public",
            "statement_timeout" => "0",
            "extra_float_digits" => "1",
            "bytea_output" => "hex",
            "application_name" => "",
            "lc_collate" | "lc_ctype" | "lc_messages" | "lc_monetary" | "lc_numeric" | "lc_time" => "C",
            "max_index_keys" => "32",
            _ => return None,
        }
        .to_owned(),
    )
}

/// The setting `SHOW …` names, as settings are kept (`SHOW TIME ZONE` is
/// `timezone`).
fn setting_key(variable: &[ast::Ident]) -> String {
    let name = variable.iter().map(|v| v.value.to_lowercase()).collect::<Vec<_>>().join(" ");
    match name.as_str() {
        "time zone" => "timezone".to_owned(),
        "transaction isolation level" => "transaction_isolation".to_owned(),
        _ => name,
    }
}

/// The columns `SHOW key` answers with: Describe and the answer share them.
fn show_columns(key: &str) -> Vec<&str> {
    if key == "all" { vec!["name", "setting", "description"] } else { vec![key] }
}

fn show(client: &(impl ClientInfo + ?Sized), key: &str) -> Result<Response, QueryError> {
    if key == "all" {
        let names: Vec<&str> = SETTABLE.iter().map(|(n, _)| *n).chain(["server_version", "server_encoding", "integer_datetimes"]).collect();
        let rows: Vec<Vec<Option<String>>> = names
            .iter()
            .map(|n| vec![Some((*n).to_owned()), client.metadata().get(*n).cloned().or_else(|| default_setting(n)), None])
            .collect();
        return text_response(&show_columns(key), rows);
    }
    let value = client
        .metadata()
        .get(key)
        .cloned()
        .or_else(|| default_setting(key))
        .ok_or_else(|| QueryError::user(format!("unrecognized configuration parameter \"{key}\"")))?;
    text_response(&show_columns(key), vec![vec![Some(value)]])
}

fn text_response(columns: &[&str], rows: Vec<Vec<Option<String>>>) -> Result<Response, QueryError> {
    let fields =
        Arc::new(columns.iter().map(|c| FieldInfo::new((*c).to_owned(), None, None, Type::TEXT, FieldFormat::Text)).collect::<Vec<_>>());
    let mut encoded = Vec::with_capacity(rows.len());
    for row in rows {
        let mut encoder = DataRowEncoder::new(Arc::clone(&fields));
        for v in row {
            encoder.encode_field(&v).map_err(|e| QueryError::system(e.to_string()))?;
        }
        encoded.push(Ok(encoder.take_row()));
    }
    Ok(Response::Query(QueryResponse::new(fields, futures::stream::iter(encoded))))
}

fn session_schema(stmt: &Statement) -> Vec<FieldInfo> {
    match stmt {
        Statement::ShowVariable { variable } => show_columns(&setting_key(variable))
            .into_iter()
            .map(|c| FieldInfo::new(c.to_owned(), None, None, Type::TEXT, FieldFormat::Text))
            .collect(),
        _ => Vec::new(),
    }
}

fn parse_timeout(value: &str) -> Result<Option<Duration>, QueryError> {
    let v = value.trim().to_lowercase();
    if v == "0" || v.is_empty() || v == "default" {
        return Ok(None);
    }
    let d = if let Ok(ms) = v.parse::<u64>() {
        Duration::from_millis(ms)
    } else {
        humantime::parse_duration(&v).map_err(|e| QueryError::user(format!("statement_timeout {value}: {e}")))?
    };
    Ok(Some(d))
}

fn statement_timeout(client: &(impl ClientInfo + ?Sized)) -> Option<Duration> {
    client.metadata().get("statement_timeout").and_then(|v| parse_timeout(v).ok().flatten())
}

fn key_id(client: &(impl ClientInfo + ?Sized)) -> Option<String> {
    client.session_extensions().get::<crate::server::KeyId>().map(|k| k.0.clone())
}

// --- the protocol -----------------------------------------------------------

impl PgWireServerHandlers for PgDoor {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.arc()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.arc()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.arc()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::new(DefaultCancelHandler::new(Arc::clone(&self.connections)))
    }
}

#[async_trait]
impl StartupHandler for PgDoor {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let keys = &self.service.settings().api_keys;
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if keys.is_empty() {
                    self.admit(client, None).await?;
                } else {
                    // The password is an API key (use TLS beyond loopback).
                    client.set_state(PgWireConnectionState::AuthenticationInProgress);
                    client.send(PgWireBackendMessage::Authentication(Authentication::CleartextPassword)).await?;
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(pwd) => {
                let pwd = pwd.into_password()?;
                if let Some(key) = self.service.key_matching(&pwd.password) {
                    self.admit(client, Some(crate::server::KeyId::of(key))).await?;
                } else {
                    let user = LoginInfo::from_client_info(client).user().unwrap_or_default().to_owned();
                    return Err(PgWireError::InvalidPassword(user));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl PgDoor {
    async fn admit<C>(&self, client: &mut C, key: Option<crate::server::KeyId>) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (pid, secret) = RandomPidSecretKeyGenerator::default().generate(client);
        client.set_pid_and_secret_key(pid, secret.clone());
        let (handle, guard) = self.connections.register(pid, secret);
        client.session_extensions().insert(handle);
        client.session_extensions().insert(guard);
        if let Some(key) = key {
            client.session_extensions().insert(key);
        }
        finish_authentication(client, &self.parameters).await
    }
}

#[async_trait]
impl SimpleQueryHandler for PgDoor {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let works = self.parse(query).await.map_err(pg_error)?;
        let mut responses = Vec::with_capacity(works.len());
        for work in works {
            match self.simple(client, work).await {
                Ok(r) => responses.push(r),
                Err(e) => {
                    // The statements after a failed one do not run (Postgres' rule).
                    responses.push(error_response(e));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

/// A statement of the extended protocol, planned when it was parsed so
/// Describe can answer without running it.
#[derive(Debug, Clone)]
pub enum PgStatement {
    Lake { statement: Box<Statement>, schema: SchemaRef, params: Vec<Option<DataType>> },
    Catalog { sql: String, plan: Box<LogicalPlan> },
    Session(Box<Statement>),
}

impl PgStatement {
    fn param_types(&self) -> Vec<Option<DataType>> {
        match self {
            Self::Lake { params, .. } => params.clone(),
            Self::Catalog { plan, .. } => catalog_params(plan),
            Self::Session(_) => Vec::new(),
        }
    }
}

fn catalog_params(plan: &LogicalPlan) -> Vec<Option<DataType>> {
    crate::service::ordered_params(plan).unwrap_or_default()
}

#[async_trait]
impl QueryParser for PgDoor {
    type Statement = PgStatement;

    async fn parse_sql<C>(&self, _client: &C, sql: &str, _types: &[Option<Type>]) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut works = self.parse(sql).await.map_err(pg_error)?;
        if works.len() > 1 {
            return Err(api_error("SYNTAX_ERROR: a prepared statement is one statement"));
        }
        let Some(work) = works.pop() else { return Ok(None) };
        Ok(Some(match work {
            Work::Lake(statement) => {
                let described = self.service.describe(statement.as_ref().clone()).await.map_err(pg_error)?;
                PgStatement::Lake { statement, schema: wire_schema(&described.schema), params: described.params }
            }
            Work::Catalog(stmt) => {
                let sql = stmt.to_string();
                let plan = self.plan_catalog(*stmt).await.map_err(pg_error)?;
                PgStatement::Catalog { sql, plan: Box::new(plan) }
            }
            Work::Session(stmt) => PgStatement::Session(stmt),
        }))
    }

    fn get_parameter_types(&self, stmt: &PgStatement) -> PgWireResult<Vec<Type>> {
        Ok(stmt
            .param_types()
            .iter()
            .map(|t| t.as_ref().and_then(|t| arrow_pg::datatypes::into_pg_type(t).ok()).unwrap_or(Type::TEXT))
            .collect())
    }

    fn get_result_schema(&self, stmt: &PgStatement, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        let format = format.unwrap_or(&Format::UnifiedText);
        match stmt {
            PgStatement::Lake { schema, .. } => arrow_pg::datatypes::arrow_schema_to_pg_fields(schema, format, None),
            PgStatement::Catalog { plan, .. } => {
                arrow_pg::datatypes::arrow_schema_to_pg_fields(&wire_schema(plan.schema().as_arrow()), format, None)
            }
            PgStatement::Session(s) => Ok(session_schema(s)),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgDoor {
    type Statement = PgStatement;
    type QueryParser = PgDoor;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.arc()
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<PgStatement>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &portal.statement.statement;
        let inferred = stmt.param_types();
        let refs: Vec<Option<&DataType>> = inferred.iter().map(Option::as_ref).collect();
        let result = match stmt {
            PgStatement::Session(s) => session(client, s).await,
            PgStatement::Lake { statement, schema, .. } => {
                let values = arrow_pg::datatypes::df::deserialize_parameters(portal, &refs)?;
                let exprs = param_exprs(&values).map_err(pg_error)?;
                match self.run(client, statement.to_string(), Parsed::Statement(statement.clone(), Some(exprs))).await {
                    Ok(out) => self.respond(out, &portal.result_column_format, client, Some(Arc::clone(schema))).await,
                    Err(e) => Err(e),
                }
            }
            PgStatement::Catalog { sql, plan } => {
                let values = arrow_pg::datatypes::df::deserialize_parameters(portal, &refs)?;
                let described = wire_schema(plan.schema().as_arrow());
                let bound = plan.as_ref().clone().replace_params_with_values(&values).map_err(|e| pg_error(e.into()))?;
                match self.run(client, sql.clone(), Parsed::Plan(Box::new(self.catalog.clone()), Box::new(bound))).await {
                    Ok(out) => self.respond(out, &portal.result_column_format, client, Some(described)).await,
                    Err(e) => Err(e),
                }
            }
        };
        result.map_err(pg_error)
    }
}

/// Bound values as Trino expressions of their types: `CAST('…' AS type)`
/// (a string stays a string literal), so a parameter has the type the
/// client bound, and the planner folds it to a constant.
fn param_exprs(values: &ParamValues) -> Result<Vec<Expr>, QueryError> {
    let list = match values {
        ParamValues::List(l) => l.iter().map(|v| v.value.clone()).collect::<Vec<_>>(),
        ParamValues::Map(_) => return Err(QueryError::user("named parameters are not supported")),
    };
    list.iter().map(scalar_expr).collect()
}

pub(crate) fn scalar_expr(v: &ScalarValue) -> Result<Expr, QueryError> {
    use ast::DataType as T;
    let string = |s: String| Expr::value(Value::SingleQuotedString(s));
    let ty = match v.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            return Ok(match v {
                ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => string(s.clone()),
                _ => Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(Expr::value(Value::Null)),
                    data_type: T::Varchar(None),
                    array: false,
                    format: None,
                },
            });
        }
        DataType::Boolean => T::Boolean,
        DataType::Int8 => T::TinyInt(None),
        DataType::Int16 => T::SmallInt(None),
        DataType::Int32 => T::Integer(None),
        DataType::Int64 => T::BigInt(None),
        DataType::Float32 => T::Real,
        DataType::Float64 => T::Double(ast::ExactNumberInfo::None),
        DataType::Decimal128(p, s) => T::Decimal(ast::ExactNumberInfo::PrecisionAndScale(u64::from(p), i64::from(s))),
        DataType::Date32 | DataType::Date64 => T::Date,
        DataType::Timestamp(_, None) => T::Timestamp(None, ast::TimezoneInfo::None),
        DataType::Timestamp(_, Some(_)) => T::Timestamp(None, ast::TimezoneInfo::WithTimeZone),
        DataType::Null => {
            return Ok(Expr::value(Value::Null));
        }
        other => return Err(QueryError::user(format!("NOT_SUPPORTED: a parameter of type {other}"))),
    };
    let text = if v.is_null() {
        Expr::value(Value::Null)
    } else {
        let s = match v {
            // ISO text Trino's casts read back.
            ScalarValue::TimestampMicrosecond(..)
            | ScalarValue::TimestampMillisecond(..)
            | ScalarValue::TimestampNanosecond(..)
            | ScalarValue::TimestampSecond(..) => {
                let array = v.to_array().map_err(QueryError::from)?;
                dialect::types::render_column(&array).into_iter().next().flatten().unwrap_or_default()
            }
            other => other.to_string(),
        };
        string(s)
    };
    Ok(Expr::Cast { kind: CastKind::Cast, expr: Box::new(text), data_type: ty, array: false, format: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(sql: &str) -> Vec<&'static str> {
        route_all(sql, &PostgresCompatibilityParser::new())
            .unwrap()
            .iter()
            .map(|w| match w {
                Work::Lake(_) => "lake",
                Work::Catalog(_) => "catalog",
                Work::Session(_) => "session",
            })
            .collect()
    }

    /// Runs a catalog-session rewrite's output through DataFusion.
    async fn answer(sql: &str, rewrite: impl Fn(&mut Statement)) -> Vec<String> {
        let mut stmt =
            datafusion::sql::sqlparser::parser::Parser::parse_sql(&datafusion::sql::sqlparser::dialect::PostgreSqlDialect {}, sql)
                .unwrap()
                .remove(0);
        rewrite(&mut stmt);
        let ctx = SessionContext::new();
        setup_pg_catalog(&ctx, "datafusion", EmptyContextProvider).unwrap();
        let batches = ctx.sql(&stmt.to_string()).await.unwrap().collect().await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        text.lines().map(str::to_owned).collect()
    }

    #[tokio::test]
    async fn generate_subscripts_counts_beside_unnest_as_in_postgres() {
        let rows =
            answer("SELECT unnest(k) AS v, generate_subscripts(k, 1) AS i FROM (SELECT [10, 20, 30] AS k)", subscripts_as_series).await;
        assert_eq!(rows[3..6], ["| 10 | 1 |", "| 20 | 2 |", "| 30 | 3 |"]);
        let none =
            answer("SELECT unnest(k) AS v, generate_subscripts(k, 1) AS i FROM (SELECT CAST([] AS INT[]) AS k)", subscripts_as_series)
                .await;
        assert!(none.len() <= 4, "{none:?}");
    }

    #[test]
    fn statements_go_where_their_names_live() {
        assert_eq!(routes("SELECT count(*) FROM events"), ["lake"]);
        assert_eq!(routes("SHOW TABLES"), ["lake"]);
        assert_eq!(routes("SELECT transform(ARRAY[1, 2], x -> x * 2)"), ["lake"]);
        assert_eq!(routes("SELECT relname FROM pg_catalog.pg_class"), ["catalog"]);
        assert_eq!(routes("SELECT table_name FROM information_schema.tables"), ["catalog"]);
        assert_eq!(routes("select pg_catalog.version()"), ["catalog"]);
        assert_eq!(routes("SELECT 'events'::regclass"), ["catalog"]);
        assert_eq!(routes("SET extra_float_digits = 3; SHOW transaction isolation level"), ["session", "session"]);
        assert_eq!(routes("BEGIN; SELECT 1; COMMIT"), ["session", "lake", "session"]);
        // Postgres-only grammar is accepted for the catalog, never for the lake.
        let psql = r#"SELECT n.nspname AS "Schema" FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname !~ '^pg_toast' AND c.relname OPERATOR(pg_catalog.~) '^(events)$'"#;
        assert_eq!(routes(psql), ["catalog"]);
        assert!(route_all("SELECT x::int FROM events WHERE", &PostgresCompatibilityParser::new()).is_err());
    }

    #[test]
    fn public_names_the_lake() {
        let Work::Lake(s) =
            route_all("SELECT * FROM public.events JOIN awsdatacatalog.public.orders ON true", &PostgresCompatibilityParser::new())
                .unwrap()
                .remove(0)
        else {
            panic!("a lake query")
        };
        assert_eq!(s.to_string(), "SELECT * FROM events JOIN orders ON true");
    }

    #[test]
    fn bound_values_keep_their_types() {
        let exprs = param_exprs(&ParamValues::List(vec![
            ScalarValue::Int64(Some(-5)).into(),
            ScalarValue::Utf8(Some("it's".into())).into(),
            ScalarValue::Date32(Some(20_000)).into(),
            ScalarValue::Float64(None).into(),
        ]))
        .unwrap();
        let text: Vec<String> = exprs.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["CAST('-5' AS BIGINT)", "'it''s'", "CAST('2024-10-04' AS DATE)", "CAST(NULL AS DOUBLE)"]);
    }
}
