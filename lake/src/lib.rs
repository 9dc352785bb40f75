//! The lake contract every Sediment stage shares.
//!
//! ```text
//!  ingest ──▶ raw/events/dt=…/hour=…/*.parquet ──▶ compactor ──▶ tables/… ──▶ query
//!             quarantine/dt=…/*.json                 _manifests/…
//! ```
//!
//! This crate holds what the stages must agree on and nothing heavier: the
//! event [`envelope`], the object [`paths`] of the lake layout, the raw Arrow
//! [`schema`], the [`storage`] behind a lake URL, the `sediment.toml`
//! [`config`], and the coverage [`manifest`] a compaction commit leaves for
//! readers. It does not link DataFusion, so the ingest Lambda stays small.
//!
//! ```
//! use sediment_lake::paths::RawFile;
//! let f = RawFile::new("2026-11-02".parse().unwrap(), 13, "kinesis-0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d");
//! assert_eq!(f.key(), "raw/events/dt=2026-11-02/hour=13/kinesis-0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d.parquet");
//! ```

pub mod config;
pub mod envelope;
pub mod jsonpath;
pub mod manifest;
pub mod paths;
pub mod payload_schema;
pub mod schema;
pub mod storage;
pub mod telemetry;
pub mod token;

pub use config::Config;
pub use envelope::Envelope;
pub use storage::Lake;
