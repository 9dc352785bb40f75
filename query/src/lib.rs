//! The query service: Athena-style (Trino dialect) SQL over the read model.
//!
//! ```text
//!  Athena API (boto3, PyAthena) ─┐
//!  REST /v1/query ───────────────┼─▶ QueryService::run ─▶ dialect ─▶ DataFusion ─▶ lake catalog
//!  sediment query (CLI) ─────────┤        read-only, bounded
//!  Postgres wire (psql, BI) ─────┤
//!  Arrow Flight SQL (ADBC) ──────┘
//!  console at / (browser) ─ Athena API + GET /v1/lake
//! ```

pub mod after;
pub mod athena;
pub mod console;
pub mod executor;
pub mod flight;
mod infoschema;
mod log;
pub mod meta;
pub mod metrics;
pub mod output;
pub mod pg;
pub mod rest;
pub mod server;
pub mod service;
mod tls;

pub use service::{Cancel, Client, QueryError, QueryOutput, QueryRequest, QueryService};
