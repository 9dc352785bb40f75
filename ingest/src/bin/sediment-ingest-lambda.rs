//! Lambda bootstrap for ingest: wires JSON tracing and the runtime, nothing else.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    sediment_lake::telemetry::init_lambda_tracing();
    let (ingestor, mapping) = sediment_ingest::lambda::from_env().map_err(Error::from)?;
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "sediment-ingest".into());
    // Lives for the whole process; leaking gives the handler plain references.
    let state: &'static _ = Box::leak(Box::new((ingestor, mapping, function)));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let (ingestor, mapping, function) = state;
        sediment_ingest::lambda::handle(ingestor, mapping, &event.payload, function).await.map_err(Error::from)
    }))
    .await
}
