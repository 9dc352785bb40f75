//! The HTTP server: Athena API at `POST /`, the console at `GET /`, REST
//! under `/v1`, health and metrics.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};

use crate::athena::{self, Executions};
use crate::console;
use crate::metrics::Metrics;
use crate::rest;
use crate::service::QueryService;

/// Shared state of the server.
#[derive(Debug)]
pub struct AppState {
    pub service: Arc<QueryService>,
    pub metrics: Metrics,
    pub executions: Executions,
}

/// The router, ready to serve (tests drive it with `oneshot`).
pub fn app(service: Arc<QueryService>) -> Router {
    let state = Arc::new(AppState { service, metrics: Metrics::default(), executions: Executions::default() });
    Router::new()
        .route("/", post(athena::dispatch))
        .route("/query-executions", any(athena::rest_json))
        .route("/query-executions/{*rest}", any(athena::rest_json))
        .route("/batch-get-query-executions", any(athena::rest_json))
        .route("/workgroups", any(athena::rest_json))
        .route("/workgroups/{*rest}", any(athena::rest_json))
        .route("/data-catalogs", any(athena::rest_json))
        .route("/data-catalogs/{*rest}", any(athena::rest_json))
        .route("/v1/query", post(rest::query))
        .route("/v1/lake", get(rest::lake))
        .route("/metrics", get(rest::metrics))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), auth))
        .route("/", get(console::index))
        .route("/console/app.js", get(console::app_js))
        .route("/console/app.css", get(console::app_css))
        .route("/health", get(rest::health))
        .layer(middleware::from_fn(limit_body))
        .with_state(state)
}

/// Largest request body accepted: a query is at most 262,144 bytes, and
/// its JSON escaping and parameters fit well within this.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// A body over the limit is still read, and dropped, up to this size (and
/// for at most [`DRAIN_TIME`]) before the 413 goes out: a client that is
/// still sending would otherwise see a reset connection, not the answer.
const DRAIN_BYTES: usize = 64 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Buffers each request body up to [`MAX_BODY_BYTES`]; a larger one gets
/// 413 with a message (in the Athena API's error shape when it is an
/// Athena call).
async fn limit_body(req: Request, next: Next) -> Response {
    use futures::StreamExt;
    let athena = is_athena(&req);
    let declared = req.headers().get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let (parts, body) = req.into_parts();
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen: u64 = 0;
    let over = |seen: u64| seen > MAX_BODY_BYTES as u64 || declared.is_some_and(|n| n > MAX_BODY_BYTES as u64);
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    loop {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(e))) => {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(serde_json::json!({"error": {"type": "BadRequest", "message": format!("reading the request body: {e}")}})),
                )
                    .into_response();
            }
            Ok(None) => break,
            Err(_) if over(seen) => break,
            Err(_) => {
                let message = format!("the request body did not arrive within {}s", DRAIN_TIME.as_secs());
                return (
                    StatusCode::REQUEST_TIMEOUT,
                    axum::Json(serde_json::json!({"error": {"type": "RequestTimeout", "message": message}})),
                )
                    .into_response();
            }
        };
        seen += chunk.len() as u64;
        if !over(seen) {
            kept.extend_from_slice(&chunk);
        } else if seen > DRAIN_BYTES as u64 {
            break;
        }
    }
    if over(seen) {
        let size = declared.unwrap_or(seen);
        let message = format!(
            "the request body is {size} bytes; at most {MAX_BODY_BYTES} are accepted (a query is at most {} bytes)",
            sediment_trino::MAX_QUERY_BYTES
        );
        let body = if athena {
            serde_json::json!({"__type": "InvalidRequestException", "Message": message})
        } else {
            serde_json::json!({"error": {"type": "PayloadTooLarge", "message": message}})
        };
        return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(kept))).await
}

/// A call of the Athena API, in either binding: its errors take Athena's shape.
fn is_athena(req: &Request) -> bool {
    req.headers().contains_key("x-amz-target") || athena::REST_PREFIXES.iter().any(|p| req.uri().path().starts_with(p))
}

/// API keys: `Authorization: Bearer <key>` (REST) or the SigV4 access key id
/// in `Credential=<key>/…` (Athena clients). No keys configured: open.
async fn auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let keys = &state.service.settings().api_keys;
    if keys.is_empty() {
        return next.run(req).await;
    }
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let presented = if let Some(b) = header.strip_prefix("Bearer ") {
        Some(b.trim())
    } else {
        header.split("Credential=").nth(1).and_then(|c| c.split('/').next())
    };
    if let Some(key) = presented.and_then(|k| state.service.key_matching(k)) {
        let id = KeyId::of(key);
        let mut req = req;
        req.extensions_mut().insert(id);
        next.run(req).await
    } else if is_athena(&req) {
        (StatusCode::FORBIDDEN, [("content-type", "application/x-amz-json-1.1")], axum::Json(serde_json::json!({"__type": "UnrecognizedClientException", "Message": "The security token included in the request is invalid."}))).into_response()
    } else {
        (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({"error": {"type": "Unauthorized", "message": "a valid API key is required (Authorization: Bearer <key>)"}}))).into_response()
    }
}

/// A fingerprint of an API key for logs: `sha256:` and 12 hex digits of its
/// hash, so operators can tell keys apart without the log holding them.
#[derive(Debug, Clone)]
pub struct KeyId(pub String);

impl KeyId {
    pub fn of(key: &str) -> Self {
        use sha2::Digest;
        Self(format!("sha256:{}", &hex::encode(sha2::Sha256::digest(key.as_bytes()))[..12]))
    }
}

/// Binds and serves until the process ends. Refuses to listen beyond
/// loopback without API keys unless `allow_open` is set.
pub async fn serve(service: Arc<QueryService>, addr: SocketAddr, allow_open: bool) -> std::io::Result<()> {
    if !addr.ip().is_loopback() && service.settings().api_keys.is_empty() && !allow_open {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("refusing to listen on {addr} without API keys: set query.api_keys in sediment.toml or pass --allow-unauthenticated"),
        ));
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(service, listener).await
}

/// Serves on a bound listener (port 0 in tests).
pub async fn serve_on(service: Arc<QueryService>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let app = app(service);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
}
