//! The analyst console at `/`: one dependency-free page (HTML, CSS, JS)
//! embedded in the binary. It uses the same APIs a program would: the Athena
//! API for queries and the catalog, `GET /v1/lake` for the lake's days.
//! Static assets carry no data, so they are served without the API key; the
//! page asks for the key when the API answers 401/403.

use axum::http::header;
use axum::response::IntoResponse;

const INDEX: &str = include_str!("../console/index.html");
const APP_JS: &str = include_str!("../console/app.js");
const APP_CSS: &str = include_str!("../console/app.css");

const NO_CACHE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-cache");

pub async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), NO_CACHE], INDEX)
}

pub async fn app_js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), NO_CACHE], APP_JS)
}

pub async fn app_css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), NO_CACHE], APP_CSS)
}
