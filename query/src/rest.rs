//! REST: `POST /v1/query`, `GET /v1/lake`, `GET /health`, `GET /metrics`.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::after::After;
use crate::output;
use crate::server::{AppState, KeyId};
use crate::service::{Cancel, Category, Client, QueryError, QueryRequest};

#[derive(Debug, Deserialize)]
pub struct QueryBody {
    pub sql: String,
    #[serde(default)]
    pub params: Vec<String>,
    /// Writes the answer must reflect: a token, or `{"token"|"event_ids"|
    /// "positions", "wait", "on_timeout"}` (see [`crate::after`]).
    #[serde(default)]
    pub after: Option<serde_json::Value>,
}

/// An error as an HTTP response: user errors spelled out (400), internals
/// hidden (500) and logged once.
pub struct ApiError(pub StatusCode, pub String, pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": {"type": self.2, "message": self.1}}))).into_response()
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e.category {
            Category::User if e.cancelled => ApiError(StatusCode::REQUEST_TIMEOUT, e.message, "QueryCancelled"),
            Category::User => ApiError(StatusCode::BAD_REQUEST, e.message, "QueryFailed"),
            Category::System => {
                tracing::error!(error = %e.message, "query failed internally");
                ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the server log".into(), "InternalError")
            }
        }
    }
}

pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut text = state.metrics.render(state.service.lake().requests());
    match state.service.source_lag().await {
        Ok(sources) => text.push_str(&crate::metrics::render_lag(&sources)),
        Err(e) => tracing::error!(error = %e.message, "per-source lag failed"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

pub async fn query(
    State(state): State<Arc<AppState>>,
    key: Option<axum::Extension<KeyId>>,
    headers: HeaderMap,
    body: Result<Json<QueryBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) =
        body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("expected a JSON body {{\"sql\": \"…\"}}: {e}"), "BadRequest"))?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("application/json").to_ascii_lowercase();
    let started = Instant::now();
    let client = Client { query_id: uuid::Uuid::new_v4().to_string(), interface: "rest", key_id: key.map(|k| k.0.0) };
    let max_wait = state.service.settings().max_after_wait;
    let after =
        body.after.map(|a| After::from_json(a, max_wait)).transpose().map_err(|e| ApiError(StatusCode::BAD_REQUEST, e, "BadRequest"))?;
    let req = QueryRequest { sql: body.sql, params: body.params, client, after, ..Default::default() };
    let result = state.service.run(&req, &Cancel::default(), &()).await;
    state.metrics.record(started.elapsed(), result.as_ref().map(|o| (o.bytes_scanned, o.rows as u64)).map_err(|e| e.cancelled));
    let out = match result {
        Err(QueryError { not_visible: Some(nv), message, .. }) => {
            let body = json!({"error": {"type": "NotYetVisible", "message": message, "not_visible": nv.as_ref()}});
            return Ok((StatusCode::CONFLICT, Json(body)).into_response());
        }
        other => other?,
    };
    let stale = out.stale.is_some();
    let mut response = state.service.on_cpu(move || render(&accept, &out)).await??;
    if stale {
        // CSV, Arrow and Parquet bodies have no field for it.
        response.headers_mut().insert("x-sediment-stale", axum::http::HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The result in the format the client accepts (on the query runtime: a
/// large result takes a while to render).
fn render(accept: &str, out: &crate::service::QueryOutput) -> Result<Response, ApiError> {
    let internal = |e: String| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e, "InternalError");
    Ok(if accept.contains("text/csv") {
        ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], output::to_csv(out)).into_response()
    } else if accept.contains("arrow") {
        let bytes = output::to_arrow_ipc(out).map_err(|e| internal(e.to_string()))?;
        ([(header::CONTENT_TYPE, "application/vnd.apache.arrow.stream")], bytes).into_response()
    } else if accept.contains("parquet") {
        let bytes = output::to_parquet(out).map_err(|e| internal(e.to_string()))?;
        ([(header::CONTENT_TYPE, "application/vnd.apache.parquet")], bytes).into_response()
    } else {
        Json(output::to_json(out)).into_response()
    })
}

/// `GET /v1/lake`: the lake per day (raw files, compacted/dirty/hot, rows,
/// last compaction) and its freshness, as `sediment status --json` prints it,
/// plus the server's clock so a client can compute lag.
pub async fn lake(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let status = sediment_engine::status::status(state.service.lake()).await.map_err(|e| {
        tracing::error!(error = %e, "lake status failed");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, "could not read the lake; see the server log".into(), "InternalError")
    })?;
    let mut body =
        serde_json::to_value(&status).map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), "InternalError"))?;
    body["now"] = json!(chrono::Utc::now());
    // The doors beside this HTTP one, as configured (0.0.0.0: every address).
    let settings = state.service.settings();
    body["endpoints"] = json!({"postgres": settings.pg_listen, "flight_sql": settings.flight_listen});
    match state.service.source_lag().await {
        Ok(sources) => body["sources"] = json!(sources),
        Err(e) => tracing::error!(error = %e.message, "per-source lag failed"),
    }
    match state.service.catalog().typed().await {
        Ok(typed) => body["typed_tables"] = typed.summary(),
        Err(e) => tracing::error!(error = %e, "reading the typed event tables failed"),
    }
    Ok(Json(body).into_response())
}
