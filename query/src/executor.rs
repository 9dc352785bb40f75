//! DataFusion's CPU work on a Tokio runtime of its own (the pattern of
//! DataFusion's `thread_pools` example). HTTP, timers and the object store's
//! I/O stay on the runtime that serves, so a query that keeps every CPU
//! thread busy cannot delay `/health`, a `StopQueryExecution` or its own
//! timeout.

use std::future::Future;

use tokio::runtime::{Builder, Runtime};
use tokio::task::{JoinError, JoinHandle};

use crate::service::QueryError;

/// Stack of each query thread. Planning and evaluation recurse once per
/// level of an expression tree (at most `dialect::MAX_TREE_DEPTH`); the
/// stack is reserved address space, touched only as deep as a query goes.
const STACK_BYTES: usize = 64 << 20;

/// The query runtime: one worker per core.
#[derive(Debug)]
pub struct CpuRuntime {
    runtime: Option<Runtime>,
}

impl CpuRuntime {
    pub fn new() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads)
            .max_blocking_threads(4 * threads)
            .thread_name("sediment-query")
            .thread_stack_size(STACK_BYTES)
            .enable_all()
            .build()?;
        Ok(Self { runtime: Some(runtime) })
    }

    /// Runs `work` on the query runtime; the handle is awaited from anywhere.
    pub fn spawn<F>(&self, work: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.runtime {
            Some(rt) => rt.spawn(work),
            // Only `drop` takes the runtime; a live service always has it.
            None => tokio::spawn(work),
        }
    }
}

impl Drop for CpuRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is refused inside another runtime.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A query task that did not return: it panicked (a bug, reported as an
/// internal error of that query only) or was aborted.
pub(crate) fn join_error(e: JoinError) -> QueryError {
    if e.is_panic() {
        let payload = e.into_panic();
        let what = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("no message")
            .to_owned();
        tracing::error!(panic = %what, "a query panicked");
        QueryError::system(format!("internal error: the query failed unexpectedly ({what})"))
    } else {
        QueryError::cancelled("Query was cancelled")
    }
}
