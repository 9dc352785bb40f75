//! Nested-loop joins made safe to run under a timeout and a memory limit.
//!
//! **Paced probe sides**: a nested-loop join yields within milliseconds,
//! whatever its filter, so a timeout or a cancel stops its work at once.
//!
//! A nested-loop join takes one batch from its probe (right) side and joins
//! it with every buffered build row before it polls that side again. When its
//! filter never matches it emits nothing, so neither its own budget nor a
//! parent's ever makes it return `Pending`: one poll runs for
//! `build rows × batch rows` filter evaluations, seconds to minutes, and an
//! aborted task only stops at its next `Pending`. [`NestedLoopJoins`] puts a
//! [`PacedExec`] directly under the probe side of every such join. It hands
//! the join slices of its input batches, sized so that the work between two
//! of its polls stays near [`SLICE_TARGET`] (halving a slice when the join
//! took longer, doubling it when it took much less), and returns `Pending`
//! (waking itself) once [`YIELD_EVERY`] has passed since the task last
//! yielded. A join over a small build side gets whole batches, as before.
//!
//! **Replayable build sides**: when the build side does not fit in the
//! memory pool, the join falls back to spilling it, and for that executes
//! its build plan a second time. A plan with an exchange in it cannot be
//! executed twice (its partitions are handed out once; the second call
//! panics with "partition not used yet"), so [`NestedLoopJoins`] puts a
//! [`ReplayableExec`] over the build side: a second execution of a
//! partition runs a fresh copy of the plan (DataFusion's
//! `reset_plan_states`, as recursive queries do).

use std::collections::HashSet;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::{CardinalityEffect, reset_plan_states};
use datafusion::physical_plan::joins::NestedLoopJoinExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{Stream, StreamExt};

/// The join work between two polls of its probe side that a slice aims at.
pub const SLICE_TARGET: Duration = Duration::from_millis(2);

/// The longest a task runs on a paced probe side without yielding.
pub const YIELD_EVERY: Duration = Duration::from_millis(10);

/// Puts a [`ReplayableExec`] over the build side and a [`PacedExec`] under
/// the probe side of every nested-loop join.
#[derive(Debug, Default)]
pub struct NestedLoopJoins;

impl PhysicalOptimizerRule for NestedLoopJoins {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<NestedLoopJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            if join.right().downcast_ref::<PacedExec>().is_some() {
                return Ok(Transformed::no(node));
            }
            let replayable = Arc::new(ReplayableExec::new(Arc::clone(join.left()))) as Arc<dyn ExecutionPlan>;
            let paced = Arc::new(PacedExec::new(Arc::clone(join.right()))) as Arc<dyn ExecutionPlan>;
            let children = vec![replayable, paced];
            #[expect(deprecated, reason = "replace_children takes options this rule has no use for")]
            let joined = Arc::clone(&node).with_new_children(children)?;
            Ok(Transformed::yes(joined))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "NestedLoopJoins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `DisplayAs` for a node that passes its one input's rows through.
macro_rules! pass_through_plan {
    ($t:ident) => {
        impl DisplayAs for $t {
            fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, stringify!($t))
            }
        }
    };
}

/// The `ExecutionPlan` methods of such a node, but `execute`: its input's
/// properties, order and partitioning, no expressions of its own.
macro_rules! pass_through_plan_methods {
    ($t:ident) => {
        fn name(&self) -> &str {
            stringify!($t)
        }

        fn properties(&self) -> &Arc<PlanProperties> {
            &self.properties
        }

        fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
            vec![&self.input]
        }

        fn maintains_input_order(&self) -> Vec<bool> {
            vec![true]
        }

        fn benefits_from_input_partitioning(&self) -> Vec<bool> {
            vec![false]
        }

        fn apply_expressions(&self, _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
            Ok(TreeNodeRecursion::Continue)
        }

        fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
            if children.len() != 1 {
                return Err(datafusion::error::DataFusionError::Internal(format!(
                    "{} takes one child, got {}",
                    stringify!($t),
                    children.len()
                )));
            }
            Ok(Arc::new(Self::new(children.swap_remove(0))))
        }
    };
}

/// Its input's batches, in slices, with a yield at least every [`YIELD_EVERY`].
#[derive(Debug, Clone)]
pub struct PacedExec {
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl PacedExec {
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        let properties = Arc::clone(input.properties());
        Self { input, properties }
    }
}

pass_through_plan!(PacedExec);

impl ExecutionPlan for PacedExec {
    pass_through_plan_methods!(PacedExec);

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        Ok(Box::pin(PacedStream::new(input)))
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }
}

/// Its input, executed afresh for a partition that was executed before.
#[derive(Debug)]
pub struct ReplayableExec {
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
    executed: Mutex<HashSet<usize>>,
}

impl ReplayableExec {
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        let properties = Arc::clone(input.properties());
        Self { input, properties, executed: Mutex::default() }
    }
}

pass_through_plan!(ReplayableExec);

impl ExecutionPlan for ReplayableExec {
    pass_through_plan_methods!(ReplayableExec);

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let first = self.executed.lock().unwrap_or_else(|p| p.into_inner()).insert(partition);
        if first { self.input.execute(partition, context) } else { reset_plan_states(Arc::clone(&self.input))?.execute(partition, context) }
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }
}

/// The stream of a [`PacedExec`].
struct PacedStream {
    input: SendableRecordBatchStream,
    /// The batch being handed out and the offset of its next slice.
    current: Option<(RecordBatch, usize)>,
    /// Rows per slice, adapted to the consumer's work per slice.
    slice: usize,
    /// When the last slice was handed out (the consumer has worked since).
    handed_at: Option<Instant>,
    /// When the task last returned `Pending` through this stream.
    yielded_at: Instant,
}

impl PacedStream {
    fn new(input: SendableRecordBatchStream) -> Self {
        Self { input, current: None, slice: 1, handed_at: None, yielded_at: Instant::now() }
    }

    /// Adapts the slice to the time the consumer spent on the last one.
    fn adapt(&mut self, now: Instant) {
        let Some(handed) = self.handed_at.take() else { return };
        let spent = now.duration_since(handed);
        if spent > SLICE_TARGET {
            self.slice = (self.slice / 2).max(1);
        } else if spent < SLICE_TARGET / 4 {
            self.slice = self.slice.saturating_mul(2);
        }
    }
}

impl Stream for PacedStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let now = Instant::now();
        self.adapt(now);
        if now.duration_since(self.yielded_at) >= YIELD_EVERY {
            self.yielded_at = now;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let (batch, offset) = match self.current.take() {
            Some(current) => current,
            None => match self.input.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(batch))) => (batch, 0),
                Poll::Pending => {
                    self.yielded_at = Instant::now();
                    return Poll::Pending;
                }
                other => return other,
            },
        };
        let rows = batch.num_rows();
        let len = self.slice.min(rows - offset);
        if offset == 0 && len == rows {
            self.handed_at = Some(Instant::now());
            return Poll::Ready(Some(Ok(batch)));
        }
        let out = batch.slice(offset, len);
        if offset + len < rows {
            self.current = Some((batch, offset + len));
        }
        self.handed_at = Some(Instant::now());
        Poll::Ready(Some(Ok(out)))
    }
}

impl RecordBatchStream for PacedStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}
