//! The HTTP server: Athena API at `POST /`, the console at `GET /`, REST
//! under `/v1`, health and metrics.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

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
        .route("/v1/query", post(rest::query))
        .route("/v1/lake", get(rest::lake))
        .route("/metrics", get(rest::metrics))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), auth))
        .route("/", get(console::index))
        .route("/console/app.js", get(console::app_js))
        .route("/console/app.css", get(console::app_css))
        .route("/health", get(rest::health))
        .with_state(state)
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
    if presented.is_some_and(|k| keys.iter().any(|x| x == k)) {
        next.run(req).await
    } else if req.headers().contains_key("x-amz-target") {
        (StatusCode::FORBIDDEN, [("content-type", "application/x-amz-json-1.1")], axum::Json(serde_json::json!({"__type": "UnrecognizedClientException", "Message": "The security token included in the request is invalid."}))).into_response()
    } else {
        (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({"error": {"type": "Unauthorized", "message": "a valid API key is required (Authorization: Bearer <key>)"}}))).into_response()
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
