//! The query service: Athena-style (Trino dialect) SQL over the read model.
//!
//! ```text
//!  Athena API (boto3, PyAthena) ─┐
//!  REST /v1/query ───────────────┼─▶ QueryService::run ─▶ dialect ─▶ DataFusion ─▶ lake catalog
//!  sediment query (CLI) ─────────┘        read-only, bounded
//! ```

pub mod athena;
pub mod meta;
pub mod metrics;
pub mod output;
pub mod rest;
pub mod server;
pub mod service;

pub use service::{Cancel, QueryError, QueryOutput, QueryRequest, QueryService};
