//! Lambda bootstrap for compaction: wires JSON tracing and the runtime, nothing else.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    sediment_lake::telemetry::init_lambda_tracing();
    let compactor: &'static _ = Box::leak(Box::new(sediment_compactor::lambda::from_env().map_err(Error::from)?));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        sediment_compactor::lambda::handle(compactor, &event.payload).await.map_err(Error::from)
    }))
    .await
}
