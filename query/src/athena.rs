//! The Athena API, in both bindings AWS SDKs use: AWS JSON 1.1 (`POST /`
//! with `X-Amz-Target: AmazonAthena.<Operation>`) and REST-JSON (`POST
//! /query-executions`, `GET /data-catalogs/…`, as botocore 1.44 and later
//! send it). Enough of it for boto3, PyAthena, awswrangler
//! and SQLAlchemy clients: query executions with their lifecycle, paged
//! results with Trino column types, workgroups and the data catalog.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sediment_trino::types::{athena_column, trino_type};
use serde_json::{Value, json};

use crate::after::After;
use crate::output::{text_rows_range, to_csv};
use crate::server::AppState;
use crate::service::{Cancel, Category, Observer, QueryError, QueryOutput, QueryRequest};

/// Executions kept for Get*/List* calls.
const KEEP: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl QueryState {
    fn name(&self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

#[derive(Debug)]
struct Execution {
    id: String,
    sql: String,
    params: Vec<String>,
    database: String,
    workgroup: String,
    output_location: String,
    state: QueryState,
    submitted: SystemTime,
    completed: Option<SystemTime>,
    started: Instant,
    output: Option<Arc<QueryOutput>>,
    /// The result's batches were dropped to keep retained results under
    /// budget; pages are read back from the result CSV at `result`.
    evicted: bool,
    /// The batches' bytes, counted in [`QueryService::retained`] while kept.
    hold: Option<crate::service::Hold>,
    result: ResultTarget,
    error: Option<QueryError>,
    cancel: Arc<Cancel>,
    reused: bool,
    total_ms: u64,
}

/// Every execution this server knows.
#[derive(Debug, Default)]
pub struct Executions {
    by_id: Mutex<HashMap<String, Execution>>,
    order: Mutex<VecDeque<String>>,
    tokens: Mutex<HashMap<String, String>>,
}

/// Drops the batches of the oldest retained results until what every door
/// holds fits [`QueryService::retained`]'s budget: older ones are then served
/// from their result CSV, as Athena serves every result from S3.
fn evict(state: &AppState, execs: &mut HashMap<String, Execution>) {
    let retained = state.service.retained();
    let order = state.executions.order.lock().unwrap_or_else(|p| p.into_inner());
    for id in order.iter().rev() {
        if !retained.over() {
            break;
        }
        if let Some(e) = execs.get_mut(id)
            && e.hold.take().is_some()
            && let Some(out) = e.output.as_ref()
        {
            e.output = Some(Arc::new(QueryOutput { batches: Vec::new(), ..(**out).clone() }));
            e.evicted = true;
        }
    }
}

/// An Athena error: HTTP 400 with `__type` and `Message`.
pub struct AthenaError(&'static str, String);

impl IntoResponse for AthenaError {
    fn into_response(self) -> Response {
        let status = if self.0 == "InternalServerException" { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::BAD_REQUEST };
        (status, [("content-type", "application/x-amz-json-1.1")], Json(json!({"__type": self.0, "Message": self.1}))).into_response()
    }
}

fn invalid(msg: impl Into<String>) -> AthenaError {
    AthenaError("InvalidRequestException", msg.into())
}

fn epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

fn str_field<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `POST /` dispatch on `X-Amz-Target` (the AWS JSON 1.1 binding).
pub async fn dispatch(
    State(state): State<Arc<AppState>>,
    key: Option<axum::Extension<crate::server::KeyId>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(op) = target.strip_prefix("AmazonAthena.") else {
        return invalid(format!("unknown target {target:?}; expected AmazonAthena.<Operation>")).into_response();
    };
    let req = match body_json(&body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    match operation(&state, key, op, &req, after_header(&headers)).await {
        Ok(v) => ([("content-type", "application/x-amz-json-1.1")], Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

fn body_json(body: &[u8]) -> Result<Value, AthenaError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not JSON: {e}")))
}

/// The path prefixes of the Athena API's REST-JSON binding (what current
/// AWS SDKs send: `POST /query-executions`, `GET /data-catalogs/…`).
pub const REST_PREFIXES: [&str; 4] = ["/query-executions", "/batch-get-query-executions", "/workgroups", "/data-catalogs"];

/// The REST-JSON binding: the operation and its URI members from the method
/// and path, query-string members from the query, the rest from the body;
/// then the same operations as [`dispatch`].
pub async fn rest_json(
    State(state): State<Arc<AppState>>,
    key: Option<axum::Extension<crate::server::KeyId>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let answer = async {
        let mut req = body_json(&body)?;
        let segments: Vec<String> = uri
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        let (op, members) = rest_operation(&method, &segments)
            .ok_or_else(|| invalid(format!("{method} {} is not an operation of the Athena API that Sediment serves", uri.path())))?;
        let Some(fields) = req.as_object_mut() else { return Err(invalid("the body is not a JSON object")) };
        for (name, value) in members {
            fields.insert(name.to_owned(), Value::String(value));
        }
        for (name, value) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
            let value = match (name.as_ref(), value.parse::<u64>()) {
                ("MaxResults", Ok(n)) => json!(n),
                _ => Value::String(value.into_owned()),
            };
            fields.insert(name.into_owned(), value);
        }
        operation(&state, key, op, &req, after_header(&headers)).await
    };
    match answer.await {
        Ok(v) => ([("content-type", "application/json")], Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The operation a REST-JSON request names, with its URI members.
fn rest_operation(method: &axum::http::Method, path: &[String]) -> Option<(&'static str, Vec<(&'static str, String)>)> {
    use axum::http::Method;
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    let one = |name: &'static str, v: &str| vec![(name, v.to_owned())];
    Some(match p.as_slice() {
        ["query-executions"] if post => ("StartQueryExecution", vec![]),
        ["query-executions"] if get => ("ListQueryExecutions", vec![]),
        ["query-executions", id] if get => ("GetQueryExecution", one("QueryExecutionId", id)),
        ["query-executions", id, "results"] if get => ("GetQueryResults", one("QueryExecutionId", id)),
        ["query-executions", id, "stop"] if post => ("StopQueryExecution", one("QueryExecutionId", id)),
        ["batch-get-query-executions"] if post => ("BatchGetQueryExecution", vec![]),
        ["workgroups"] if get => ("ListWorkGroups", vec![]),
        ["workgroups", wg] if get => ("GetWorkGroup", one("WorkGroup", wg)),
        ["workgroups", wg, "prepared-statements"] if post => ("CreatePreparedStatement", one("WorkGroup", wg)),
        ["workgroups", wg, "prepared-statements", name] if get => {
            ("GetPreparedStatement", vec![("WorkGroup", (*wg).to_owned()), ("StatementName", (*name).to_owned())])
        }
        ["data-catalogs"] if get => ("ListDataCatalogs", vec![]),
        ["data-catalogs", name] if get => ("GetDataCatalog", one("Name", name)),
        ["data-catalogs", c, "databases"] if get => ("ListDatabases", one("CatalogName", c)),
        ["data-catalogs", c, "databases", d] if get => {
            ("GetDatabase", vec![("CatalogName", (*c).to_owned()), ("DatabaseName", (*d).to_owned())])
        }
        ["data-catalogs", c, "databases", d, "tables"] if get => {
            ("ListTableMetadata", vec![("CatalogName", (*c).to_owned()), ("DatabaseName", (*d).to_owned())])
        }
        ["data-catalogs", c, "databases", d, "tables", t] if get => {
            ("GetTableMetadata", vec![("CatalogName", (*c).to_owned()), ("DatabaseName", (*d).to_owned()), ("TableName", (*t).to_owned())])
        }
        _ => return None,
    })
}

/// Read your writes through the Athena API, which has no member for it: the
/// `X-Sediment-After` header of `StartQueryExecution` holds a token or the
/// JSON object REST takes as `after` (see [`crate::after`]). Until the writes
/// are visible the execution stays QUEUED; if the wait runs out it FAILS
/// with NOT_YET_VISIBLE (retryable).
pub const AFTER_HEADER: &str = "x-sediment-after";

fn after_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(AFTER_HEADER).and_then(|v| v.to_str().ok())
}

/// One Athena operation on its input members, whichever binding carried it.
async fn operation(
    state: &Arc<AppState>,
    key: Option<axum::Extension<crate::server::KeyId>>,
    op: &str,
    req: &Value,
    after: Option<&str>,
) -> Result<Value, AthenaError> {
    match op {
        "StartQueryExecution" => {
            let max_wait = state.service.settings().max_after_wait;
            let after = after.map(|a| After::parse(a, max_wait)).transpose().map_err(|e| invalid(format!("{AFTER_HEADER}: {e}")))?;
            start(state, req, key.map(|k| k.0.0), after).await
        }
        "GetQueryExecution" => get_execution(state, req),
        "BatchGetQueryExecution" => batch_get(state, req),
        "GetQueryResults" => get_results(state, req).await,
        "StopQueryExecution" => stop(state, req),
        "ListQueryExecutions" => list_executions(state, req),
        "GetWorkGroup" => get_workgroup(state, req),
        "ListWorkGroups" => Ok(
            json!({"WorkGroups": [{"Name": "primary", "State": "ENABLED", "Description": "Sediment", "EngineVersion": engine_version()}]}),
        ),
        "ListDataCatalogs" => Ok(json!({"DataCatalogsSummary": [{"CatalogName": "AwsDataCatalog", "Type": "GLUE"}]})),
        "GetDataCatalog" => Ok(json!({"DataCatalog": {"Name": "AwsDataCatalog", "Type": "GLUE", "Description": "The Sediment lake"}})),
        "ListDatabases" => Ok(list_databases(state)),
        "GetDatabase" => get_database(state, req),
        "ListTableMetadata" => list_tables(state, req).await,
        "GetTableMetadata" => get_table(state, req).await,
        "CreatePreparedStatement" => {
            let (Some(name), Some(sql)) = (str_field(req, "StatementName"), str_field(req, "QueryStatement")) else {
                return Err(invalid("StatementName and QueryStatement are required"));
            };
            match state.service.prepare(name, sql) {
                Ok(()) => Ok(json!({})),
                Err(e) => Err(invalid(e.message)),
            }
        }
        "GetPreparedStatement" => match str_field(req, "StatementName").and_then(|n| state.service.prepared(n).map(|s| (n, s.sql))) {
            Some((n, s)) => Ok(json!({"PreparedStatement": {"StatementName": n, "QueryStatement": s, "WorkGroupName": "primary"}})),
            None => Err(AthenaError("ResourceNotFoundException", "prepared statement not found".into())),
        },
        other => Err(invalid(format!("operation {other} is not supported by Sediment"))),
    }
}

fn engine_version() -> Value {
    json!({"SelectedEngineVersion": "Athena engine version 3", "EffectiveEngineVersion": "Athena engine version 3"})
}

struct Track {
    state: Arc<AppState>,
    id: String,
}

impl Observer for Track {
    fn running(&self) {
        if let Some(e) = self.state.executions.by_id.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&self.id)
            && e.state == QueryState::Queued
        {
            e.state = QueryState::Running;
        }
    }
}

async fn start(state: &Arc<AppState>, req: &Value, key_id: Option<String>, after: Option<After>) -> Result<Value, AthenaError> {
    let sql = str_field(req, "QueryString").ok_or_else(|| invalid("QueryString is required"))?.to_owned();
    if sql.trim().is_empty() || sql.len() > sediment_trino::MAX_QUERY_BYTES {
        return Err(invalid(format!("QueryString must be 1 to {} characters", sediment_trino::MAX_QUERY_BYTES)));
    }
    let params: Vec<String> = req
        .get("ExecutionParameters")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let database = req.pointer("/QueryExecutionContext/Database").and_then(Value::as_str).unwrap_or("default").to_lowercase();
    if !state.service.databases().contains(&database) {
        return Err(invalid(format!("Database {database} does not exist; use one of {:?}", state.service.databases())));
    }
    let workgroup = str_field(req, "WorkGroup").unwrap_or("primary").to_owned();
    if let Some(token) = str_field(req, "ClientRequestToken")
        && let Some(id) = state.executions.tokens.lock().unwrap_or_else(|p| p.into_inner()).get(token)
    {
        return Ok(json!({"QueryExecutionId": id}));
    }
    let id = new_id();
    let requested_location = req.pointer("/ResultConfiguration/OutputLocation").and_then(Value::as_str);
    let (location, target) = result_location(state, requested_location, &id)?;
    // Result reuse: an identical query that succeeded recently enough.
    let reuse_minutes = req
        .pointer("/ResultReuseConfiguration/ResultReuseByAgeConfiguration")
        .filter(|c| c.get("Enabled").and_then(Value::as_bool) == Some(true))
        // An answer from before the writes `after` names would not reflect them.
        .filter(|_| after.is_none())
        .map(|c| c.get("MaxAgeInMinutes").and_then(Value::as_u64).unwrap_or(60));
    let reused = reuse_minutes.and_then(|minutes| {
        let execs = state.executions.by_id.lock().unwrap_or_else(|p| p.into_inner());
        execs
            .values()
            .filter(|e| e.state == QueryState::Succeeded && e.sql == sql && e.params == params && e.database == database)
            .filter(|e| e.completed.and_then(|c| c.elapsed().ok()).is_some_and(|age| age <= Duration::from_secs(minutes * 60)))
            .max_by_key(|e| e.completed)
            .and_then(|e| e.output.clone())
    });
    let now = SystemTime::now();
    let exec = Execution {
        id: id.clone(),
        sql: sql.clone(),
        params: params.clone(),
        database,
        workgroup,
        output_location: location,
        state: if reused.is_some() { QueryState::Succeeded } else { QueryState::Queued },
        submitted: now,
        completed: reused.as_ref().map(|_| now),
        started: Instant::now(),
        output: reused.clone(),
        evicted: false,
        hold: None,
        result: target.clone(),
        error: None,
        cancel: Arc::new(Cancel::default()),
        reused: reused.is_some(),
        total_ms: 0,
    };
    let cancel = Arc::clone(&exec.cancel);
    insert(state, exec, str_field(req, "ClientRequestToken"));
    if reused.is_some() {
        return Ok(json!({"QueryExecutionId": id}));
    }
    let st = Arc::clone(state);
    let run_id = id.clone();
    tokio::spawn(async move {
        let client = crate::service::Client { query_id: run_id.clone(), interface: "athena", key_id };
        let request = QueryRequest { sql, params, client, after, ..Default::default() };
        let track = Track { state: Arc::clone(&st), id: run_id.clone() };
        let started = Instant::now();
        let result = st.service.run(&request, &cancel, &track).await;
        st.metrics.record(started.elapsed(), result.as_ref().map(|o| (o.bytes_scanned, o.rows as u64)).map_err(|e| e.cancelled));
        // Athena writes the result CSV before reporting success.
        let result = match result {
            Ok(out) => match st.service.on_cpu(move || (to_csv(&out), result_metadata(&out), out)).await {
                Ok((csv, metadata, out)) => match target.write(csv, metadata).await {
                    Ok(()) => Ok(out),
                    Err(e) => Err(QueryError::system(format!("writing the result to {}: {e}", target.key))),
                },
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let mut execs = st.executions.by_id.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = execs.get_mut(&run_id) {
            e.completed = Some(SystemTime::now());
            e.total_ms = e.started.elapsed().as_millis() as u64;
            match result {
                _ if e.state == QueryState::Cancelled => {}
                Ok(out) => {
                    e.state = QueryState::Succeeded;
                    e.hold = Some(st.service.retained().hold(out.bytes()));
                    e.output = Some(Arc::new(out));
                    evict(&st, &mut execs);
                }
                Err(err) => {
                    e.state = if err.cancelled { QueryState::Cancelled } else { QueryState::Failed };
                    e.error = Some(err);
                }
            }
        }
    });
    Ok(json!({"QueryExecutionId": id}))
}

/// Where an execution's result files go: a key in the lake, or in another
/// S3 bucket when the client asks for an `OutputLocation` outside the lake.
#[derive(Debug, Clone)]
struct ResultTarget {
    store: sediment_lake::Lake,
    /// Key of `<id>.csv` within `store`.
    key: String,
}

impl ResultTarget {
    /// Writes `<id>.csv`, then `<id>.csv.metadata`, as Athena does.
    async fn write(&self, csv: String, metadata: String) -> sediment_lake::storage::Result<()> {
        self.store.put(&self.key, csv.into()).await?;
        self.store.put(&format!("{}.metadata", self.key), metadata.into()).await
    }
}

/// The result CSV's location (as `GetQueryExecution` reports it) and where
/// to write it: the requested `OutputLocation` (inside the lake, or any
/// `s3://` location the server's credentials can write), else the lake's
/// `_results/`.
fn result_location(state: &AppState, requested: Option<&str>, id: &str) -> Result<(String, ResultTarget), AthenaError> {
    let lake = state.service.lake().url().trim_end_matches('/').to_owned();
    let file = format!("{id}.csv");
    let under = |rel: &str| if rel.is_empty() { file.clone() } else { format!("{rel}/{file}") };
    if let Some(loc) = requested.map(|l| l.trim_end_matches('/')) {
        if let Some(rest) = loc.strip_prefix(&lake)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            let key = under(rest.trim_start_matches('/'));
            return Ok((format!("{loc}/{file}"), ResultTarget { store: state.service.lake().clone(), key }));
        }
        let Some(rest) = loc.strip_prefix("s3://").filter(|r| !r.is_empty()) else {
            return Err(invalid(format!("OutputLocation {loc:?} must be an s3:// location (s3://bucket/prefix/)")));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let store = sediment_lake::Lake::open(&format!("s3://{bucket}")).map_err(|e| invalid(format!("OutputLocation {loc:?}: {e}")))?;
        return Ok((format!("{loc}/{file}"), ResultTarget { store, key: under(prefix) }));
    }
    let key = format!("{}/{file}", sediment_lake::paths::RESULTS_PREFIX);
    Ok((format!("{lake}/{key}"), ResultTarget { store: state.service.lake().clone(), key }))
}

/// The `.csv.metadata` beside a result: Athena writes its column metadata
/// there in a binary form clients do not read; this is the same
/// `ResultSetMetadata` that `GetQueryResults` returns, as JSON.
fn result_metadata(out: &QueryOutput) -> String {
    json!({"ColumnInfo": column_info(out)}).to_string()
}

fn insert(state: &AppState, exec: Execution, token: Option<&str>) {
    let id = exec.id.clone();
    if let Some(t) = token {
        state.executions.tokens.lock().unwrap_or_else(|p| p.into_inner()).insert(t.to_owned(), id.clone());
    }
    let mut by_id = state.executions.by_id.lock().unwrap_or_else(|p| p.into_inner());
    let mut order = state.executions.order.lock().unwrap_or_else(|p| p.into_inner());
    by_id.insert(id.clone(), exec);
    order.push_front(id);
    while order.len() > KEEP {
        if let Some(old) = order.pop_back() {
            by_id.remove(&old);
        }
    }
}

fn describe(e: &Execution) -> Value {
    let out = e.output.as_ref();
    let mut status = json!({"State": e.state.name(), "SubmissionDateTime": epoch(e.submitted)});
    if let Some(c) = e.completed {
        status["CompletionDateTime"] = json!(epoch(c));
    }
    if let Some(err) = &e.error {
        status["StateChangeReason"] = json!(err.message);
        status["AthenaError"] = json!({
            "ErrorCategory": if err.category == Category::System { 1 } else { 2 },
            "ErrorType": if err.cancelled { 1306 } else if err.category == Category::System { 401 } else { 1100 },
            "Retryable": err.category == Category::System || err.not_visible.is_some(),
            "ErrorMessage": err.message,
        });
    }
    let (planning, exec_ms, queued) =
        out.map_or((0, 0, 0), |o| (o.planning.as_millis() as u64, o.execution.as_millis() as u64, o.queued.as_millis() as u64));
    let total = if e.completed.is_some() { e.total_ms } else { e.started.elapsed().as_millis() as u64 };
    let mut q = json!({
        "QueryExecutionId": e.id,
        "Query": e.sql,
        "StatementType": "DML",
        "ResultConfiguration": {"OutputLocation": e.output_location},
        "ResultReuseConfiguration": {"ResultReuseByAgeConfiguration": {"Enabled": false}},
        "QueryExecutionContext": {"Database": e.database, "Catalog": "awsdatacatalog"},
        "Status": status,
        "Statistics": {
            "EngineExecutionTimeInMillis": planning + exec_ms,
            "DataScannedInBytes": out.map_or(0, |o| o.bytes_scanned),
            "TotalExecutionTimeInMillis": total,
            "QueryQueueTimeInMillis": queued,
            "QueryPlanningTimeInMillis": planning,
            "ServiceProcessingTimeInMillis": 0,
            "ResultReuseInformation": {"ReusedPreviousResult": e.reused},
        },
        "WorkGroup": e.workgroup,
        "EngineVersion": engine_version(),
    });
    if !e.params.is_empty() {
        q["ExecutionParameters"] = json!(e.params);
    }
    q
}

fn id_of(req: &Value) -> Result<&str, AthenaError> {
    str_field(req, "QueryExecutionId").ok_or_else(|| invalid("QueryExecutionId is required"))
}

fn get_execution(state: &AppState, req: &Value) -> Result<Value, AthenaError> {
    let id = id_of(req)?;
    let execs = state.executions.by_id.lock().unwrap_or_else(|p| p.into_inner());
    let e = execs.get(id).ok_or_else(|| invalid(format!("QueryExecution {id} was not found")))?;
    Ok(json!({"QueryExecution": describe(e)}))
}

fn batch_get(state: &AppState, req: &Value) -> Result<Value, AthenaError> {
    let ids: Vec<&str> =
        req.get("QueryExecutionIds").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let execs = state.executions.by_id.lock().unwrap_or_else(|p| p.into_inner());
    let (found, missing): (Vec<&str>, Vec<&str>) = ids.iter().partition(|id| execs.contains_key(**id));
    Ok(json!({
        "QueryExecutions": found.iter().filter_map(|id| execs.get(*id)).map(describe).collect::<Vec<_>>(),
        "UnprocessedQueryExecutionIds": missing.iter().map(|id| json!({"QueryExecutionId": id, "ErrorCode": "INVALID_INPUT", "ErrorMessage": "not found"})).collect::<Vec<_>>(),
    }))
}

fn stop(state: &AppState, req: &Value) -> Result<Value, AthenaError> {
    let id = id_of(req)?;
    let mut execs = state.executions.by_id.lock().unwrap_or_else(|p| p.into_inner());
    let e = execs.get_mut(id).ok_or_else(|| invalid(format!("QueryExecution {id} was not found")))?;
    if matches!(e.state, QueryState::Queued | QueryState::Running) {
        e.cancel.cancel();
        e.state = QueryState::Cancelled;
        e.completed = Some(SystemTime::now());
        e.total_ms = e.started.elapsed().as_millis() as u64;
        e.error = Some(QueryError::cancelled("Query was cancelled by the user"));
    }
    Ok(json!({}))
}

fn list_executions(state: &AppState, req: &Value) -> Result<Value, AthenaError> {
    let max = req.get("MaxResults").and_then(Value::as_u64).unwrap_or(50).clamp(1, 50) as usize;
    let start: usize = str_field(req, "NextToken").and_then(|t| t.parse().ok()).unwrap_or(0);
    let workgroup = str_field(req, "WorkGroup");
    let execs = state.executions.by_id.lock().unwrap_or_else(|p| p.into_inner());
    let order = state.executions.order.lock().unwrap_or_else(|p| p.into_inner());
    let ids: Vec<&String> = order.iter().filter(|id| workgroup.is_none_or(|w| execs.get(*id).is_some_and(|e| e.workgroup == w))).collect();
    let page: Vec<&String> = ids.iter().skip(start).take(max).copied().collect();
    let mut resp = json!({"QueryExecutionIds": page});
    if start + max < ids.len() {
        resp["NextToken"] = json!((start + max).to_string());
    }
    Ok(resp)
}

async fn get_results(state: &AppState, req: &Value) -> Result<Value, AthenaError> {
    let id = id_of(req)?;
    let max = req.get("MaxResults").and_then(Value::as_u64).unwrap_or(1000);
    if max == 0 || max > 1000 {
        return Err(invalid("MaxResults must be between 1 and 1000"));
    }
    let (out, evicted_key) = {
        let execs = state.executions.by_id.lock().unwrap_or_else(|p| p.into_inner());
        let e = execs.get(id).ok_or_else(|| invalid(format!("QueryExecution {id} was not found")))?;
        match e.state {
            QueryState::Succeeded => {
                (e.output.clone().ok_or_else(|| invalid("the result is no longer available"))?, e.evicted.then(|| e.result.clone()))
            }
            QueryState::Failed | QueryState::Cancelled => {
                return Err(invalid(format!("Query has not yet finished. Current state: {}", e.state.name())).with_reason(e.error.as_ref()));
            }
            s => return Err(invalid(format!("Query has not yet finished. Current state: {}", s.name()))),
        }
    };
    // Row 0 of the first page is the header.
    let offset: usize = match str_field(req, "NextToken") {
        None => 0,
        Some(t) => t.parse().map_err(|_| invalid("invalid NextToken"))?,
    };
    let total = out.rows + 1;
    let end = (offset + max as usize).min(total);
    let first = offset.max(1) - 1;
    let wanted = end.saturating_sub(offset.max(1));
    let rows = match evicted_key {
        None => text_rows_range(&out, first, wanted),
        Some(target) => {
            let csv = target
                .store
                .get(&target.key)
                .await
                .map_err(|e| AthenaError("InternalServerException", format!("reading the result: {e}")))?;
            crate::output::parse_csv(&csv).into_iter().skip(1 + first).take(wanted).collect()
        }
    };
    let mut page = Vec::with_capacity(end.saturating_sub(offset));
    if offset == 0 {
        page.push(json!({"Data": out.schema.fields().iter().map(|f| json!({"VarCharValue": f.name()})).collect::<Vec<_>>()}));
    }
    for row in rows {
        let data: Vec<Value> = row.iter().map(|v| v.as_ref().map_or(json!({}), |s| json!({"VarCharValue": s}))).collect();
        page.push(json!({"Data": data}));
    }
    let mut resp = json!({"UpdateCount": 0, "ResultSet": {"Rows": page, "ResultSetMetadata": {"ColumnInfo": column_info(&out)}}});
    if end < total {
        resp["NextToken"] = json!(end.to_string());
    }
    Ok(resp)
}

/// Athena's `ColumnInfo` for a result's columns.
fn column_info(out: &QueryOutput) -> Vec<Value> {
    out.schema
        .fields()
        .iter()
        .map(|f| {
            let c = athena_column(f.data_type());
            json!({
                "CatalogName": "hive", "SchemaName": "", "TableName": "",
                "Name": f.name(), "Label": f.name(), "Type": c.type_name,
                "Precision": c.precision, "Scale": c.scale, "Nullable": "UNKNOWN", "CaseSensitive": c.case_sensitive,
            })
        })
        .collect()
}

impl AthenaError {
    fn with_reason(self, e: Option<&QueryError>) -> Self {
        match e {
            Some(e) => AthenaError(self.0, format!("{}: {}", self.1, e.message)),
            None => self,
        }
    }
}

fn get_workgroup(state: &AppState, req: &Value) -> Result<Value, AthenaError> {
    let name = str_field(req, "WorkGroup").unwrap_or("primary");
    let cutoff = state.service.settings().bytes_scanned_cutoff;
    let mut config = json!({
        "ResultConfiguration": {"OutputLocation": format!("{}/{}/", state.service.lake().url().trim_end_matches('/'), sediment_lake::paths::RESULTS_PREFIX)},
        "EnforceWorkGroupConfiguration": false,
        "PublishCloudWatchMetricsEnabled": false,
        "RequesterPaysEnabled": false,
        "EngineVersion": engine_version(),
    });
    if cutoff > 0 {
        config["BytesScannedCutoffPerQuery"] = json!(cutoff);
    }
    Ok(
        json!({"WorkGroup": {"Name": name, "State": "ENABLED", "Configuration": config, "Description": "Sediment query service", "CreationTime": 0}}),
    )
}

fn list_databases(state: &AppState) -> Value {
    let dbs: Vec<Value> =
        state.service.databases().iter().map(|d| json!({"Name": d, "Description": "The Sediment read model", "Parameters": {}})).collect();
    json!({"DatabaseList": dbs})
}

fn get_database(state: &AppState, req: &Value) -> Result<Value, AthenaError> {
    let name = str_field(req, "DatabaseName").unwrap_or("default").to_lowercase();
    if !state.service.databases().contains(&name) {
        return Err(AthenaError("MetadataException", format!("Database {name} not found")));
    }
    Ok(json!({"Database": {"Name": name, "Description": "The Sediment read model", "Parameters": {}}}))
}

async fn table_metadata(state: &AppState, name: &str) -> Result<Value, AthenaError> {
    let ctx = state.service.session();
    let df = ctx.table(name).await.map_err(|_| AthenaError("MetadataException", format!("Table {name} not found")))?;
    let typed = state.service.catalog().typed_cached().tables.contains_key(name);
    let partition = match name {
        "events" => Some("dt"),
        _ if typed => Some("dt"),
        n if state.service.config().projections.iter().any(|p| p.name == n) => Some("snapshot_date"),
        n if state.service.config().views.iter().any(|v| v.name == n) => Some("dt"),
        _ => None,
    };
    let (cols, parts): (Vec<_>, Vec<_>) = df.schema().fields().iter().partition(|f| Some(f.name().as_str()) != partition);
    let describe = |f: &&arrow::datatypes::FieldRef| json!({"Name": f.name(), "Type": trino_type(f.data_type()), "Comment": ""});
    Ok(json!({
        "Name": name,
        "CreateTime": 0,
        "LastAccessTime": 0,
        "TableType": if name.ends_with("_current") || typed { "VIRTUAL_VIEW" } else { "EXTERNAL_TABLE" },
        "Columns": cols.iter().map(describe).collect::<Vec<_>>(),
        "PartitionKeys": parts.iter().map(describe).collect::<Vec<_>>(),
        "Parameters": {"table_type": "DELTA", "location": format!("{}/{}", state.service.lake().url().trim_end_matches('/'), sediment_lake::paths::table_root(name))},
    }))
}

async fn list_tables(state: &AppState, req: &Value) -> Result<Value, AthenaError> {
    let db = str_field(req, "DatabaseName").unwrap_or("default").to_lowercase();
    if !state.service.databases().contains(&db) {
        return Err(AthenaError("MetadataException", format!("Database {db} not found")));
    }
    let pattern = str_field(req, "Expression").map(|p| p.to_lowercase());
    let mut out = Vec::new();
    for name in crate::meta::tables(&state.service).await.map_err(|e| AthenaError("InternalServerException", e.message))? {
        if !crate::meta::matches(pattern.as_deref(), &name) {
            continue;
        }
        if let Ok(t) = table_metadata(state, &name).await {
            out.push(t);
        }
    }
    Ok(json!({"TableMetadataList": out}))
}

async fn get_table(state: &AppState, req: &Value) -> Result<Value, AthenaError> {
    let name = str_field(req, "TableName").ok_or_else(|| invalid("TableName is required"))?.to_lowercase();
    Ok(json!({"TableMetadata": table_metadata(state, &name).await?}))
}
