//! A DataFusion session wired to a lake: object store, tuned Parquet reads,
//! memory pool with spilling.

use std::sync::Arc;

use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use sediment_lake::Lake;

use crate::files::lake_store_url;

/// Knobs of a session.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Memory pool size in bytes; operators past it spill to disk or fail cleanly.
    pub memory_limit: usize,
    pub target_partitions: usize,
    pub batch_size: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            memory_limit: 2 << 30,
            target_partitions: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            batch_size: 8192,
        }
    }
}

/// The session configuration every lake session uses.
pub fn session_config(opts: &SessionOptions) -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_target_partitions(opts.target_partitions)
        .with_batch_size(opts.batch_size)
        .with_information_schema(true)
        .with_create_default_catalog_and_schema(true);
    let o = config.options_mut();
    o.execution.parquet.pushdown_filters = true;
    o.execution.parquet.reorder_filters = true;
    o.execution.parquet.enable_page_index = true;
    o.execution.parquet.bloom_filter_on_read = true;
    o.execution.collect_statistics = false;
    o.sql_parser.dialect = datafusion::config::Dialect::Generic;
    config
}

/// A session over `lake`.
pub fn session(lake: &Lake, opts: &SessionOptions) -> datafusion::error::Result<SessionContext> {
    let runtime = RuntimeEnvBuilder::new().with_memory_pool(Arc::new(FairSpillPool::new(opts.memory_limit))).build_arc()?;
    let ctx = SessionContext::new_with_config_rt(session_config(opts), runtime);
    let url = lake_store_url();
    ctx.register_object_store(url.as_ref(), lake.store());
    Ok(ctx)
}
