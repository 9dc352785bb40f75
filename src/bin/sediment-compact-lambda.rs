//! Lambda bootstrap for compaction: wires JSON tracing and the runtime, nothing else.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_target(false)
        .without_time()
        .with_current_span(false)
        .init();
    let compactor: &'static _ = Box::leak(Box::new(sediment_compactor::lambda::from_env().map_err(Error::from)?));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        sediment_compactor::lambda::handle(compactor, &event.payload).await.map_err(Error::from)
    }))
    .await
}
