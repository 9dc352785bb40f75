//! A DataFusion session wired to a lake: object store, tuned Parquet reads,
//! memory pool with spilling, and every operator that can emit without
//! reading made to yield.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{FunctionRegistry, SessionStateBuilder};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::{CardinalityEffect, SchedulingType};
use datafusion::physical_plan::union::{InterleaveExec, UnionExec};
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
    // Trino: `1.5` is decimal(2,1), so `0.1 + 0.2` is exact.
    o.sql_parser.parse_float_as_decimal = true;
    // Trino: NULLs sort last whatever the direction (DataFusion: as the largest value).
    o.sql_parser.default_null_ordering = "nulls_last".to_owned();
    for (key, value) in env_overrides() {
        // A value the option does not take is ignored, as a typo'd name is.
        let _ = o.set(key, value);
    }
    config
}

/// DataFusion options set in the environment (`DATAFUSION_EXECUTION_BATCH_SIZE=…`,
/// DataFusion's own naming), read once: they override the session's choices,
/// for measuring a knob without a rebuild.
fn env_overrides() -> &'static [(String, String)] {
    static OVERRIDES: std::sync::LazyLock<Vec<(String, String)>> = std::sync::LazyLock::new(|| {
        ConfigOptions::new()
            .entries()
            .into_iter()
            .filter_map(|e| {
                let var = std::env::var(e.key.to_uppercase().replace('.', "_")).ok()?;
                Some((e.key, var))
            })
            .collect()
    });
    &OVERRIDES
}

/// A context with DataFusion's defaults plus [`YieldingAmplifiers`],
/// [`crate::nested_loop::NestedLoopJoins`] and the dialect's decimal types
/// and call rewrites, and Trino's checked integer arithmetic.
pub fn context(config: SessionConfig, runtime: Arc<RuntimeEnv>) -> SessionContext {
    build(config, runtime, false)
}

/// [`context`] plus Trino's integer literals
/// ([`sediment_trino::integers::IntegerLiterals`]: `1` is an `integer`) and
/// aggregate result types ([`sediment_trino::aggregates`]): the query
/// service's, where answers must be Trino's. The compactor's views keep
/// DataFusion's types there, so the tables it has written keep their
/// column types.
pub fn query_context(config: SessionConfig, runtime: Arc<RuntimeEnv>) -> SessionContext {
    build(config, runtime, true)
}

fn build(config: SessionConfig, runtime: Arc<RuntimeEnv>, trino_types: bool) -> SessionContext {
    use datafusion::optimizer::analyzer::resolve_grouping_function::ResolveGroupingFunction;
    use datafusion::optimizer::analyzer::type_coercion::TypeCoercion;
    let mut builder = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(YieldingAmplifiers))
        .with_physical_optimizer_rule(Arc::new(crate::nested_loop::NestedLoopJoins));
    if trino_types {
        // Literals are typed before coercion, so it widens them where asked.
        builder = builder.with_analyzer_rules(vec![
            Arc::new(sediment_trino::integers::IntegerLiterals),
            Arc::new(ResolveGroupingFunction::new()),
            Arc::new(TypeCoercion::new()),
        ]);
    }
    builder = builder.with_analyzer_rule(Arc::new(sediment_trino::decimal::TrinoDecimals));
    if trino_types {
        builder = builder.with_analyzer_rule(Arc::new(sediment_trino::aggregates::TrinoAggregateTypes));
    }
    let mut state = builder
        .with_analyzer_rule(Arc::new(sediment_trino::overflow::CheckedIntegers))
        .with_optimizer_rule(Arc::new(crate::top1::FirstRowPerKey))
        .with_optimizer_rule(Arc::new(crate::counts::CountsFromManifests))
        .with_optimizer_rule(Arc::new(crate::payload_reads::PayloadReads))
        .build();
    // Registering a rewrite only adds it to the analyzer's list.
    let _ = state.register_function_rewrite(Arc::new(sediment_trino::calls::TrinoCalls));
    SessionContext::new_with_state(state)
}

/// A session over `lake`.
pub fn session(lake: &Lake, opts: &SessionOptions) -> datafusion::error::Result<SessionContext> {
    let runtime = RuntimeEnvBuilder::new().with_memory_pool(Arc::new(FairSpillPool::new(opts.memory_limit))).build_arc()?;
    let ctx = context(session_config(opts), runtime);
    let url = lake_store_url();
    ctx.register_object_store(url.as_ref(), lake.store());
    Ok(ctx)
}

/// Wraps every operator that may emit more rows than it reads (joins,
/// unnest, and any operator that does not say) in DataFusion's
/// [`CooperativeExec`], so it spends the task's scheduling budget per batch.
///
/// DataFusion's own `EnsureCooperative` makes leaves and exchanges yield,
/// which covers plans whose work is driven by reading. A cross join is not:
/// after one batch from its probe side it emits `build rows × batch` rows
/// without polling a child again, so its task never returns `Pending`,
/// holds its worker thread, and cannot be aborted (an abort takes effect at
/// the next yield). Behind this wrapper such a task yields every 128 batches
/// and a timeout or a cancel ends it.
#[derive(Debug, Default)]
pub struct YieldingAmplifiers;

impl PhysicalOptimizerRule for YieldingAmplifiers {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let amplifies = matches!(node.cardinality_effect(), CardinalityEffect::Unknown | CardinalityEffect::GreaterEqual);
            let forwards = node.downcast_ref::<UnionExec>().is_some()
                || node.downcast_ref::<InterleaveExec>().is_some()
                || node.downcast_ref::<CooperativeExec>().is_some();
            if node.children().is_empty() || forwards || !amplifies || node.properties().scheduling_type == SchedulingType::Cooperative {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(Arc::new(CooperativeExec::new(node)) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "YieldingAmplifiers"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
