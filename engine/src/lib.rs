//! The lake as DataFusion tables, shared by the compactor and the query service.
//!
//! ```text
//!  raw/events (listed)  ─┐
//!  tables/events (Delta) ┼─▶ state::load_events ─▶ events::EventsTable ─▶ SQL
//!  _manifests (coverage) ┘
//! ```
//!
//! - [`files`]: a table over an explicit list of Parquet files.
//! - [`state`]: which curated days and raw files make up `events` right now.
//! - [`events`]: the exactly-once union of both.
//! - [`delta`]: Delta Lake tables on the lake's object store.
//! - [`typed`]: a typed table per event type, its payload as columns.
//! - [`session`]: a DataFusion session wired to a lake.
//! - [`nested_loop`]: nested-loop joins that yield whatever their filter
//!   and that can spill a build side with an exchange in it.

pub mod catalog;
pub mod counts;
pub mod delta;
pub mod events;
pub mod files;
pub mod first_row;
pub mod fold;
pub mod lag;
pub mod nested_loop;
pub mod payload_reads;
pub mod schema;
pub mod session;
pub mod state;
pub mod status;
pub mod top1;
pub mod typed;
